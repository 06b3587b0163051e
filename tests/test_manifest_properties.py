"""Property tests of the bundle manifest loader (`edgefer.device.manifest.load_manifest`): any
manifest.json -- random bytes, random JSON, a valid manifest with one field changed -- gives a
Manifest or one EdgeferError whose message is one line naming the file, never another exception.

EDGEFER_PROPERTY_EXAMPLES=1000 python -m pytest tests/test_manifest_properties.py searches longer.
"""

from __future__ import annotations

import copy
import json
import os
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from edgefer.device.manifest import Manifest, load_manifest
from edgefer.errors import EdgeferError
from edgefer.labels import FER7

EXAMPLES = int(os.environ.get("EDGEFER_PROPERTY_EXAMPLES", "100"))
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

TENSOR = {
    "name": "input",
    "shape": [1, 48, 48, 1],
    "dtype": "int8",
    "quantization": {"scale": 0.00392, "zero_point": -128},
}
VALID = {
    "format": "edgefer-bundle/1",
    "arch": "edge",
    "task": "fer7",
    "labels": list(FER7),
    "output": "softmax",
    "preprocessing": {
        "size": 48,
        "channels": 1,
        "normalization": "zero_one",
        "scale": 1 / 255,
        "offset": 0.0,
        "grayscale": True,
        "layout": "NHWC",
    },
    "source_model": {"file": "model.keras", "sha256": "0" * 64},
    "calibration": {"file": "fer7.npz", "sha256": "1" * 64, "count": 700},
    "tools": {"edgefer": "0.1.0", "tensorflow": "2.18.0"},
    "created": "2026-01-01T00:00:00Z",
    "artifacts": [
        {"file": "model.keras", "format": "keras", "sha256": "a" * 64, "size": 10},
        {
            "file": "model_int8.tflite",
            "format": "tflite-int8",
            "sha256": "b" * 64,
            "size": 20,
            "input": TENSOR,
            "output": {**TENSOR, "name": "output", "shape": [1, 7]},
        },
    ],
}
VALID_BYTES = json.dumps(VALID, indent=2).encode()


def test_the_base_manifest_is_valid(tmp_path):
    (tmp_path / "manifest.json").write_bytes(VALID_BYTES)
    assert load_manifest(tmp_path).model_dump(exclude_unset=True) == VALID


def outcome(data: bytes):
    """Load `data` as a bundle's manifest.json: the Manifest, or the one-line message."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "manifest.json"
        path.write_bytes(data)
        try:
            return load_manifest(tmp)
        except EdgeferError as exc:
            msg = str(exc)
            assert msg and msg.splitlines() == [msg], repr(msg)  # no line break of any kind
            assert msg.startswith(f"{path}: "), msg
            return msg


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def paths(value, prefix=()):
    """Every (path to a container, key) in a JSON value, containers first."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield prefix, k
            yield from paths(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield prefix, i
            yield from paths(v, prefix + (i,))


ALL_PATHS = list(paths(VALID))


@st.composite
def mutated_manifests(draw):
    """The valid manifest with one value replaced, one key deleted or one key added."""
    doc = copy.deepcopy(VALID)
    parent_path, key = draw(st.sampled_from(ALL_PATHS))
    parent = doc
    for p in parent_path:
        parent = parent[p]
    op = draw(st.sampled_from(["replace", "delete", "add"]))
    if op == "replace":
        parent[key] = draw(JSON)
    elif op == "delete":
        del parent[key]
    elif isinstance(parent, dict):
        parent[draw(st.text(max_size=6))] = draw(JSON)
    else:
        parent.append(draw(JSON))
    return doc


@SETTINGS
@given(
    data=st.binary(max_size=200)
    | st.builds(
        lambda cut, junk: VALID_BYTES[:cut] + junk,
        st.integers(0, len(VALID_BYTES)),
        st.binary(max_size=4),
    )
)
@example(data=b"\xff\xfe{}")  # not UTF-8 (was UnicodeDecodeError)
@example(data='{"arch": "é"}'.encode("latin-1"))
@example(data="\ufeff{}".encode())
@example(data="{}".encode("utf-16"))
@example(data=b"[" * 100_000)  # nesting deeper than the JSON parser's recursion limit
def test_any_bytes_give_a_manifest_or_one_line(data):
    outcome(data)


@SETTINGS
@given(value=JSON)
def test_any_json_value_gives_a_manifest_or_one_line(value):
    outcome(json.dumps(value).encode())


@SETTINGS
@given(digits=st.integers(4301, 6000))
@example(digits=5000)
def test_a_huge_integer_gives_one_line(digits):
    outcome(b'{"format": ' + b"1" * digits + b"}")


@SETTINGS
@given(doc=mutated_manifests())
@example(doc={**VALID, "extra\nkey": 1})
@example(doc={**VALID, "tools": {"a\nb": 1}})
@example(doc={**VALID, "preprocessing": {**VALID["preprocessing"], "x\x1cy": 0}})
def test_a_changed_valid_manifest_gives_a_manifest_or_one_line(doc):
    got = outcome(json.dumps(doc).encode())
    if isinstance(got, Manifest):
        assert got.model_dump(exclude_defaults=True) == Manifest.model_validate(doc).model_dump(
            exclude_defaults=True
        )
