"""`edgefer convert`: one Keras model -> a bundle of formats + manifest.json.

The bundle is built in a temporary directory and renamed into place, so a failure never leaves a
partial bundle behind.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from edgefer import calibration
from edgefer.atomic import atomic_dir
from edgefer.device.backends import RUNTIMES, runtime_specs
from edgefer.device.formats import BY_NAME, CONVERTED, NEEDS_CALIBRATION, SOURCE, TABLE, Format
from edgefer.device.manifest import FORMAT, Manifest, TensorSpec
from edgefer.errors import EdgeferError
from edgefer.evaluate import load_keras
from edgefer.hashing import sha256_file
from edgefer.model_card import read_card, write_card

# All from the format table (edgefer.device.formats): one row per format.
DEFAULT_FORMATS = CONVERTED  # the source model is always copied
FILES = {f.name: f.file for f in TABLE}


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
    kind = BY_NAME[fmt].runtime
    return (None, None) if kind == "keras" else runtime_specs(RUNTIMES[kind](path))


@dataclass
class _Job:
    """What the makers need: the model, its calibration inputs and the conversion options."""

    model: Any
    calib_x: np.ndarray | None
    io_type: str
    opset: int
    log: Callable[[str], None]
    report: dict | None = None  # the Edge TPU op report, once made


def _tflite(row: Format, path: Path, source: None, job: _Job) -> Path:
    from edgefer.converters.tflite import convert_tflite

    path.write_bytes(convert_tflite(job.model, row.name, job.calib_x, job.io_type))
    return path


def _onnx(row: Format, path: Path, source: None, job: _Job) -> Path:
    from edgefer.converters.onnx import convert_onnx

    path.write_bytes(convert_onnx(job.model, job.opset))
    return path


def _onnx_quantized(row: Format, path: Path, source: Path, job: _Job) -> Path:
    from edgefer.converters.onnx import quantize_onnx

    quantize_onnx(source, path, job.calib_x)
    return path


def _edgetpu(row: Format, path: Path, source: Path, job: _Job) -> Path | None:
    """The op report always; the compiled model where edgetpu_compiler is installed."""
    from edgefer.converters import edgetpu

    job.report = edgetpu.op_report(source)
    (path.parent / "edgetpu_ops.json").write_text(json.dumps(job.report, indent=1) + "\n")
    try:
        return edgetpu.compile_edgetpu(source, path.parent)
    except EdgeferError as exc:
        job.log(f"edgetpu: {exc}")
        return None


# How a row's file is made, by (runtime, made_from): from the Keras model, or from another
# format's file. A maker returns the file, or None when it cannot be made here (logged).
MAKERS = {
    ("tflite", None): _tflite,
    ("onnx", None): _onnx,
    ("onnx", "onnx"): _onnx_quantized,
    ("tflite", "tflite-int8"): _edgetpu,
}


def _calibration(calib_path, calib_count, card, wanted, force, log):
    """(calibration inputs, the manifest's calibration record), or (None, None) when no asked
    format needs one. A set that does not fit the model is refused unless `force`."""
    from edgefer.converters.calibration_check import check, subset

    needs = NEEDS_CALIBRATION & set(wanted)
    if not needs:
        return None, None
    if calib_path is None:
        raise EdgeferError(f"--calib: required for {', '.join(sorted(needs))}")
    calib = calibration.load(calib_path)
    for p in check(calib, card, str(calib_path)):
        if not force:
            raise EdgeferError(f"{calib_path}: {p}; rebuild it to match the model or pass --force")
        log(f"warning: {calib_path}: {p} (--force)")
    calib_x = subset(calib, calib_count)
    ref = {"file": Path(calib_path).name, "sha256": calib.meta["sha256"], "count": len(calib_x)}
    return calib_x, ref


def _artifact(fmt: str, path: Path) -> dict:
    inp, out = _specs(fmt, path)
    return {
        "file": path.name,
        "format": fmt,
        "sha256": sha256_file(path),
        "size": path.stat().st_size,
        "input": inp,
        "output": out,
    }


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
    from edgefer.converters.detectors import add_detector

    unknown = [f for f in formats if f not in DEFAULT_FORMATS]
    if unknown:
        raise EdgeferError(f"--formats {unknown[0]}: expected some of {', '.join(DEFAULT_FORMATS)}")
    model_path = Path(model_path)
    card = read_card(model_path)
    model = load_keras(model_path)
    calib_x, calib_ref = _calibration(calib_path, calib_count, card, formats, force, log)
    job = _Job(model, calib_x, io_type, opset, log)

    with atomic_dir(out_dir) as tmp:
        source = tmp / FILES[SOURCE]
        model.save(source)
        write_card(source, card)  # the float model stays re-convertible
        done = [SOURCE]

        def ensure(fmt: str) -> Path | None:
            """Make a format's file once, whether asked for or needed by another format."""
            row = BY_NAME[fmt]
            path = tmp / row.file
            if path.is_file():
                return path
            made_from = ensure(row.made_from) if row.made_from else None
            return MAKERS[row.runtime, row.made_from](row, path, made_from, job)

        for fmt in formats:
            t0 = time.perf_counter()
            path, row = ensure(fmt), BY_NAME[fmt]
            if row.keeps_source and row.made_from not in done:
                done.append(row.made_from)  # e.g. the Edge TPU model's CPU twin
            if path is None:
                continue
            if fmt not in done:
                done.append(fmt)
            log(f"{fmt}: {path.stat().st_size / 1024:.0f} KiB in {time.perf_counter() - t0:.1f} s")
        for row in TABLE:
            if row.name not in done:
                (tmp / row.file).unlink(missing_ok=True)  # only made to derive another from
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
            artifacts=[_artifact(fmt, tmp / FILES[fmt]) for fmt in done],
        )
        (tmp / "manifest.json").write_text(manifest.model_dump_json(indent=2) + "\n")
    return manifest, job.report
