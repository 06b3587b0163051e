import cv2
import numpy as np
import pytest

from edgefer.data import load_fer
from edgefer.errors import DataError
from tests.conftest import write_folders


def test_named_class_folders_any_size_and_colour(fer_folders):
    ds = load_fer(fer_folders)
    assert ds.images.shape == (42, 48, 48) and ds.images.dtype == np.uint8
    assert ds.split_names == ("train", "test")
    assert all(v == 3 for c in ds.counts().values() for v in c.values())


def test_numbered_class_folders(tmp_path):
    ds = load_fer(write_folders(tmp_path / "n", named=False, color=False, size=30))
    assert ds.counts()["train"]["neutral"] == 3


def test_root_of_class_folders_is_one_split(tmp_path):
    root = write_folders(tmp_path / "r", splits=("only",))
    ds = load_fer(root / "only")
    assert ds.split_names == ("all",) and len(ds) == 21


def test_image_is_converted_like_opencv_gray(tmp_path):
    root = write_folders(tmp_path / "r", splits=("s",), per_class=1)
    img = np.full((96, 96, 4), 200, np.uint8)
    img[..., 3] = 255
    cv2.imwrite(str(root / "s/happy/0.jpg"), img[..., :3])
    cv2.imwrite(str(root / "s/sad/extra.png"), img)  # BGRA
    cv2.imwrite(str(root / "s/fear/deep.png"), np.full((50, 50), 40000, np.uint16))
    ds = load_fer(root)
    assert len(ds) == 9
    sad = ds.images[ds.labels == 4]
    assert (sad[1] == 200).all()
    assert (ds.images[ds.labels == 2][1] == 40000 >> 8).all()


def test_unknown_class_folder(fer_folders):
    (fer_folders / "train" / "happiness").mkdir()
    with pytest.raises(
        DataError, match=r"train/happiness: unknown class folder; expected one of angry"
    ):
        load_fer(fer_folders)


def test_empty_class_folder(fer_folders):
    for f in (fer_folders / "test" / "sad").iterdir():
        f.unlink()
    with pytest.raises(DataError, match=r"test/sad: empty class folder"):
        load_fer(fer_folders)


def test_missing_class_folder(fer_folders):
    for f in (fer_folders / "test" / "sad").iterdir():
        f.unlink()
    (fer_folders / "test" / "sad").rmdir()
    with pytest.raises(DataError, match=r"test/sad: missing class folder"):
        load_fer(fer_folders)


def test_unreadable_image_and_skip_bad(fer_folders):
    bad = fer_folders / "train" / "angry" / "broken.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"broken.png: unreadable image"):
        load_fer(fer_folders)
    ds = load_fer(fer_folders, skip_bad=True)
    assert len(ds) == 42 and ds.skipped[0].where.endswith("broken.png")


def test_duplicate_class_folder(fer_folders):
    (fer_folders / "train" / "3").mkdir()
    with pytest.raises(DataError, match="already given by"):
        load_fer(fer_folders)
