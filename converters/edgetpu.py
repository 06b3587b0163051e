"""Coral Edge TPU: compile the full-int8 model with `edgetpu_compiler` when it is installed, and in
any case report, from the .tflite itself, which ops the Edge TPU maps and which stay on the CPU, so
users see "op not mapped" before they reach a device."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from edgefer.converters.tflite_graph import read_ops
from edgefer.errors import EdgeferError

# Ops the Edge TPU compiler maps (coral.ai/docs/edgetpu/models-intro, "Supported operations"),
# when quantized to 8 bits with static shapes.
EDGETPU_OPS = frozenset(
    {
        "ADD",
        "AVERAGE_POOL_2D",
        "CONCATENATION",
        "CONV_2D",
        "DEPTHWISE_CONV_2D",
        "EXPAND_DIMS",
        "FULLY_CONNECTED",
        "L2_NORMALIZATION",
        "LOGISTIC",
        "LSTM",
        "MAXIMUM",
        "MAX_POOL_2D",
        "MEAN",
        "MINIMUM",
        "MUL",
        "PACK",
        "PAD",
        "PRELU",
        "QUANTIZE",
        "DEQUANTIZE",
        "REDUCE_MAX",
        "REDUCE_MIN",
        "RELU",
        "RELU6",
        "RELU_N1_TO_1",
        "RESHAPE",
        "RESIZE_BILINEAR",
        "RESIZE_NEAREST_NEIGHBOR",
        "RSQRT",
        "SLICE",
        "SOFTMAX",
        "SPACE_TO_DEPTH",
        "SPLIT",
        "SQUEEZE",
        "STRIDED_SLICE",
        "SUB",
        "SUM",
        "SQUARED_DIFFERENCE",
        "TANH",
        "TRANSPOSE",
        "TRANSPOSE_CONV",
    }
)
INSTALL_HINT = (
    "edgetpu_compiler not found on PATH; on Debian/Ubuntu x86_64 install the "
    "'edgetpu-compiler' package from Coral's apt repository (coral.ai/software), then rerun"
)


def op_report(tflite_path: str | Path) -> dict:
    """Ops in execution order, each marked as mapped to the TPU or left on the CPU.

    The compiler maps ops up to the first one it cannot map; everything after runs on the CPU.
    """
    ops, cut = [], None
    for op in read_ops(tflite_path):
        quantized = set(op.input_types) <= {"INT8", "UINT8", "INT32"} or op.name == "QUANTIZE"
        reason = None
        if op.name not in EDGETPU_OPS:
            reason = "op not supported by the Edge TPU"
        elif not quantized:
            reason = "float tensors (the Edge TPU runs only 8-bit quantized ops)"
        if reason and cut is None:
            cut = len(ops)
        ops.append({"index": op.index, "op": op.name, "reason": reason})
    for i, op in enumerate(ops):
        op["on"] = "tpu" if cut is None or i < cut else "cpu"
        if op["on"] == "cpu" and op["reason"] is None:
            op["reason"] = f"after op {ops[cut]['index']} ({ops[cut]['op']}), which is not mapped"
    return {
        "ops": ops,
        "mapped": sum(o["on"] == "tpu" for o in ops),
        "total": len(ops),
        "first_unmapped": None if cut is None else ops[cut],
    }


def compile_edgetpu(int8_path: Path, out_dir: Path) -> Path:
    compiler = shutil.which("edgetpu_compiler")
    if compiler is None:
        raise EdgeferError(INSTALL_HINT)
    proc = subprocess.run(
        [compiler, "-s", "-o", str(out_dir), str(int8_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    out = out_dir / f"{int8_path.stem}_edgetpu.tflite"
    if proc.returncode != 0 or not out.is_file():
        raise EdgeferError(
            f"edgetpu_compiler failed on {int8_path.name}: "
            f"{(proc.stderr or proc.stdout).strip().splitlines()[-1:]}"
        )
    return out
