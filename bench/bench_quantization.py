"""Benchmark: int8 formats stay within 0.5 top-1 points of the float model with >= 98% top-1
agreement on PrivateTest.

    python bench/bench_quantization.py BUNDLE_DIR [--data PATH] [--split PrivateTest]

Uses the same code as `edgefer benchmark`. Prints the table and JSON; exit 1 on a miss.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

DEFAULT = Path(__file__).resolve().parents[2] / "shared/data/fer2013/fer2013.csv.gz"
INT8 = ("tflite-int8", "onnx-int8")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bundle")
    ap.add_argument("--data", default=str(DEFAULT))
    ap.add_argument("--split", default="PrivateTest")
    ap.add_argument("--max-drop", type=float, default=0.5)
    ap.add_argument("--min-agreement", type=float, default=0.98)
    args = ap.parse_args()
    from edgefer.benchmark import TABLE_HEADERS, benchmark, table_rows
    from edgefer.cli.common import format_table
    from edgefer.data import load_fer

    result = benchmark(
        args.bundle,
        load_fer(args.data),
        args.split,
        latency_runs=200,
        log=lambda m: print(m, file=sys.stderr),
    )
    print(format_table(TABLE_HEADERS, table_rows(result)))
    checks = {
        r["format"]: {
            "drop_points": round(r["drop_points"], 3),
            "agreement": round(r["agreement"], 4),
            "disagreements": r["disagreements"],
            "pass": r["drop_points"] <= args.max_drop and r["agreement"] >= args.min_agreement,
        }
        for r in result["rows"]
        if r["format"] in INT8
    }
    ok = bool(checks) and all(c["pass"] for c in checks.values())
    print(
        json.dumps(
            {
                "bundle": args.bundle,
                "split": args.split,
                "reference": result["reference"],
                "target": f"drop <= {args.max_drop} pts and agreement >= {args.min_agreement}",
                "int8": checks,
                "pass": ok,
            }
        )
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
