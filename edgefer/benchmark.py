"""The accuracy-drop check: every format of a bundle scored on the same images by the same code as
`edgefer evaluate`, against the float model, with batch-1 latency."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from edgefer.atomic import write_text
from edgefer.data import FerData
from edgefer.device.formats import FLOAT_REFERENCES
from edgefer.device.manifest import load_manifest
from edgefer.device.stats import latency_ms
from edgefer.errors import EdgeferError
from edgefer.evaluate import NotRunnableHere, bundle_runtime, evaluate_probs, scores_in_batches
from edgefer.labels import parse_task
from edgefer.preprocess import Preprocessing
from edgefer.train.data import task_part


def benchmark(
    bundle_dir: str | Path,
    data: FerData,
    split: str,
    threads: int = 1,
    latency_runs: int = 100,
    formats: list[str] | None = None,
    log=print,
) -> dict:
    """Every format scored on a labelled split of `data`."""
    manifest = load_manifest(bundle_dir)
    task = parse_task(manifest.task)
    part = task_part(data.split(split), task, split)
    result = score_formats(
        bundle_dir, part.images, part.labels, threads, latency_runs, formats, log
    )
    return {**result, "split": split}


def run_benchmark(
    bundle_dir: str | Path,
    data: FerData,
    split: str,
    max_drop: float,
    threads: int = 1,
    latency_runs: int = 100,
    formats: list[str] | None = None,
    record: bool = False,
    log=print,
) -> dict:
    """The accuracy-drop gate: `benchmark`, plus `max_drop` and `failed` (why the gate fails, see
    gate_failures; empty when it passes). `record` keeps it in BUNDLE/benchmark.json (convert
    --eval-data does)."""
    result = benchmark(bundle_dir, data, split, threads, latency_runs, formats, log)
    result["max_drop"], result["failed"] = max_drop, gate_failures(result, max_drop)
    if record:
        write_text(Path(bundle_dir) / "benchmark.json", json.dumps(result, indent=1) + "\n")
    return result


def score_formats(
    bundle_dir: str | Path,
    images: np.ndarray,
    labels: np.ndarray | None = None,
    threads: int = 1,
    latency_runs: int = 100,
    formats: list[str] | None = None,
    log=print,
) -> dict:
    """Every format of a bundle on the same gray face images: size, agreement with the float
    model and latency, plus top-1 and its drop where `labels` are given."""
    bundle_dir = Path(bundle_dir)
    manifest = load_manifest(bundle_dir)
    task = parse_task(manifest.task)
    x = Preprocessing.from_dict(manifest.preprocessing.model_dump()).apply(images)
    if formats:
        missing = sorted(set(formats) - {a.format for a in manifest.artifacts})
        if missing:
            raise EdgeferError(f"--formats {missing[0]}: not in {bundle_dir}/manifest.json")
    runtimes, unscored = {}, []
    for art in manifest.artifacts:
        if formats and art.format not in formats:
            continue
        try:
            runtimes[art.format] = (art, bundle_runtime(bundle_dir, manifest, art, threads))
        except NotRunnableHere as exc:
            log(f"not scored here: {exc}")
        except EdgeferError as exc:  # a format that cannot be scored fails the gate
            unscored.append({"format": art.format, "file": art.file, "error": str(exc)})
    if not runtimes:
        raise EdgeferError(
            f"{bundle_dir}: no format of this bundle can run here"
            + "".join(f"; {u['error']}" for u in unscored)
        )
    rows, probs = [], {}
    with tqdm(
        total=len(runtimes) * (len(x) + latency_runs),
        unit="img",
        file=sys.stderr,
        desc="benchmark",
        mininterval=0.5 if sys.stderr.isatty() else 30,
    ) as bar:
        for fmt, (art, rt) in runtimes.items():
            bar.set_description(fmt)
            probs[fmt] = scores_in_batches(rt, x, progress=bar)
            p50, p95 = latency_ms(rt, x, latency_runs)
            bar.update(latency_runs)
            rows.append(
                {
                    "format": fmt,
                    "file": art.file,
                    "size_bytes": (bundle_dir / art.file).stat().st_size,
                    "report": None
                    if labels is None
                    else evaluate_probs(probs[fmt], labels, task.class_names),
                    "latency_p50_ms": p50,
                    "latency_p95_ms": p95,
                }
            )
    ref = next((f for f in FLOAT_REFERENCES if f in probs), rows[0]["format"])
    ref_row = next(r for r in rows if r["format"] == ref)
    ref_pred = probs[ref].argmax(axis=1)
    ref_top2 = np.sort(probs[ref], axis=1)[:, -2:]
    for r in rows:
        rep, ref_rep = r["report"], ref_row["report"]
        if rep is not None:
            r["accuracy"] = rep["accuracy"]
            r["drop_points"] = 100 * (ref_rep["accuracy"] - rep["accuracy"])
            r["worst_class_drop_points"] = max(
                100 * (ref_rep["per_class"][c]["recall"] - rep["per_class"][c]["recall"])
                for c in task.class_names
            )
        r["agreement"] = float((probs[r["format"]].argmax(axis=1) == ref_pred).mean())
        r["disagreements"] = _disagreements(probs[r["format"]], ref_pred, ref_top2)
    return {
        "bundle": str(bundle_dir),
        "count": len(x),
        "reference": ref,
        "threads": threads,
        "rows": rows,
        "unscored": unscored,
    }


def _disagreements(scores: np.ndarray, ref_pred: np.ndarray, ref_top2: np.ndarray) -> dict:
    """Why a quantized model disagrees with the float one. An int8 output has 256 levels, so two
    classes the float model separates by less than one step come out exactly tied (argmax then
    takes the first); `tied` counts those, `ref_margin_median` is the float model's top-1 minus
    top-2 score on the disagreeing images."""
    differ = scores.argmax(axis=1) != ref_pred
    top2 = np.sort(scores[differ], axis=1)[:, -2:]
    margins = ref_top2[differ, 1] - ref_top2[differ, 0]
    return {
        "count": int(differ.sum()),
        "tied": int((top2[:, 1] == top2[:, 0]).sum()),
        "ref_margin_median": float(np.median(margins)) if len(margins) else None,
    }


def gate_failures(result: dict, max_drop: float) -> list[str]:
    """Why the accuracy-drop gate fails: a format that lost more than `max_drop` points (a NaN
    drop fails too), or one that could not be scored at all."""
    return [
        f"{r['format']} drops {r['drop_points']:.2f} points (more than {max_drop})"
        for r in result["rows"]
        if not r["drop_points"] <= max_drop
    ] + [f"{u['format']} could not be scored: {u['error']}" for u in result["unscored"]]


def table_rows(result: dict) -> list[list]:
    """One row per format; accuracy columns read '-' where the images had no labels."""

    def cell(r, key, fmt):
        return fmt.format(r[key]) if key in r else "-"

    return [
        [
            r["format"],
            f"{r['size_bytes'] / 1024:.0f}",
            cell(r, "accuracy", "{:.2%}").rstrip("%"),
            cell(r, "drop_points", "{:+.2f}"),
            cell(r, "worst_class_drop_points", "{:+.2f}"),
            f"{100 * r['agreement']:.2f}",
            f"{r['latency_p50_ms']:.2f}",
            f"{r['latency_p95_ms']:.2f}",
        ]
        for r in result["rows"]
    ]


TABLE_HEADERS = [
    "format",
    "KiB",
    "top-1 %",
    "drop pts",
    "worst class pts",
    "agree %",
    "p50 ms",
    "p95 ms",
]
