import cv2
import numpy as np
import pytest

from edgefer.device.sources import open_source
from edgefer.errors import EdgeferError


def test_folder_with_an_unreadable_image(tmp_path):
    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((10, 10), np.uint8))
    (tmp_path / "b.jpg").write_bytes(b"junk")
    frames = list(open_source(str(tmp_path)))
    assert frames[0].error is None and frames[1].error.startswith("unreadable image")


def test_video_frames_and_limit(face_video):
    frames = list(open_source(str(face_video), limit=5))
    assert len(frames) == 5 and frames[0].image.shape == (480, 640, 3)


@pytest.mark.parametrize("spec, expected", [
    ("/no/such.png", "no such file"), ("99", "cannot open camera"),
])
def test_bad_sources(spec, expected):
    with pytest.raises(EdgeferError, match=expected):
        list(open_source(spec))


def test_unreadable_single_image(tmp_path):
    (tmp_path / "x.png").write_bytes(b"junk")
    with pytest.raises(EdgeferError, match="x.png: unreadable image"):
        open_source(str(tmp_path / "x.png"))
