"""Known-answer tests: a model whose right scores follow from its input (tests/known_answer.py),
converted to every format, must give those scores through the device runtimes, the pipeline on
colour frames, `edgefer evaluate` and `edgefer benchmark`. A mis-fed model (wrong zero point, its
sign, scale/offset, channel order, label order, a swapped file) fails here."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from edgefer.device.backends import open_runtime
from edgefer.device.manifest import load_manifest
from edgefer.device.pipeline import Pipeline
from edgefer.errors import EdgeferError
from edgefer.labels import FER7
from tests import known_answer
from tests.cli_helpers import run
from tests.conftest import KNOWN_FORMATS, known_answer_bundle

# Largest score error each format may make: float formats are exact up to float rounding; int8
# steps are 1/256 on the output and 2/255 on the input.
TOLERANCE = {
    "tflite-fp32": 1e-5,
    "onnx": 1e-5,
    "tflite-fp16": 2e-3,
    "tflite-dynamic": 1e-2,
    "tflite-int8": 1.5e-2,
    "onnx-int8": 1.5e-2,
}


def runtime(bundle, fmt):
    return open_runtime(bundle, "onnx" if fmt.startswith("onnx") else "cpu", fmt=fmt)[0]


@pytest.mark.parametrize("fmt", KNOWN_FORMATS)
def test_every_format_gives_the_known_scores(known_bundle, fmt):
    from edgefer.preprocess import Preprocessing

    images, labels = known_answer.dataset()
    x = Preprocessing(normalization="minus_one_one").apply(images)
    got = runtime(known_bundle, fmt).scores(x)
    want = known_answer.expected_scores(images)
    np.testing.assert_allclose(got, want, atol=TOLERANCE[fmt])
    assert (got.argmax(axis=1) == labels).all()


class FixedBox:
    """A detector that finds the face where the test drew it: the pipeline is tested, not Haar."""

    def __call__(self, gray):
        return [known_answer.BOX]


@pytest.mark.parametrize("fmt", KNOWN_FORMATS)
def test_pipeline_on_colour_frames_gives_the_known_label_and_scores(known_bundle, fmt):
    """Frames whose B, G and R differ: read as RGB, the face's gray and so its scores change."""
    rt, manifest, _ = open_runtime(
        known_bundle, "onnx" if fmt.startswith("onnx") else "cpu", fmt=fmt
    )
    pipe = Pipeline(rt, manifest, FixedBox())
    for k in range(7):
        face = known_answer.class_image(k)
        (d,) = pipe(known_answer.colour_frame(face)).detections
        want = known_answer.expected_scores(face[None])[0]
        assert d.box == known_answer.BOX
        assert d.label == FER7[k]
        np.testing.assert_allclose([d.scores[c] for c in FER7], want, atol=TOLERANCE[fmt])


@pytest.mark.parametrize("fmt", ["tflite-int8", "onnx-int8"])
def test_evaluate_scores_a_bundle_format_perfectly(known_bundle, known_csv, fmt):
    art = load_manifest(known_bundle).artifact(fmt)
    res = run(
        "evaluate", known_bundle / art.file, "--data", known_csv, "--split", "PrivateTest", "--json"
    )
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["accuracy"] == 1.0
    assert all(report["per_class"][c]["recall"] == 1.0 for c in FER7)


def test_benchmark_scores_every_format_perfectly(known_bundle, known_csv):
    res = run("benchmark", known_bundle, "--data", known_csv, "--json", "--latency-runs", 2)
    assert res.exit_code == 0, res.output
    result = json.loads(res.stdout)
    rows = {r["format"]: r for r in result["rows"]}
    assert set(rows) == {"keras", *KNOWN_FORMATS} and result["unscored"] == []
    for fmt, r in rows.items():
        assert (r["accuracy"], r["agreement"], r["drop_points"]) == (1.0, 1.0, 0.0), fmt
        assert r["size_bytes"] == (known_bundle / r["file"]).stat().st_size


@pytest.fixture(scope="module")
def lookalike_bundle(tmp_path_factory):
    """The same tensors, other answers: classes 0 and 3 swapped."""
    return known_answer_bundle(tmp_path_factory.mktemp("lookalike"), (3, 1, 2, 0, 4, 5, 6))


