import json

import numpy as np
import pytest

from edgefer import calibration
from edgefer.errors import DataError
from edgefer.hashing import sha256_file
from tests.cli_helpers import run


def test_build_stratified_preprocessed(fer_csv, tmp_path):
    out = tmp_path / "calib" / "c.npz"
    res = run(
        "calib",
        "build",
        "--data",
        fer_csv,
        "--per-class",
        1,
        "--out",
        out,
        "--normalization",
        "minus_one_one",
        "--seed",
        3,
    )
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
    run(
        "calib",
        "build",
        "--data",
        fer_csv,
        "--per-class",
        1,
        "--out",
        again,
        "--normalization",
        "minus_one_one",
        "--seed",
        3,
    )
    np.testing.assert_array_equal(calibration.load(again).x, cs.x)


def test_short_class_takes_all_and_says_so(fer_csv, tmp_path):
    res = run(
        "calib",
        "build",
        "--data",
        fer_csv,
        "--per-class",
        5,
        "--out",
        tmp_path / "c.npz",
        "--task",
        "sad-vs-fear",
        "--channels",
        "3",
    )
    assert res.exit_code == 0
    assert "fewer than 5 images for sad, fear" in res.output
    assert calibration.load(tmp_path / "c.npz").x.shape == (4, 48, 48, 3)


def test_missing_class_for_task_writes_nothing(tmp_path, fer_folders):
    res = run(
        "calib",
        "build",
        "--data",
        fer_folders,
        "--split",
        "train",
        "--task",
        "sad,fear",
        "--out",
        tmp_path / "c.npz",
        "--per-class",
        2,
    )
    assert res.exit_code == 0
    for f in (fer_folders / "train" / "sad").iterdir():
        f.unlink()
    (fer_folders / "train" / "sad").rmdir()
    for f in (fer_folders / "test" / "sad").iterdir():
        f.unlink()
    (fer_folders / "test" / "sad").rmdir()
    out = tmp_path / "d.npz"
    res = run(
        "calib",
        "build",
        "--data",
        fer_folders,
        "--split",
        "train",
        "--task",
        "sad,fear",
        "--out",
        out,
    )
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


def assert_one_error_line(res, *fragments):
    """Exit 2, exactly one line `error: ...` on the output, no exception escaped the CLI."""
    assert res.exit_code == 2, res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    assert "Traceback" not in res.output
    lines = res.output.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.fixture
def built(fer_csv, tmp_path):
    out = tmp_path / "c.npz"
    res = run("calib", "build", "--data", fer_csv, "--per-class", 1, "--out", out)
    assert res.exit_code == 0, res.output
    return out


def rewrite_npz(path, **arrays):
    """Replace the .npz and put its new sha256 in the sidecar, as if built like that."""
    np.savez_compressed(path, **arrays)
    side = path.with_suffix(".json")
    meta = json.loads(side.read_text())
    meta["sha256"] = sha256_file(path)
    side.write_text(json.dumps(meta))


def test_info_summarizes_a_good_set(built):
    res = run("calib", "info", built)
    assert res.exit_code == 0, res.output
    assert "7 samples, task fer7, x (7, 48, 48, 1)" in res.output
    res = run("calib", "info", built, "--json")
    out = json.loads(res.stdout)
    assert out["count"] == 7 and out["counts"]["happy"] == 1 and out["shape"] == [7, 48, 48, 1]


