"""Keras -> ONNX (tf2onnx, explicit opset) and static int8 QDQ quantization (onnxruntime)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from edgefer.errors import require
from edgefer.quiet import native_stderr_silenced
from edgefer.tf import tf

DEFAULT_OPSET = 17


def convert_onnx(model, opset: int = DEFAULT_OPSET) -> bytes:
    tf2onnx = require("tf2onnx", "onnx")
    spec = (tf.TensorSpec((None, *model.input_shape[1:]), tf.float32, name="image"),)
    with native_stderr_silenced():
        proto, _ = tf2onnx.convert.from_keras(model, input_signature=spec, opset=opset)
    return proto.SerializeToString()


def quantize_onnx(float_path: Path, out_path: Path, calib_x: np.ndarray) -> None:
    """Static QDQ int8 (per-channel weights, int8 activations) calibrated on `calib_x`.

    Weights use 7 bits (`reduce_range`): on x86 CPUs without VNNI, onnxruntime's u8s8 kernels add
    pairs of 8-bit products in 16 bits, which saturates with full-range per-channel weights.
    Measured on the edge model (onnxruntime 1.32, AVX2, 1,500 PublicTest images): top-1 agreement
    with float 92.3% with 8-bit weights, 98.5% with 7-bit ones."""
    q = require("onnxruntime.quantization", "onnx")
    import onnxruntime as ort

    input_name = (
        ort.InferenceSession(str(float_path), providers=["CPUExecutionProvider"])
        .get_inputs()[0]
        .name
    )

    class Reader(q.CalibrationDataReader):
        def __init__(self):
            self.items = iter(range(len(calib_x)))

        def get_next(self):
            i = next(self.items, None)
            return None if i is None else {input_name: calib_x[i : i + 1]}

    with tempfile.TemporaryDirectory() as tmp:
        prepped = Path(tmp) / "prepped.onnx"
        # Shape inference + graph optimisation first, as onnxruntime recommends before quantizing.
        q.quant_pre_process(str(float_path), str(prepped), skip_symbolic_shape=True)
        q.quantize_static(
            str(prepped),
            str(out_path),
            Reader(),
            quant_format=q.QuantFormat.QDQ,
            per_channel=True,
            reduce_range=True,
            activation_type=q.QuantType.QInt8,
            weight_type=q.QuantType.QInt8,
        )