@pytest.fixture
def bundle_copy(known_bundle, tmp_path):
    out = tmp_path / "bundle"
    shutil.copytree(known_bundle, out)
    return out


def edit_manifest(bundle, change):
    path = bundle / "manifest.json"
    m = json.loads(path.read_text())
    change(m)
    path.write_text(json.dumps(m))


def int8_entry(m):
    return next(a for a in m["artifacts"] if a["format"] == "tflite-int8")


def test_a_swapped_valid_model_is_refused_everywhere(bundle_copy, lookalike_bundle, known_csv):
    shutil.copy(lookalike_bundle / "model_int8.tflite", bundle_copy / "model_int8.tflite")
    with pytest.raises(EdgeferError, match="sha256 differs from manifest.json"):
        open_runtime(bundle_copy, "cpu")
    res = run("evaluate", bundle_copy / "model_int8.tflite", "--data", known_csv)
    assert res.exit_code == 2 and "sha256 differs" in res.output
    res = run("benchmark", bundle_copy, "--data", known_csv, "--latency-runs", 1)
    assert res.exit_code == 1
    assert "FAIL: tflite-int8 could not be scored" in res.output and "sha256 differs" in res.output


def test_the_float_file_copied_over_the_int8_one_is_refused(bundle_copy, known_csv):
    shutil.copy(bundle_copy / "model_fp32.tflite", bundle_copy / "model_int8.tflite")
    res = run("benchmark", bundle_copy, "--data", known_csv, "--latency-runs", 1, "--json")
    assert res.exit_code == 1
    result = json.loads(res.stdout)
    assert "tflite-int8" not in {r["format"] for r in result["rows"]}
    assert [u["format"] for u in result["unscored"]] == ["tflite-int8"]


def test_the_hash_is_checked_before_the_file_is_parsed(bundle_copy):
    (bundle_copy / "model_int8.tflite").write_bytes(b"garbage" * 100)
    with pytest.raises(EdgeferError, match="sha256 differs"):
        open_runtime(bundle_copy, "cpu")


def test_a_manifest_that_disagrees_with_the_model_is_refused(bundle_copy):
    """Hash intact, manifest edited: its tensors, quantization and labels must match the model."""

    def zero_point(m):
        int8_entry(m)["input"]["quantization"]["zero_point"] += 1

    def scale(m):
        int8_entry(m)["input"]["quantization"]["scale"] *= 2

    def output_dtype(m):
        int8_entry(m)["output"]["dtype"] = "uint8"

    def too_few_labels(m):
        m["labels"] = m["labels"][:-1]

    for change, message in [
        (zero_point, "model input"),
        (scale, "model input"),
        (output_dtype, "model output"),
        (too_few_labels, "does not fit the 6 labels"),
    ]:
        original = (bundle_copy / "manifest.json").read_text()
        edit_manifest(bundle_copy, change)
        with pytest.raises(EdgeferError, match=message):
            open_runtime(bundle_copy, "cpu")
        (bundle_copy / "manifest.json").write_text(original)
    open_runtime(bundle_copy, "cpu")  # restored: accepted


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda m: m.update(labels=[*m["labels"][:-1], m["labels"][0]]), "appears more than once"),
        (
            lambda m: int8_entry(m).update(file="../model_int8.tflite"),
            "not a file name inside the bundle",
        ),
        (lambda m: m["preprocessing"].update(scale=1 / 255), "do not match normalization"),
    ],
)
def test_manifest_fields_are_validated(bundle_copy, change, message):
    edit_manifest(bundle_copy, change)
    with pytest.raises(EdgeferError, match=message):
        load_manifest(bundle_copy)


def test_a_symlink_out_of_the_bundle_is_refused(bundle_copy, tmp_path):
    outside = tmp_path / "outside.tflite"
    shutil.move(bundle_copy / "model_int8.tflite", outside)
    (bundle_copy / "model_int8.tflite").symlink_to(outside)
    with pytest.raises(EdgeferError, match="leads outside the bundle directory"):
        open_runtime(bundle_copy, "cpu")


def test_max_drop_must_be_a_number(known_bundle, known_csv):
    res = run("benchmark", known_bundle, "--data", known_csv, "--max-drop", "nan")
    assert res.exit_code == 2 and "expected a finite value" in res.output
