import gzip
import json
import subprocess
import sys

import pytest

from tests.cli_helpers import run
from tests.conftest import csv_rows, synthetic_faces, write_csv


def test_info_table(fer_csv):
    res = run("data", "info", fer_csv)
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert lines[1].split() == [
        "split",
        "total",
        "angry",
        "disgust",
        "fear",
        "happy",
        "sad",
        "surprise",
        "neutral",
    ]
    assert lines[2].split() == ["Training", "14", "2", "2", "2", "2", "2", "2", "2"]
    assert lines[-1].split()[:2] == ["all", "28"]


def test_info_json(fer_folders):
    res = run("data", "info", fer_folders, "--json")
    out = json.loads(res.stdout)
    assert out["total"] == 42 and out["splits"]["test"]["classes"]["happy"] == 3


def test_bad_row_is_one_line_exit_2(tmp_path):
    images, labels = synthetic_faces(2)
    rows = csv_rows(images, labels, ["Training", "Nope"])
    path = write_csv(tmp_path / "bad.csv", rows)
    res = run("data", "info", path)
    assert res.exit_code == 2
    assert res.output == (
        f"error: {path}:3: Usage: expected one of Training, PublicTest, PrivateTest, got 'Nope'\n"
    )


def test_skip_bad_reports_reasons(tmp_path):
    images, labels = synthetic_faces(3)
    rows = csv_rows(images, labels, ["Training", "Nope", "Nope"])
    res = run("data", "info", write_csv(tmp_path / "bad.csv", rows), "--skip-bad")
    assert res.exit_code == 0
    assert "skipped 2 items:" in res.output and "2 x Usage: expected one of" in res.output
    assert "1 images, 1 split(s)" in res.output


def test_unknown_option_is_usage_error():
    assert run("data", "info", "--bogus").exit_code == 2


def assert_one_error_line(res, *fragments):
    """Exit 2, exactly one line `error: ...` on the output, no exception escaped the CLI."""
    assert res.exit_code == 2, res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    assert "Traceback" not in res.output
    lines = res.output.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.output
    for fragment in fragments:
        assert fragment in lines[0]


def gz_fer(n=2) -> bytes:
    images, labels = synthetic_faces(n)
    text = "\n".join(["emotion,pixels,Usage", *csv_rows(images, labels, ["Training"] * n)]) + "\n"
    return gzip.compress(text.encode(), mtime=0)


@pytest.mark.parametrize(
    "damage, why",
    [
        # A gzip header and then bytes that are no deflate stream: zlib.error.
        (lambda gz: gz[:10] + b"\xff" * 40, "invalid block type"),
        # Cut in the middle: EOFError.
        (lambda gz: gz[: len(gz) // 2], "ended before the end-of-stream marker"),
        # The gzip magic, then an unknown compression method: gzip.BadGzipFile.
        (lambda gz: gz[:2] + b"\x07" + gz[3:], "Unknown compression method"),
        # A wrong CRC in the trailer: gzip.BadGzipFile after all rows were read.
        (lambda gz: gz[:-8] + bytes(8), "CRC check failed"),
    ],
)
def test_corrupt_gzip_is_one_line_exit_2(tmp_path, damage, why):
    path = tmp_path / "fer2013.csv.gz"
    path.write_bytes(damage(gz_fer()))
    res = run("data", "info", path)
    assert_one_error_line(res, f"error: {path}", "cannot read as a FER2013 CSV", why)


def test_corrupt_gzip_in_a_real_process_prints_no_traceback(tmp_path):
    """The same through `python -m edgefer`, where nothing catches what the CLI lets out."""
    path = tmp_path / "fer2013.csv.gz"
    path.write_bytes(gz_fer()[:10] + b"\xff" * 40)
    proc = subprocess.run(
        [sys.executable, "-m", "edgefer", "data", "info", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.startswith(f"error: {path}") and proc.stderr.count("\n") == 1, proc.stderr


def test_bom_and_lower_case_header_are_read(tmp_path):
    images, labels = synthetic_faces(3)
    rows = csv_rows(images, labels, ["Training", "PublicTest", "PrivateTest"])
    path = tmp_path / "excel.csv"
    path.write_bytes(
        ("\ufeff" + "\r\n".join([" Emotion , PIXELS ,usage", *rows]) + "\r\n").encode()
    )
    res = run("data", "info", path, "--json")
    assert res.exit_code == 0, res.output
    assert set(json.loads(res.stdout)["splits"]) == {"Training", "PublicTest", "PrivateTest"}


def test_newline_in_a_value_stays_on_one_line(tmp_path):
    images, labels = synthetic_faces(2)
    rows = csv_rows(images, labels, ["Training", '"Train\ning"'])
    path = write_csv(tmp_path / "bad.csv", rows)
    res = run("data", "info", path)
    assert_one_error_line(res, r"got 'Train\ning'")


@pytest.mark.parametrize("folder", ["²", "happy\nface"])  # '²'.isdigit() is true, int('²') fails
def test_odd_class_folder_name_is_one_line(tmp_path, folder):
    (tmp_path / "d" / "train" / folder).mkdir(parents=True)
    res = run("data", "info", tmp_path / "d")
    assert_one_error_line(res, "unknown class folder")
