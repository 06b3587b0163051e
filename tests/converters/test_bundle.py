import json

import numpy as np
import pytest

from edgefer import calibration
from edgefer.device.manifest import load_manifest
from edgefer.device.runtimes import OnnxRuntime, TFLiteRuntime
from edgefer.errors import EdgeferError
from edgefer.evaluate import KerasRuntime
from edgefer.hashing import sha256_file
from tests.cli_helpers import run

NO_TOOL_FORMATS = "tflite-fp32,tflite-fp16,tflite-dynamic,tflite-int8,onnx,onnx-int8"


@pytest.fixture(scope="module")
def bundle(tiny_run, tiny_calib, tmp_path_factory):
    out = tmp_path_factory.mktemp("bundle") / "b"
    res = run(
        "convert",
        tiny_run / "model.keras",
        "--calib",
        tiny_calib,
        "--out",
        out,
        "--formats",
        NO_TOOL_FORMATS + ",edgetpu",
    )
    assert res.exit_code == 0, res.output
    return out


def test_every_format_and_a_valid_manifest(bundle, tiny_run, tiny_calib):
    m = load_manifest(bundle)
    assert [a.format for a in m.artifacts] == ["keras", *NO_TOOL_FORMATS.split(",")]
    for a in m.artifacts:
        assert (
            sha256_file(bundle / a.file) == a.sha256 and (bundle / a.file).stat().st_size == a.size
        )
    int8 = m.artifact("tflite-int8")
    assert int8.input.dtype == "int8" and int8.input.shape == [1, 48, 48, 1]
    assert int8.input.quantization.scale > 0 and int8.output.quantization is not None
    assert m.artifact("onnx").input.shape == [-1, 48, 48, 1]
    assert m.labels == ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    assert m.preprocessing.normalization == "minus_one_one" and m.preprocessing.offset == -1
    assert m.source_model.sha256 == sha256_file(tiny_run / "model.keras")
    assert m.calibration.sha256 == calibration.load(tiny_calib).meta["sha256"]
    assert "tensorflow" in m.tools and m.output == "softmax"
    # round trip: what is written is what validates and loads back unchanged
    assert load_manifest(bundle).model_dump() == json.loads((bundle / "manifest.json").read_text())


def test_int8_agrees_with_float_on_calibration_inputs(bundle, tiny_calib):
    x = calibration.load(tiny_calib).x
    ref = KerasRuntime(bundle / "model.keras").scores(x)
    for rt in (
        TFLiteRuntime(bundle / "model_int8.tflite"),
        OnnxRuntime(bundle / "model_int8.onnx"),
    ):
        out = rt.scores(x)
        assert (out.argmax(1) == ref.argmax(1)).mean() >= 0.95
        assert np.abs(out - ref).max() < 0.1
    np.testing.assert_allclose(
        TFLiteRuntime(bundle / "model_fp32.tflite").scores(x), ref, atol=1e-4
    )


def test_edgetpu_report_without_compiler(bundle):
    report = json.loads((bundle / "edgetpu_ops.json").read_text())
    assert report["mapped"] == report["total"] and report["first_unmapped"] is None
    assert {"CONV_2D", "MAX_POOL_2D", "SOFTMAX"} <= {o["op"] for o in report["ops"]}


def test_float_model_is_reported_unmapped(bundle):
    from edgefer.converters.edgetpu import op_report

    report = op_report(bundle / "model_fp32.tflite")
    assert report["mapped"] == 0 and "float tensors" in report["first_unmapped"]["reason"]


def test_benchmark_table_and_max_drop(bundle, tiny_csv):
    res = run(
        "benchmark",
        bundle,
        "--data",
        tiny_csv,
        "--split",
        "PrivateTest",
        "--json",
        "--latency-runs",
        3,
    )
    assert res.exit_code == 0, res.output
    result = json.loads(res.stdout)
    rows = {r["format"]: r for r in result["rows"]}
    assert result["reference"] == "keras" and rows["keras"]["drop_points"] == 0
    assert set(rows) == {"keras", *NO_TOOL_FORMATS.split(",")}
    assert rows["tflite-int8"]["agreement"] >= 0.9 and rows["keras"]["accuracy"] > 0.5
    assert (
        run(
            "benchmark", bundle, "--data", tiny_csv, "--max-drop", -1, "--latency-runs", 1
        ).exit_code
        == 1
    )


def _calib(tiny_csv, path, normalization, squash=1.0):
    from edgefer.data import load_fer
    from edgefer.labels import parse_task
    from edgefer.preprocess import Preprocessing

    cs = calibration.build(
        load_fer(tiny_csv),
        "Training",
        parse_task("fer7"),
        Preprocessing(normalization=normalization),
        14,
        0,
    )
    cs.x = cs.x * np.float32(squash)
    calibration.save(cs, path)
    return path


def test_mismatched_calibration_is_refused(tiny_run, tiny_csv, tmp_path):
    wrong = _calib(tiny_csv, tmp_path / "wrong.npz", "zero_one")  # [0,1] for a [-1,1] model
    out = tmp_path / "b"
    res = run(
        "convert",
        tiny_run / "model.keras",
        "--calib",
        wrong,
        "--out",
        out,
        "--formats",
        "tflite-int8",
    )
    assert res.exit_code == 2
    assert "normalization is zero_one, the model was trained with minus_one_one" in res.output
    assert not out.exists() and sorted(tmp_path.iterdir()) == [wrong.with_suffix(".json"), wrong]


