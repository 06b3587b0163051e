"""CPU training under glibc's malloc vs tcmalloc (edgefer/allocator.py), on FER2013.

    python bench/bench_train_allocator.py [--data CSV] [--arch seed-fcn7] [--fraction 0.3] [--repeats 2]

Each run is a fresh `python -m edgefer train` of one epoch on a stratified --fraction of the
Training split (validation on PublicTest included), in a temporary directory that is deleted
afterwards. The two allocators alternate (system, tcmalloc, system, ...) so that a slow start of
the machine does not land on one side only. Per run: the epoch's seconds and batches/s from the
run's history, and from the child's rusage the page faults per second and the kernel's share of
CPU time. Nothing else should run meanwhile: the machine's cores are the measurement.
"""

from __future__ import annotations

import argparse
import csv
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

DEFAULT = Path(__file__).resolve().parents[2] / "shared/data/fer2013/fer2013.csv.gz"
SETTINGS = {"system": {"EDGEFER_ALLOCATOR": "system"}, "tcmalloc": {}}


def one_run(setting: str, args) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("EDGEFER_ALLOCATOR", "LD_PRELOAD")}
    env.update(SETTINGS[setting])
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "bench.toml"
        config.write_text(f"epochs = 1\ntrain_fraction = {args.fraction}\n")
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        proc = subprocess.run(
            [sys.executable, "-m", "edgefer", "train", "--arch", args.arch]
            + ["--config", str(config), "--data", args.data, "--out", f"{tmp}/run"],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if proc.returncode != 0:
            sys.exit(f"error: {setting} run failed: {proc.stderr.strip().splitlines()[-1]}")
        header = next(line for line in proc.stderr.splitlines() if "batches/epoch" in line)
        batches = int(header.split(" batches/epoch")[0].rsplit(" ", 1)[-1])
        with open(f"{tmp}/run/history.csv") as f:
            seconds = float(next(csv.DictReader(f))["seconds"])
    user, system = after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime
    return {
        "allocator": header.rsplit("malloc: ", 1)[-1],
        "seconds": seconds,
        "batches_per_s": batches / seconds,  # the epoch, its validation included
        "faults_per_s": (after.ru_minflt - before.ru_minflt) / (user + system),
        "kernel_share": system / (user + system),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(DEFAULT))
    ap.add_argument("--arch", default="seed-fcn7")
    ap.add_argument("--fraction", type=float, default=0.3)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    if not Path(args.data).exists():
        sys.exit(f"error: {args.data}: not found; expected the FER2013 CSV")
    print(f"{args.arch}, one epoch on {args.fraction:.0%} of Training, validation on PublicTest")
    print(
        "| run | allocator loaded | epoch s (with validation) | batches/s over the epoch | page faults per CPU-second | kernel share of CPU |"
    )
    print("|---|---|---|---|---|---|")
    for i in range(args.repeats):
        for setting in SETTINGS:
            r = one_run(setting, args)
            print(
                f"| {i + 1} | {r['allocator']} | {r['seconds']:.1f} | {r['batches_per_s']:.2f} | "
                f"{r['faults_per_s']:,.0f} | {100 * r['kernel_share']:.0f}% |",
                flush=True,
            )


if __name__ == "__main__":
    main()
