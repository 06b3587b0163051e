"""`edgefer convert`: one Keras model -> a bundle of formats + manifest.json.

The bundle is built in a temporary directory and renamed into place, so a failure never leaves a
partial bundle behind.
"""

from __future__ import annotations

import json
import time
from importlib import metadata
from pathlib import Path

from edgefer import calibration
from edgefer.atomic import atomic_dir
from edgefer.device.backends import runtime_specs
from edgefer.device.manifest import FORMAT, FORMATS, Manifest, TensorSpec
from edgefer.device.runtimes import OnnxRuntime, TFLiteRuntime
from edgefer.errors import EdgeferError
from edgefer.evaluate import load_keras
from edgefer.hashing import sha256_file
from edgefer.model_card import read_card, write_card

DEFAULT_FORMATS = tuple(f for f in FORMATS if f != "keras")  # the source is always copied
NEEDS_CALIBRATION = {"tflite-int8", "onnx-int8", "edgetpu"}
FILES = {
    "keras": "model.keras",
    "tflite-fp32": "model_fp32.tflite",
    "tflite-fp16": "model_fp16.tflite",
    "tflite-dynamic": "model_dynamic.tflite",
    "tflite-int8": "model_int8.tflite",
    "onnx": "model.onnx",
    "onnx-int8": "model_int8.onnx",
    "edgetpu": "model_int8_edgetpu.tflite",
}


def _tools() -> dict[str, str]:
    out = {}
    for dist in (
        "edgefer",
        "tensorflow",
        "keras",
        "tf2onnx",
        "onnx",
        "onnxruntime",
        "ai-edge-litert",
    ):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return out


def _specs(fmt: str, path: Path) -> tuple[TensorSpec | None, TensorSpec | None]:
    if fmt == "keras":
        return None, None
    return runtime_specs(OnnxRuntime(path) if fmt.startswith("onnx") else TFLiteRuntime(path))


def convert_bundle(
    model_path: str | Path,
    out_dir: str | Path,
    formats=DEFAULT_FORMATS,
    calib_path: str | Path | None = None,
    calib_count: int | None = None,
    io_type: str = "int8",
    force: bool = False,
    opset: int = 17,
    detectors=(),
    log=print,
) -> tuple[Manifest, dict | None]:
    """Convert and write the bundle; returns the manifest and the Edge TPU op report (if asked)."""
    from edgefer.converters import edgetpu
    from edgefer.converters.calibration_check import check, subset
    from edgefer.converters.detectors import add_detector
    from edgefer.converters.onnx import convert_onnx, quantize_onnx
    from edgefer.converters.tflite import convert_tflite

    unknown = [f for f in formats if f not in FORMATS or f == "keras"]
    if unknown:
        raise EdgeferError(f"--formats {unknown[0]}: expected some of {', '.join(DEFAULT_FORMATS)}")
    model_path = Path(model_path)
    card = read_card(model_path)
    model = load_keras(model_path)
    calib_x, calib_ref = None, None
    if NEEDS_CALIBRATION & set(formats):
        if calib_path is None:
            raise EdgeferError(
                f"--calib: required for {', '.join(sorted(NEEDS_CALIBRATION & set(formats)))}"
            )
        calib = calibration.load(calib_path)
        problems = check(calib, card, str(calib_path))
        for p in problems:
            if not force:
                raise EdgeferError(
                    f"{calib_path}: {p}; rebuild it to match the model or pass --force"
                )
            log(f"warning: {calib_path}: {p} (--force)")
        calib_x = subset(calib, calib_count)
        calib_ref = {
            "file": Path(calib_path).name,
            "sha256": calib.meta["sha256"],
            "count": len(calib_x),
        }

    report = None
    with atomic_dir(out_dir) as tmp:
        model.save(tmp / FILES["keras"])
        write_card(tmp / FILES["keras"], card)  # the float model stays re-convertible
        done = ["keras"]

        def ensure(fmt: str) -> Path:
            """Make a format's file once, whether asked for or needed by another format."""
            path = tmp / FILES[fmt]
            if not path.is_file():
                if fmt.startswith("tflite"):
                    path.write_bytes(convert_tflite(model, fmt, calib_x, io_type))
                elif fmt == "onnx":
                    path.write_bytes(convert_onnx(model, opset))
                else:  # onnx-int8
                    quantize_onnx(ensure("onnx"), path, calib_x)
            return path

        for fmt in formats:
            t0 = time.perf_counter()
            if fmt == "edgetpu":
                # The compiled model's CPU twin stays in the bundle and the manifest.
                int8 = ensure("tflite-int8")
                if "tflite-int8" not in done:
                    done.append("tflite-int8")
                report = edgetpu.op_report(int8)
                (tmp / "edgetpu_ops.json").write_text(json.dumps(report, indent=1) + "\n")
                try:
                    path = edgetpu.compile_edgetpu(int8, tmp)
                except EdgeferError as exc:
                    log(f"edgetpu: {exc}")
                    continue
            else:
                path = ensure(fmt)
            if fmt not in done:
                done.append(fmt)
            log(f"{fmt}: {path.stat().st_size / 1024:.0f} KiB in {time.perf_counter() - t0:.1f} s")
        if "onnx" not in done:
            (tmp / FILES["onnx"]).unlink(missing_ok=True)  # only made to quantize from
        artifacts = []
        for fmt in done:
            path = tmp / FILES[fmt]
            inp, out = _specs(fmt, path)
            artifacts.append(
                {
                    "file": path.name,
                    "format": fmt,
                    "sha256": sha256_file(path),
                    "size": path.stat().st_size,
                    "input": inp,
                    "output": out,
                }
            )
        manifest = Manifest(
            format=FORMAT,
            arch=card["arch"],
            task=card["task"],
            labels=card["class_names"],
            output="sigmoid" if card.get("binary_sigmoid") else "softmax",
            preprocessing=card["preprocessing"],
            source_model={"file": model_path.name, "sha256": sha256_file(model_path)},
            calibration=calib_ref,
            tools=_tools(),
            detectors=[add_detector(d, tmp) for d in detectors],
            created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            artifacts=artifacts,
        )
        (tmp / "manifest.json").write_text(manifest.model_dump_json(indent=2) + "\n")
    return manifest, report
