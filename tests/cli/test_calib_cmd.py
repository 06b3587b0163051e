import json

import numpy as np
import pytest
from click.testing import CliRunner

from edgefer import calibration
from edgefer.cli import main
from edgefer.errors import DataError


def run(*args):
    return CliRunner().invoke(main, list(map(str, args)))


def test_build_stratified_preprocessed(fer_csv, tmp_path):
    out = tmp_path / "calib" / "c.npz"
    res = run("calib", "build", "--data", fer_csv, "--per-class", 1, "--out", out,
              "--normalization", "minus_one_one", "--seed", 3)
    assert res.exit_code == 0, res.output
    cs = calibration.load(out)
    assert cs.x.shape == (7, 48, 48, 1) and cs.x.dtype == np.float32
    assert cs.x.min() >= -1 and cs.x.max() <= 1 and cs.x.min() < -0.9
    assert sorted(cs.y.tolist()) == list(range(7))
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["source"]["split"] == "Training" and meta["source"]["sha256"]
    assert meta["counts"] == {k: 1 for k in meta["class_names"]}
    assert meta["preprocessing"]["normalization"] == "minus_one_one"
    again = tmp_path / "again.npz"
    run("calib", "build", "--data", fer_csv, "--per-class", 1, "--out", again,
        "--normalization", "minus_one_one", "--seed", 3)
    np.testing.assert_array_equal(calibration.load(again).x, cs.x)


def test_short_class_takes_all_and_says_so(fer_csv, tmp_path):
    res = run("calib", "build", "--data", fer_csv, "--per-class", 5, "--out", tmp_path / "c.npz",
              "--task", "sad-vs-fear", "--channels", "3")
    assert res.exit_code == 0
    assert "fewer than 5 images for sad, fear" in res.output
    assert calibration.load(tmp_path / "c.npz").x.shape == (4, 48, 48, 3)


def test_missing_class_for_task_writes_nothing(tmp_path, fer_folders):
    res = run("calib", "build", "--data", fer_folders, "--split", "train", "--task", "sad,fear",
              "--out", tmp_path / "c.npz", "--per-class", 2)
    assert res.exit_code == 0
    for f in (fer_folders / "train" / "sad").iterdir():
        f.unlink()
    (fer_folders / "train" / "sad").rmdir()
    for f in (fer_folders / "test" / "sad").iterdir():
        f.unlink()
    (fer_folders / "test" / "sad").rmdir()
    out = tmp_path / "d.npz"
    res = run("calib", "build", "--data", fer_folders, "--split", "train", "--task", "sad,fear",
              "--out", out)
    assert res.exit_code == 2 and "no images of sad; task sad-fear needs" in res.output
    assert not out.exists() and not out.with_suffix(".json").exists()


def test_unknown_split_is_exit_2(fer_csv, tmp_path):
    res = run("calib", "build", "--data", fer_csv, "--split", "val", "--out", tmp_path / "c.npz")
    assert res.exit_code == 2 and "no split 'val'" in res.output


def test_tampered_set_is_refused(fer_csv, tmp_path):
    out = tmp_path / "c.npz"
    run("calib", "build", "--data", fer_csv, "--per-class", 1, "--out", out)
    np.savez(out, x=np.zeros((1, 48, 48, 1), np.float32), y=np.zeros(1))
    with pytest.raises(DataError, match="sha256 differs"):
        calibration.load(out)
    out.with_suffix(".json").unlink()
    with pytest.raises(DataError, match="sidecar missing"):
        calibration.load(out)
