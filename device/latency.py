"""`edgefer bench`: how fast the device pipeline runs here, stage by stage, and the model alone on
every backend that can run it."""

from __future__ import annotations

import numpy as np

from edgefer.device.backends import open_runtime
from edgefer.device.formats import BACKENDS
from edgefer.device.stats import latency_ms, summarize
from edgefer.errors import EdgeferError

# Every backend but `external`, which needs a delegate library named on the command line.
TRIED = tuple(b for b in BACKENDS if b != "external")


def model_latencies(bundle, threads: int, prep, runs: int = 200) -> list[dict]:
    """Batch-1 p50/p95 latency for every backend that can run here; the others say why not."""
    x = prep.apply(
        np.random.default_rng(0).integers(0, 256, (8, prep.size, prep.size), dtype=np.uint8)
    )
    rows = []
    for backend in TRIED:
        try:
            runtime, _, artifact = open_runtime(bundle, backend, threads)
        except EdgeferError as exc:
            rows.append({"backend": backend, "note": f"not available: {str(exc).split(';')[0]}"})
            continue
        p50, p95 = latency_ms(runtime, x, runs)
        rows.append({"backend": backend, "format": artifact.format, "p50_ms": p50, "p95_ms": p95})
    return rows


def bench_pipeline(pipe, source: str, frames: int | None, bundle, threads: int) -> dict:
    """The pipeline over `source`: per-stage latency and FPS (stats.summarize) of the frames it
    processed, the faces it found, and model_latencies for the same bundle."""
    from edgefer.device.pipeline import frames_with_results
    from edgefer.device.sources import open_source

    timings, faces = [], 0
    for _, result in frames_with_results(pipe, open_source(source, frames)):
        if result is not None and not result.error:
            timings.append(result.timings)
            faces += len(result.detections)
    if not timings:
        raise EdgeferError(f"{source}: no frame could be processed")
    summary = summarize(timings)
    summary["faces"] = faces
    summary["models"] = model_latencies(bundle, threads, pipe.prep)
    return summary
