import numpy as np
import pytest

from edgefer.data import load_fer
from edgefer.errors import DataError, EdgeferError
from tests.conftest import csv_rows, synthetic_faces, write_csv


def test_reads_pixels_labels_and_splits(fer_csv):
    ds = load_fer(fer_csv)
    images, labels = synthetic_faces(28)
    assert ds.images.dtype == np.uint8 and ds.images.shape == (28, 48, 48)
    np.testing.assert_array_equal(ds.images, images)
    np.testing.assert_array_equal(ds.labels, labels)
    assert ds.split_names == ("Training", "PublicTest", "PrivateTest")
    assert ds.counts()["Training"]["angry"] == 2
    assert len(ds.split("PublicTest")) == 7


def test_gzip_is_detected_by_content(tmp_path):
    images, labels = synthetic_faces(3)
    path = write_csv(tmp_path / "fer.csv", csv_rows(images, labels, ["Training"] * 3), gz=True)
    assert len(load_fer(path)) == 3


def test_no_usage_column_means_one_split(tmp_path):
    images, labels = synthetic_faces(3)
    rows = [r.rsplit(",", 1)[0] for r in csv_rows(images, labels, ["x"] * 3)]
    ds = load_fer(write_csv(tmp_path / "train.csv", rows, header="emotion,pixels"))
    assert ds.split_names == ("all",)


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (lambda r: r.replace(",Training", ",Validation"), "Usage: expected one of Training"),
        (lambda r: "9" + r[1:], "emotion: expected a class id 0..6, got '9'"),
        (lambda r: r.replace(" ", " x ", 1), "pixels: expected space-separated integers"),
        (lambda r: r.replace(" ", " 3.5 ", 1), "pixels: expected space-separated integers"),
        (lambda r: r.rsplit(" ", 1)[0] + ",Training", "expected 2304 values (48x48), got 2303"),
        (lambda r: r.replace(" ", " 7 ", 1), "expected 2304 values (48x48), got 2305"),
        (lambda r: r + ",extra", "expected 3 columns"),
    ],
)
def test_malformed_row_names_file_and_line(tmp_path, mutate, expected):
    images, labels = synthetic_faces(3)
    rows = csv_rows(images, labels, ["Training"] * 3)
    rows[1] = mutate(rows[1])
    path = write_csv(tmp_path / "bad.csv", rows)
    with pytest.raises(DataError) as err:
        load_fer(path)
    assert str(err.value).startswith(f"{path}:3: ")
    assert expected in str(err.value)


def test_out_of_range_pixel(tmp_path):
    images, labels = synthetic_faces(2)
    rows = csv_rows(images, labels, ["Training"] * 2)
    rows[0] = "0,300 " + " ".join(["1"] * 2303) + ",Training"
    with pytest.raises(DataError, match=r"bad.csv:2: pixels: expected values in 0..255"):
        load_fer(write_csv(tmp_path / "bad.csv", rows))


def test_skip_bad_keeps_good_rows_and_reports(tmp_path):
    images, labels = synthetic_faces(4)
    rows = csv_rows(images, labels, ["Training"] * 4)
    rows[0] = "7" + rows[0][1:]
    rows[2] = rows[2].rsplit(" ", 5)[0] + ",Training"
    ds = load_fer(write_csv(tmp_path / "bad.csv", rows), skip_bad=True)
    assert len(ds) == 2
    assert [s.where.rsplit(":", 1)[1] for s in ds.skipped] == ["2", "4"]
    np.testing.assert_array_equal(ds.images, images[[1, 3]])


@pytest.mark.parametrize(
    "content, expected",
    [
        ("", r"header \(empty\): expected emotion,pixels"),
        ("label,image\n1,2\n", "header label,image: expected emotion,pixels"),
        ("emotion,pixels,Usage\n", "no valid rows"),
    ],
)
def test_bad_files(tmp_path, content, expected):
    path = tmp_path / "x.csv"
    path.write_text(content)
    with pytest.raises(DataError, match=expected):
        load_fer(path)


def test_missing_path(tmp_path):
    with pytest.raises(DataError, match="no such file or folder"):
        load_fer(tmp_path / "nope.csv")


def test_unknown_split_lists_known_ones(fer_csv):
    with pytest.raises(
        Exception, match="no split 'Validation'; it has Training, PublicTest, PrivateTest"
    ):
        load_fer(fer_csv).split("Validation")


def test_headerless_csv_names_the_first_line_briefly(tmp_path):
    images, labels = synthetic_faces(2)
    path = write_csv(
        tmp_path / "noheader.csv",
        csv_rows(images, labels, ["Training"] * 2)[1:],
        header=csv_rows(images, labels, ["Training"] * 2)[0],
    )
    with pytest.raises(
        DataError, match=r"noheader.csv: header 0,\d+ .*\.\.\.: expected emotion,pixels"
    ) as err:
        load_fer(path)
    assert len(str(err.value)) < len(str(path)) + 120  # not the 2304 pixel values of row 1


@pytest.mark.parametrize("label", ["٣", "３", "²"])  # str.isdigit() is true for all three
def test_only_ascii_digits_are_class_ids(tmp_path, label):
    images, labels = synthetic_faces(2)
    rows = csv_rows(images, labels, ["Training"] * 2)
    rows[1] = label + rows[1][1:]
    with pytest.raises(
        DataError, match=f"bad.csv:3: emotion: expected a class id 0..6, got '{label}'"
    ):
        load_fer(write_csv(tmp_path / "bad.csv", rows))


def test_lower_case_usage_column_keeps_the_splits(tmp_path):
    images, labels = synthetic_faces(3)
    rows = csv_rows(images, labels, ["Training", "PublicTest", "PrivateTest"])
    ds = load_fer(write_csv(tmp_path / "lc.csv", rows, header="emotion,pixels,usage"))
    assert ds.split_names == ("Training", "PublicTest", "PrivateTest")


def test_splits_pool_with_plus(fer_csv):
    data = load_fer(fer_csv)
    pooled = data.split("PublicTest+PrivateTest")
    assert len(pooled.labels) == len(data.split("PublicTest").labels) + len(
        data.split("PrivateTest").labels
    )
    assert set(pooled.split_codes.tolist()) == {1, 2}
    with pytest.raises(EdgeferError, match="no split 'Public'"):
        data.split("Public+PrivateTest")
