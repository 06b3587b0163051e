"""Property tests of calibration sets (`NAME.npz` + `NAME.json`): whatever the two files hold,
`calibration.load` returns a set that is what its sidecar says, or raises one DataError whose
message is one line naming one of the two files -- never another exception.

EDGEFER_PROPERTY_EXAMPLES=1000 python -m pytest tests/test_calibration_properties.py searches longer.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from edgefer import calibration
from edgefer.data.dataset import FerData
from edgefer.errors import DataError
from edgefer.hashing import sha256_file
from edgefer.labels import FER7, parse_task
from edgefer.preprocess import NORMALIZATIONS, Preprocessing

EXAMPLES = int(os.environ.get("EDGEFER_PROPERTY_EXAMPLES", "60"))
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
)


def assert_one_line(message: str) -> None:
    assert message and message.splitlines() == [message], repr(message)  # no line break of any kind


# ---------------------------------------------------------------------------------------------
# A valid set to start from, built the way `edgefer calib build` builds one


@st.composite
def calibration_sets(draw):
    """(CalibrationSet from calibration.build, the request) for a random small data set."""
    classes = draw(st.lists(st.integers(0, 6), min_size=2, max_size=7, unique=True))
    prep = Preprocessing(
        size=draw(st.sampled_from([8, 12, 48])),
        channels=draw(st.sampled_from([1, 3])),
        normalization=draw(st.sampled_from(list(NORMALIZATIONS))),
    )
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n = draw(st.integers(len(classes), 30))
    labels = np.concatenate([classes, rng.integers(0, 7, n - len(classes))]).astype(np.int64)
    data = FerData(
        rng.integers(0, 256, (n, 48, 48), dtype=np.uint8),
        labels,
        np.zeros(n, np.int64),
        ("Training",),
        "memory",
    )
    task = parse_task(",".join(FER7[c] for c in classes))
    per_class = draw(st.integers(1, 6))
    return calibration.build(data, "Training", task, prep, per_class, draw(st.integers(0, 99)))


@SETTINGS
@given(cs=calibration_sets())
def test_build_save_load_round_trip(cs):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "c.npz"
        meta = calibration.save(cs, path)
        back = calibration.load(path)
    np.testing.assert_array_equal(back.x, cs.x)
    np.testing.assert_array_equal(back.y, cs.y)
    assert back.x.dtype == np.float32 and back.y.dtype == np.int64
    assert back.meta == meta and back.preprocessing.input_shape == back.x.shape[1:]
    k = len(meta["class_names"])
    assert sorted(set(back.y.tolist())) == list(range(k))  # stratified: every class is there
    assert list(meta["counts"].values()) == np.bincount(back.y, minlength=k).tolist()
    lo, hi = back.preprocessing.value_range
    assert back.x.min() >= lo - 1e-6 and back.x.max() <= hi + 1e-6


# ---------------------------------------------------------------------------------------------
# Damage


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
SIDECAR_FIELDS = [
    "format",
    "sha256",
    "task",
    "class_names",
    "counts",
    "count",
    "preprocessing",
    "file",
    "source",
    "created",
    "preprocessing.size",
    "preprocessing.channels",
    "preprocessing.normalization",
    "preprocessing.scale",
    "preprocessing.offset",
]
ANY_DTYPE = (
    hnp.scalar_dtypes()
    | hnp.byte_string_dtypes()
    | hnp.unicode_string_dtypes()
    | st.sampled_from([np.dtype(">f4"), np.dtype(np.float16)])
)


@st.composite
def arrays_like(draw, x: np.ndarray, y: np.ndarray) -> dict:
    """New arrays for the .npz: the old ones with a defect, or anything at all."""
    kind = draw(st.sampled_from(["non-finite", "labels", "random x", "random y", "drop", "extra"]))
    if kind == "non-finite":
        x = x.copy()
        for _ in range(draw(st.integers(1, 3))):
            x.flat[draw(st.integers(0, x.size - 1))] = draw(
                st.sampled_from([np.nan, np.inf, -np.inf])
            )
        return {"x": x, "y": y}
    if kind == "labels":
        y = draw(
            hnp.arrays(
                draw(
                    hnp.integer_dtypes()
                    | hnp.unsigned_integer_dtypes()
                    | hnp.floating_dtypes()
                    | hnp.boolean_dtypes()
                ),
                draw(st.sampled_from([y.shape, (), (len(y) + 1,), (len(y), 1)])),
            )
        )
        return {"x": x, "y": y}
    if kind == "random x":
        return {
            "x": draw(
                hnp.arrays(
                    ANY_DTYPE, hnp.array_shapes(min_dims=0, max_dims=5, min_side=0, max_side=4)
                )
            ),
            "y": y,
        }
    if kind == "random y":
        return {
            "x": x,
            "y": draw(
                hnp.arrays(
                    ANY_DTYPE, hnp.array_shapes(min_dims=0, max_dims=2, min_side=0, max_side=9)
                )
            ),
        }
    if kind == "drop":
        return draw(st.sampled_from([{"x": x}, {"y": y}, {}]))
    return {"x": x, "y": y, draw(st.text(min_size=1, max_size=5)): np.zeros(2)}


def put(meta: dict, dotted: str, value, delete: bool) -> None:
    *parents, key = dotted.split(".")
    for p in parents:
        meta = meta.get(p) if isinstance(meta.get(p), dict) else meta.setdefault(p, {})
    if delete:
        meta.pop(key, None)
    else:
        meta[key] = value


@st.composite
def damages(draw):
    """A function (npz path, sidecar path) -> None that damages a saved set in one way."""
    kind = draw(
        st.sampled_from(["arrays", "sidecar json", "sidecar field", "sidecar bytes", "npz bytes"])
    )
    resign = draw(st.booleans() | st.just(True))  # put the damaged .npz's sha256 in the sidecar

    def resign_sidecar(npz: Path, side: Path):
        meta = json.loads(side.read_text())
        meta["sha256"] = sha256_file(npz)
        side.write_text(json.dumps(meta))

    if kind == "arrays":
        compressed = draw(st.booleans())
        seed = draw(st.data())

        def damage(npz, side):
            with np.load(npz) as f:
                x, y = f["x"], f["y"]
            arrays = seed.draw(arrays_like(x, y))
            (np.savez_compressed if compressed else np.savez)(npz, **arrays)
            if resign:
                resign_sidecar(npz, side)

        return kind, damage
    if kind == "sidecar json":
        value = draw(JSON)
        return kind, lambda npz, side: side.write_text(json.dumps(value))
    if kind == "sidecar field":
        field, value, delete = (
            draw(st.sampled_from(SIDECAR_FIELDS)),
            draw(JSON),
            draw(st.booleans()),
        )

        def damage(npz, side):
            meta = json.loads(side.read_text())
            put(meta, field, value, delete)
            side.write_text(json.dumps(meta))

        return kind, damage
    if kind == "sidecar bytes":
        data = draw(st.binary(max_size=40))
        cut = draw(st.integers(0, 400))

        def damage(npz, side):
            side.write_bytes(side.read_bytes()[:cut] + data)

        return kind, damage
    cut, flips = (
        draw(st.integers(0, 10_000)),
        draw(st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=3)),
    )

    def damage(npz, side):
        data = bytearray(npz.read_bytes())
        for at, value in flips:
            data[at % len(data)] = value
        npz.write_bytes(bytes(data[: len(data) - cut % (len(data) + 1)]))
        if resign:
            resign_sidecar(npz, side)

    return kind, damage


def assert_valid(cs: calibration.CalibrationSet, path: Path) -> None:
    prep = cs.preprocessing
    n = len(cs.x)
    assert cs.x.dtype == np.float32 and cs.x.ndim == 4 and n > 0
    assert cs.x.shape[1:] == prep.input_shape
    assert np.isfinite(cs.x).all()
    assert cs.y.dtype == np.int64 and cs.y.shape == (n,)
    k = len(cs.meta["class_names"])
    assert cs.y.min() >= 0 and cs.y.max() < k
    assert cs.meta["count"] == n
    assert list(cs.meta["counts"].values()) == np.bincount(cs.y, minlength=k).tolist()
    assert cs.meta["sha256"] == sha256_file(path)


@SETTINGS
@given(cs=calibration_sets(), damage=damages())
@example(cs=None, damage=("truncated", lambda npz, side: npz.write_bytes(npz.read_bytes()[:100])))
@example(cs=None, damage=("sidecar []", lambda npz, side: side.write_text("[]")))
@example(cs=None, damage=("deep sidecar", lambda npz, side: side.write_text("[" * 50_000)))
@example(cs=None, damage=("nan", lambda npz, side: _nan(npz, side)))
def test_damaged_set_is_a_valid_set_or_one_data_error(cs, damage):
    kind, fn = damage
    if cs is None:  # the explicit examples: a small valid set
        cs = _small_set()
    with tempfile.TemporaryDirectory() as tmp:
        npz = Path(tmp) / "c.npz"
        side = calibration.sidecar_path(npz)
        calibration.save(cs, npz)
        fn(npz, side)
        try:
            got = calibration.load(npz)
        except DataError as exc:
            assert type(exc) is DataError
            assert_one_line(str(exc))
            assert str(exc).startswith((f"{npz}: ", f"{side}: ")), (kind, str(exc))
            return
        assert_valid(got, npz)


def _small_set() -> calibration.CalibrationSet:
    rng = np.random.default_rng(0)
    data = FerData(
        rng.integers(0, 256, (14, 48, 48), dtype=np.uint8),
        np.arange(14) % 7,
        np.zeros(14, np.int64),
        ("Training",),
        "memory",
    )
    return calibration.build(data, "Training", parse_task("fer7"), Preprocessing(), 2, 0)


def _nan(npz: Path, side: Path) -> None:
    with np.load(npz) as f:
        x, y = f["x"].copy(), f["y"]
    x[0, 0, 0, 0] = np.nan
    np.savez_compressed(npz, x=x, y=y)
    meta = json.loads(side.read_text())
    side.write_text(json.dumps({**meta, "sha256": sha256_file(npz)}))
