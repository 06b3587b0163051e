"""`python -m tests.arm64`: the emulated-Pi check from the command line, with a readable report
and the wall time of each step (the pytest test, tests/arm64/test_pi_emulated.py, runs the same
code in CI). Exit 1 when anything differs from x86, 2 when the emulated Pi cannot be built."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from tests.arm64.emulated import run_all, summary
from tests.arm64.pi_root import CPUS, HarnessError


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.arm64", description=__doc__)
    ap.add_argument("--cpu", action="append", choices=tuple(CPUS), help="default: every Pi core")
    ap.add_argument("--work", type=Path, help="keep the inputs and results here")
    args = ap.parse_args(argv)

    def log(message: str) -> None:
        print(f"  {message}", file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="edgefer-arm64-") as tmp:
        work = (args.work or Path(tmp)).resolve()
        from tests.conftest import known_answer_bundle

        log("converting the known-answer model to every format (TensorFlow, here)")
        source = work / "known-source"
        source.mkdir(parents=True, exist_ok=True)
        bundle = known_answer_bundle(source)
        try:
            res = run_all(work / "check", bundle, tuple(args.cpu or CPUS), log)
        except HarnessError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    print(summary(res))
    failed = res.failed()
    print(f"{len(res.checks) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