def test_broken_calibration_with_force_fails_max_drop(tiny_run, tiny_csv, tmp_path):
    squashed = _calib(tiny_csv, tmp_path / "squashed.npz", "minus_one_one", squash=0.01)
    out = tmp_path / "b"
    res = run(
        "convert",
        tiny_run / "model.keras",
        "--calib",
        squashed,
        "--out",
        out,
        "--formats",
        "tflite-int8",
    )
    assert res.exit_code == 2 and "int8 would clip real inputs" in res.output
    res = run(
        "convert",
        tiny_run / "model.keras",
        "--calib",
        squashed,
        "--out",
        out,
        "--formats",
        "tflite-int8",
        "--force",
        "--eval-data",
        tiny_csv,
        "--max-drop",
        1.0,
        "--latency-runs",
        1,
    )
    assert res.exit_code == 1 and "FAIL: tflite-int8 drops" in res.output
    assert "points (more than 1.0)" in res.output


def test_bad_inputs(tiny_run, tiny_calib, tmp_path):
    junk = tmp_path / "junk.keras"
    junk.write_text("nope")
    (tmp_path / "junk.meta.json").write_text((tiny_run / "model.meta.json").read_text())
    res = run("convert", junk, "--calib", tiny_calib, "--out", tmp_path / "b")
    assert (
        res.exit_code == 2 and "not a Keras model" in res.output and not (tmp_path / "b").exists()
    )
    res = run(
        "convert", tiny_run / "model.keras", "--out", tmp_path / "b", "--formats", "tflite-int8"
    )
    assert res.exit_code == 2 and "--calib: required for tflite-int8" in res.output
    res = run(
        "convert",
        tiny_run / "model.keras",
        "--calib",
        tmp_path / "none.npz",
        "--out",
        tmp_path / "b",
    )
    assert res.exit_code == 2 and "calibration file not found" in res.output
    res = run(
        "convert", tiny_run / "model.keras", "--out", tmp_path / "b", "--formats", "tflite-int4"
    )
    assert res.exit_code == 2 and "--formats tflite-int4" in res.output


def test_ops_left_in_float_are_named_with_their_layer(bundle):
    """The int8 audit on a model whose ops all run in float (the fp32 file)."""
    from edgefer.converters.tflite import float_ops

    assert float_ops((bundle / "model_int8.tflite").read_bytes()) == []
    found = float_ops((bundle / "model_fp32.tflite").read_bytes())
    assert found[0].startswith("op CONV_2D (layer conv2d")
    assert any(f.startswith("op SOFTMAX") for f in found)


def test_manifest_validation_names_the_field(bundle, tmp_path):
    broken = tmp_path / "b"
    broken.mkdir()
    m = json.loads((bundle / "manifest.json").read_text())
    m["preprocessing"]["normalization"] = "imagenet"
    (broken / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(EdgeferError, match=r"field preprocessing.normalization: Input should be"):
        load_manifest(broken)


def test_formats_in_any_order_and_only_listed_files(tiny_run, tiny_calib, tmp_path):
    out = tmp_path / "b"
    res = run(
        "convert",
        tiny_run / "model.keras",
        "--calib",
        tiny_calib,
        "--out",
        out,
        "--formats",
        "onnx-int8,edgetpu",
    )
    assert res.exit_code == 0, res.output
    m = load_manifest(out)
    assert [a.format for a in m.artifacts] == ["keras", "onnx-int8", "tflite-int8"]
    listed = {a.file for a in m.artifacts} | {
        "manifest.json",
        "edgetpu_ops.json",
        "model.meta.json",
    }
    assert {p.name for p in out.iterdir()} == listed


def test_a_layer_without_int8_kernel_is_named_and_leaves_no_bundle(tiny_run, tiny_calib, tmp_path):
    """TFLite has no int8 CONV_3D: the converter keeps it in float, the audit refuses it."""
    import shutil

    from edgefer.tf import keras

    layers = keras.layers
    x = inputs = keras.Input((48, 48, 1), name="image")
    x = layers.Conv2D(4, 3)(x)
    x = layers.Reshape((46, 46, 4, 1))(x)
    x = layers.Conv3D(2, (3, 3, 2), name="volume_conv")(x)
    x = layers.GlobalAveragePooling3D()(x)
    outputs = layers.Dense(7, activation="softmax")(x)
    model_path = tmp_path / "model.keras"
    keras.Model(inputs, outputs).save(model_path)
    shutil.copy(tiny_run / "model.meta.json", tmp_path / "model.meta.json")
    out = tmp_path / "b"
    res = run(
        "convert",
        model_path,
        "--calib",
        tiny_calib,
        "--out",
        out,
        "--formats",
        "tflite-fp32,tflite-int8",
    )
    assert res.exit_code == 2
    assert "op CONV_3D (layer volume_conv) has no int8 kernel" in res.output
    assert {p.name for p in tmp_path.iterdir()} == {"model.keras", "model.meta.json"}  # no temp dir
