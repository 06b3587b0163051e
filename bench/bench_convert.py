"""Benchmark: converting a ~600k-parameter model to every format takes under 60 s.

    python bench/bench_convert.py MODEL.keras CALIB.npz [--max-seconds 60]

Prints JSON with the wall time per run; exit 1 on a miss.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("calib")
    ap.add_argument("--max-seconds", type=float, default=60.0)
    args = ap.parse_args()
    from edgefer.converters.bundle import DEFAULT_FORMATS, convert_bundle
    from edgefer.evaluate import load_keras

    params = load_keras(args.model).count_params()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        manifest, _ = convert_bundle(
            args.model,
            Path(tmp) / "bundle",
            DEFAULT_FORMATS,
            args.calib,
            log=lambda m: print(m, file=sys.stderr),
        )
        seconds = time.perf_counter() - t0
    out = {
        "model": args.model,
        "parameters": params,
        "formats": [a.format for a in manifest.artifacts],
        "seconds": round(seconds, 1),
        "target": f"< {args.max_seconds} s",
        "pass": seconds < args.max_seconds,
    }
    print(json.dumps(out))
    return 0 if out["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
