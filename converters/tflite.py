"""Keras -> TFLite: float32, float16, dynamic-range (int8 weights) and full-integer int8."""

from __future__ import annotations

import contextlib
import io
import re
import warnings
from collections.abc import Sequence

import numpy as np

from edgefer.converters.tflite_graph import read_ops
from edgefer.device.formats import TABLE
from edgefer.errors import EdgeferError
from edgefer.quiet import native_stderr_silenced
from edgefer.tf import tf

# The TFLite rows of the format table made from the Keras model (edgetpu is made from a file).
TFLITE_FORMATS = tuple(f.name for f in TABLE if f.runtime == "tflite" and f.made_from is None)
IO_TYPES = {"int8": tf.int8, "uint8": tf.uint8, "float32": tf.float32}


def _converter(model):
    """From the model re-wrapped with a static batch of 1: no SHAPE/PACK ops for a dynamic batch,
    and a static shape is what the Edge TPU compiler requires. (from_keras_model freezes the
    weights; a bare concrete function would keep them as resource variables.)"""
    from edgefer.tf import keras

    image = keras.Input(batch_shape=(1, *model.input_shape[1:]), name="image")
    static = keras.Model(image, model(image, training=False), name=model.name)
    return tf.lite.TFLiteConverter.from_keras_model(static)


def convert_tflite(
    model, fmt: str, calib_x: np.ndarray | None = None, io_type: str = "int8"
) -> bytes:
    conv = _converter(model)
    if fmt == "tflite-fp16":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.target_spec.supported_types = [tf.float16]
    elif fmt == "tflite-dynamic":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
    elif fmt == "tflite-int8":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = lambda: ([calib_x[i : i + 1]] for i in range(len(calib_x)))
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = IO_TYPES[io_type]
        conv.inference_output_type = IO_TYPES[io_type]
    elif fmt != "tflite-fp32":
        raise EdgeferError(f"format '{fmt}': expected one of {', '.join(TFLITE_FORMATS)}")
    try:
        # Keras' export prints "Saved artifact at ..." and a listing of every captured variable
        # on stdout, which belongs to our --json; it says nothing a user can act on.
        # The int8 input warning ("Statistics for quantized inputs were expected") is about the
        # legacy quantized_input_stats API; full-int8 takes its input range from calibration.
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Statistics for quantized inputs")
            with native_stderr_silenced():
                flat = conv.convert()
    except Exception as exc:  # noqa: BLE001 -- the converter raises ConverterError, ValueError, RuntimeError, ...
        raise EdgeferError(
            f"{model.name}: {fmt} conversion failed: {_explain(model, str(exc))}"
        ) from None
    if fmt == "tflite-int8":
        left_float = float_ops(flat, [layer.name for layer in model.layers])
        if left_float:
            raise EdgeferError(
                f"{model.name}: tflite-int8: {left_float[0]} has no int8 kernel and "
                f"would run in float ({len(left_float)} such op(s)); replace that layer"
            )
    return flat


def float_ops(flat: bytes, layer_names: Sequence[str] = ()) -> list[str]:
    """Ops of a converted model that still compute on float tensors, as 'op OP (layer NAME)'.

    The converter may keep an op without an int8 kernel in float instead of failing; a "full
    integer" model with such an op is slow on a CPU and splits an Edge TPU graph."""
    found = []
    for op in read_ops(flat):
        if op.name in ("QUANTIZE", "DEQUANTIZE"):
            continue
        if "FLOAT32" in op.input_types:
            found.append(f"op {op.name} (layer {_layer_of(op.output_name, layer_names)})")
    return found


def _layer_of(tensor_name: str, layer_names: Sequence[str]) -> str:
    """The Keras layer a converted tensor came from. Tensor names look like
    'model_1/conv3d_1/convolution' (Keras adds _N when a layer is called again, as the static-batch
    wrapper does); prefer a part that names a layer of the model."""
    parts = tensor_name.split("/")
    for part in reversed(parts):
        for name in (part, re.sub(r"_\d+$", "", part)):
            if name in layer_names:
                return name
    return parts[-2] if len(parts) > 1 else tensor_name


def _explain(model, message: str) -> str:
    """Name the op (and the layer that makes it) that has no kernel for the requested format."""
    ops = sorted(set(re.findall(r"'(tf\.\w+|tfl\.\w+)' op", message)))
    if not ops:
        return message.strip().splitlines()[-1][:300]
    layers = [
        layer.name
        for layer in model.layers
        if any(op.split(".")[1].lower() in type(layer).__name__.lower() for op in ops)
    ]
    where = f" (layer {', '.join(layers)})" if layers else ""
    return f"op {', '.join(ops)}{where} has no int8/builtin kernel; replace that layer or drop the format"
