"""Multiply-accumulates of one invoke of a .tflite model, counted from its graph: the convolutions,
depthwise convolutions and fully-connected layers (what dominates a CNN; the element-wise ops,
pads and pools are left out and said so). Shapes come from the interpreter's own tensor and op
details, so the count is the graph that runs, quantized or not.

    python bench/tflite_macs.py edgefer/bundled/edge/model_int8.tflite [more.tflite ...]
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import numpy as np

from edgefer.device.runtimes import load_interpreter


def count_macs(path: str | Path) -> dict:
    """{"macs": total, "by_op": {op: macs}, "uncounted": {op: how many}} for one invoke."""
    interpreter = load_interpreter(Path(path), 1)
    shapes = {
        t["index"]: tuple(int(v) for v in t["shape"]) for t in interpreter.get_tensor_details()
    }
    by_op: Counter = Counter()
    uncounted: Counter = Counter()
    for op in interpreter._get_ops_details():
        name = op["op_name"]
        if name in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            out = shapes[op["outputs"][0]]
            weights = shapes[op["inputs"][1]]
            if name == "CONV_2D":  # weights (out_c, kh, kw, in_c): every output sums kh*kw*in_c
                macs = int(np.prod(out)) * int(np.prod(weights[1:]))
            elif name == "DEPTHWISE_CONV_2D":  # weights (1, kh, kw, out_c): kh*kw per output
                macs = int(np.prod(out)) * weights[1] * weights[2]
            else:  # weights (units, inputs)
                macs = int(np.prod(out)) * weights[1]
            by_op[name] += macs
        else:
            uncounted[name] += 1
    return {"macs": sum(by_op.values()), "by_op": dict(by_op), "uncounted": dict(uncounted)}


if __name__ == "__main__":
    for p in sys.argv[1:]:
        c = count_macs(p)
        print(f"{p}: {c['macs'] / 1e6:.2f}M MACs {c['by_op']}; not counted: {c['uncounted']}")
