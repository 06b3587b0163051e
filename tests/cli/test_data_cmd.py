import json

from click.testing import CliRunner

from edgefer.cli import main
from tests.conftest import csv_rows, synthetic_faces, write_csv


def run(*args):
    return CliRunner().invoke(main, list(map(str, args)))


def test_info_table(fer_csv):
    res = run("data", "info", fer_csv)
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert lines[1].split() == ["split", "total", "angry", "disgust", "fear", "happy", "sad",
                                "surprise", "neutral"]
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
    assert res.output == (f"error: {path}:3: Usage: expected one of Training, PublicTest, "
                          "PrivateTest, got 'Nope'\n")


def test_skip_bad_reports_reasons(tmp_path):
    images, labels = synthetic_faces(3)
    rows = csv_rows(images, labels, ["Training", "Nope", "Nope"])
    res = run("data", "info", write_csv(tmp_path / "bad.csv", rows), "--skip-bad")
    assert res.exit_code == 0
    assert "skipped 2 items:" in res.output and "2 x Usage: expected one of" in res.output
    assert "1 images, 1 split(s)" in res.output


def test_unknown_option_is_usage_error():
    assert run("data", "info", "--bogus").exit_code == 2
