"""Benchmark: loading all of FER2013 takes under 10 s and under 500 MB peak RSS.

    python bench/bench_load.py [PATH] [--max-seconds 10] [--max-rss-mb 500]

Runs the load in a fresh subprocess so the RSS measured is the loader's alone. Exit 1 on a miss.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

DEFAULT = Path(__file__).resolve().parents[2] / "shared/data/fer2013/fer2013.csv.gz"

CHILD = """
import json, resource, sys, time
t0 = time.perf_counter()
from edgefer.data import load_fer
ds = load_fer(sys.argv[1])
seconds = time.perf_counter() - t0
rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"images": len(ds), "seconds": round(seconds, 2), "peak_rss_mb": round(rss_mb, 1)}))
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("path", nargs="?", default=str(DEFAULT))
    ap.add_argument("--max-seconds", type=float, default=10.0)
    ap.add_argument("--max-rss-mb", type=float, default=500.0)
    args = ap.parse_args()
    if not Path(args.path).exists():
        print(
            f"error: {args.path}: not found; expected the FER2013 CSV or image folders",
            file=sys.stderr,
        )
        return 2
    out = json.loads(
        subprocess.run(
            [sys.executable, "-c", CHILD, args.path], check=True, capture_output=True, text=True
        ).stdout
    )
    ok = out["seconds"] < args.max_seconds and out["peak_rss_mb"] < args.max_rss_mb
    out["target"] = f"< {args.max_seconds} s and < {args.max_rss_mb} MB"
    out["pass"] = ok
    print(json.dumps(out))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