def test_truncated_npz_is_one_line(built):
    data = built.read_bytes()
    built.write_bytes(data[: len(data) // 2])  # was zipfile.BadZipFile
    assert_one_error_line(run("calib", "info", built), f"error: {built}: not a readable .npz")


def test_truncated_npz_with_matching_sidecar_is_one_line(built):
    """Truncated *before* the sidecar was written (so the sha256 matches): the archive itself."""
    data = built.read_bytes()
    built.write_bytes(data[:-30])
    side = built.with_suffix(".json")
    side.write_text(json.dumps({**json.loads(side.read_text()), "sha256": sha256_file(built)}))
    assert_one_error_line(run("calib", "info", built), "not a readable .npz")


@pytest.mark.parametrize(
    "sidecar, expected",
    [
        ("[]", "a JSON array; expected an object"),  # was AttributeError
        ("7", "a JSON number; expected an object"),
        ('"x"', "a JSON string; expected an object"),
        ("null", "a JSON null; expected an object"),
        ("{", "not JSON"),
        ("[" * 100_000, "not JSON"),  # was RecursionError
        ("1" * 5000, "not JSON"),  # int() digit limit: a ValueError that is not a JSONDecodeError
        ('{"format": "edgefer-calibration/1\\nx"}', 'format "edgefer-calibration/1\\nx": expected'),
    ],
)
def test_bad_sidecar_is_one_line(built, sidecar, expected):
    side = built.with_suffix(".json")
    side.write_text(sidecar)
    assert_one_error_line(run("calib", "info", built), f"error: {side}: {expected}")


def test_non_utf8_sidecar_is_one_line(built):
    built.with_suffix(".json").write_bytes(b'{"format": "\xff"}')
    assert_one_error_line(run("calib", "info", built), "not UTF-8 text (byte 12)")


@pytest.mark.parametrize(
    "field, value, expected",
    [
        ("preprocessing", [], "field preprocessing: []; expected an object"),
        (
            "preprocessing",
            {"size": 48, "channels": 1},
            "field preprocessing.normalization: missing",
        ),
        (
            "preprocessing",
            {"size": "48", "channels": 1, "normalization": "zero_one"},
            'field preprocessing.size: "48"; expected an integer 8..1024',
        ),
        ("class_names", "angry", 'field class_names: "angry"; expected a list'),
        ("counts", [1, 2], "field counts: [1, 2]; expected samples per class"),
        ("count", True, "field count: true; expected the number of samples"),
        ("sha256", None, "field sha256: null; expected the .npz's sha256"),
    ],
)
def test_ill_typed_sidecar_field_is_one_line(built, field, value, expected):
    side = built.with_suffix(".json")
    side.write_text(json.dumps({**json.loads(side.read_text()), field: value}))
    assert_one_error_line(run("calib", "info", built), expected)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_samples_are_refused(built, value):
    x = calibration.load(built).x.copy()
    x[3, 10, 10, 0] = value
    rewrite_npz(built, x=x, y=calibration.load(built).y)
    assert_one_error_line(run("calib", "info", built), "x has 1 NaN or infinite values")


@pytest.mark.parametrize(
    "arrays, expected",
    [
        (
            lambda x, y: {"x": x, "y": np.array(3)},
            "y is int64 (); expected integer labels of shape (7,)",
        ),
        (lambda x, y: {"x": x, "y": y + 0.5}, "y is float64 (7,)"),
        (lambda x, y: {"x": x, "y": y + 7}, "y has labels 7..13; expected 0..6"),
        (
            lambda x, y: {"x": x[:, :20, :20], "y": y},
            "x is float32 (7, 20, 20, 1); expected float32 (N, 48, 48, 1)",
        ),
        (lambda x, y: {"x": x.astype(np.float64), "y": y}, "x is float64"),
        (lambda x, y: {"x": x}, "no array y"),
        (lambda x, y: {"x": x, "y": np.zeros(7, np.int64)}, "do not match the .npz's 7 samples"),
    ],
)
def test_arrays_unlike_the_sidecar_are_one_line(built, arrays, expected):
    cs = calibration.load(built)
    rewrite_npz(built, **arrays(cs.x, cs.y))
    assert_one_error_line(run("calib", "info", built), expected)


def test_npy_instead_of_npz_is_one_line(built):
    np.save(built.with_suffix(".npy"), np.zeros(3))
    built.write_bytes(built.with_suffix(".npy").read_bytes())
    assert_one_error_line(run("calib", "info", built), "a single numpy array (.npy)")


def test_sidecar_given_instead_of_npz_is_one_line(built):
    assert_one_error_line(
        run("calib", "info", built.with_suffix(".json")), "expected the calibration set's .npz"
    )
