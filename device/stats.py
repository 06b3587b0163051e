"""Latency summaries: per stage p50/p95/p99/max in ms and frames per second."""

from __future__ import annotations

import numpy as np

STAGES = ("decode", "detect", "preprocess", "inference", "postprocess", "total")


def summarize(per_frame: list[dict[str, float]]) -> dict:
    """{stage: {p50, p95, p99, max, mean}} over frames, plus fps from the mean total."""
    out = {}
    for stage in STAGES:
        values = np.array([t[stage] for t in per_frame if stage in t])
        if values.size:
            out[stage] = {
                "p50": float(np.percentile(values, 50)),
                "p95": float(np.percentile(values, 95)),
                "p99": float(np.percentile(values, 99)),
                "max": float(values.max()),
                "mean": float(values.mean()),
            }
    mean_total = out.get("total", {}).get("mean", 0)
    return {
        "frames": len(per_frame),
        "stages": out,
        "fps": 1000 / mean_total if mean_total else 0.0,
    }


def latency_ms(runtime, x: np.ndarray, runs: int, warmup: int = 5) -> tuple[float, float]:
    """p50 and p95 of single-image inference (model only), cycling through real inputs."""
    import time

    for i in range(warmup):
        runtime.scores(x[i % len(x)][None])
    times = []
    for i in range(runs):
        t0 = time.perf_counter()
        runtime.scores(x[i % len(x)][None])
        times.append((time.perf_counter() - t0) * 1000)
    return float(np.percentile(times, 50)), float(np.percentile(times, 95))
