"""Every model format a bundle can hold, one row each: the one place their facts live.

The manifest's list of formats, the converter (what to make and from what), the backends (which
file each one runs, best first), `edgefer benchmark` (the float reference) and `edgefer demo` all
read this table; adding a format means adding a row here (and, for a new way of making a file, a
maker in converters/bundle.py). Plain data: no TensorFlow, no runtime, so the device can read it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

# Where a bundle model can run, in the order the CLI lists them. cpu = TFLite + XNNPACK;
# edgetpu/gpu/external = a TFLite delegate; onnx = ONNX Runtime.
BACKENDS = ("cpu", "edgetpu", "gpu", "external", "onnx")


@dataclass(frozen=True)
class Format:
    name: str
    file: str  # its file name inside a bundle
    runtime: Literal["keras", "tflite", "onnx"]  # what loads it (keras: TensorFlow only)
    int8: bool = False  # int8 weights and activations
    calibrated: bool = False  # converting it needs a calibration set
    made_from: str | None = None  # derived from another format's file, not from the model
    keeps_source: bool = False  # the made_from file stays in the bundle too (a CPU twin)
    reference: bool = False  # float32 throughout: scores as the model does (benchmark reference)
    backends: dict[str, int] = field(default_factory=dict)  # backend -> rank, 1 = preferred


TABLE = (
    Format("keras", "model.keras", "keras", reference=True),
    Format(
        "tflite-fp32",
        "model_fp32.tflite",
        "tflite",
        reference=True,
        backends={"cpu": 2, "gpu": 2, "external": 2},
    ),
    Format("tflite-fp16", "model_fp16.tflite", "tflite", backends={"cpu": 3, "gpu": 1}),
    Format("tflite-dynamic", "model_dynamic.tflite", "tflite", backends={"cpu": 4}),
    Format(
        "tflite-int8",
        "model_int8.tflite",
        "tflite",
        int8=True,
        calibrated=True,
        backends={"cpu": 1, "external": 1},
    ),
    Format("onnx", "model.onnx", "onnx", reference=True, backends={"onnx": 2}),
    Format(
        "onnx-int8",
        "model_int8.onnx",
        "onnx",
        int8=True,
        calibrated=True,
        made_from="onnx",
        backends={"onnx": 1},
    ),
    Format(
        "edgetpu",
        "model_int8_edgetpu.tflite",
        "tflite",
        int8=True,
        calibrated=True,
        made_from="tflite-int8",
        keeps_source=True,
        backends={"edgetpu": 1},
    ),
)

BY_NAME = {f.name: f for f in TABLE}
NAMES = tuple(BY_NAME)
SOURCE = next(f.name for f in TABLE if f.runtime == "keras")  # copied into every bundle
CONVERTED = tuple(f.name for f in TABLE if f.runtime != "keras")  # what `convert` can make
NEEDS_CALIBRATION = frozenset(f.name for f in TABLE if f.calibrated)
FLOAT_REFERENCES = tuple(f.name for f in TABLE if f.reference)  # best first
# The int8 formats any machine runs (no accelerator needed): what `edgefer demo` converts to.
HOST_INT8 = tuple(f.name for f in TABLE if f.int8 and {"cpu", "onnx"} & set(f.backends))


def preferences(table=TABLE) -> dict[str, tuple[str, ...]]:
    """Each backend's formats, best first: what it opens when no --format is given."""
    return {
        b: tuple(
            f.name for f in sorted(table, key=lambda f: f.backends.get(b, 0)) if b in f.backends
        )
        for b in BACKENDS
    }


def get(name: str) -> Format:
    return BY_NAME[name]
