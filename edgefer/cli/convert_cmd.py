"""`edgefer convert` and `edgefer benchmark`: bundles and their accuracy-drop report."""

from __future__ import annotations

import json
import math
from pathlib import Path

import click

from edgefer.atomic import write_text
from edgefer.cli.common import bundle_param, format_table, load_and_report, skip_bad_option
from edgefer.device.manifest import FORMATS


def run_benchmark(
    bundle,
    data_path,
    split,
    threads,
    max_drop,
    as_json,
    latency_runs,
    skip_bad,
    formats=None,
    record=False,
):
    """The accuracy-drop table; `record` keeps it in BUNDLE/benchmark.json (convert does)."""
    from edgefer.benchmark import TABLE_HEADERS, benchmark, gate_failures, table_rows

    ds = load_and_report(data_path, skip_bad)
    result = benchmark(
        bundle,
        ds,
        split,
        threads=threads,
        latency_runs=latency_runs,
        formats=formats,
        log=lambda m: click.echo(m, err=True),
    )
    failed = gate_failures(result, max_drop)
    result["max_drop"], result["failed"] = max_drop, failed
    if record:
        write_text(Path(bundle) / "benchmark.json", json.dumps(result, indent=1) + "\n")
    if as_json:
        click.echo(json.dumps(result, indent=2))
    else:
        click.echo(
            f"{bundle} on {split} ({result['count']:,} images), drop vs {result['reference']}, "
            f"batch 1, {threads} thread(s)"
        )
        click.echo(format_table(TABLE_HEADERS, table_rows(result)))
    for why in failed:
        click.echo(f"FAIL: {why}", err=True)
    if failed:
        raise SystemExit(1)


def _finite(ctx, param, value):
    if value is not None and not math.isfinite(value):
        raise click.BadParameter(f"{value} is not a number of points; expected a finite value")
    return value


benchmark_options = [
    click.option("--split", default="PrivateTest", show_default=True),
    click.option(
        "--max-drop",
        type=float,
        default=1.0,
        show_default=True,
        callback=_finite,
        help="Exit 1 when a format loses more top-1 points than this.",
    ),
    click.option("--threads", type=click.IntRange(1, 64), default=1, show_default=True),
    click.option("--latency-runs", type=click.IntRange(1), default=100, show_default=True),
    click.option("--json", "as_json", is_flag=True),
    skip_bad_option,
]


def _apply(options):
    def deco(f):
        for opt in reversed(options):
            f = opt(f)
        return f

    return deco


@click.command()
@click.argument("model", type=click.Path())
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Bundle directory.")
@click.option(
    "--calib", type=click.Path(dir_okay=False), help="Calibration .npz (edgefer calib build)."
)
@click.option(
    "--calib-count", type=click.IntRange(min=1), help="Use N calibration samples (stratified)."
)
@click.option(
    "--formats",
    default=",".join(f for f in FORMATS if f != "keras"),
    show_default=True,
    help="Comma-separated formats.",
)
@click.option(
    "--io-type",
    type=click.Choice(["int8", "uint8", "float32"]),
    default="int8",
    show_default=True,
    help="Input/output type of the full-int8 TFLite model.",
)
@click.option(
    "--opset", type=click.IntRange(9, 23), default=17, show_default=True, help="ONNX opset."
)
@click.option("--force", is_flag=True, help="Convert despite a calibration/model mismatch.")
@click.option(
    "--detector",
    "detectors",
    multiple=True,
    type=click.Choice(["blazeface-short", "blazeface-full"]),
    help="Ship a BlazeFace face detector in the bundle (repeatable).",
)
@click.option(
    "--eval-data", type=click.Path(), help="Then run the accuracy-drop benchmark on this data."
)
@_apply(benchmark_options)
def convert(
    model,
    out,
    calib,
    calib_count,
    formats,
    io_type,
    opset,
    force,
    detectors,
    eval_data,
    split,
    max_drop,
    threads,
    latency_runs,
    as_json,
    skip_bad,
):
    """Convert a trained .keras MODEL to TFLite / ONNX formats plus manifest.json."""
    from edgefer.converters.bundle import convert_bundle

    def log(message):
        click.echo(message, err=True)

    manifest, report = convert_bundle(
        model,
        out,
        [f.strip() for f in formats.split(",") if f.strip()],
        calib,
        calib_count,
        io_type,
        force,
        opset,
        detectors,
        log=log,
    )
    click.echo(f"wrote {out}/ ({', '.join(a.format for a in manifest.artifacts)})")
    if report:
        first = report["first_unmapped"]
        click.echo(
            f"Edge TPU: {report['mapped']}/{report['total']} ops map to the TPU"
            + (
                ""
                if first is None
                else f"; op {first['index']} {first['op']} is not mapped ({first['reason']}), "
                "it and every op after it run on the CPU"
            )
            + f" (details: {out}/edgetpu_ops.json)"
        )
    if eval_data:
        run_benchmark(
            out, eval_data, split, threads, max_drop, as_json, latency_runs, skip_bad, record=True
        )


@click.command("benchmark")
@click.argument("bundle", callback=bundle_param)
@click.option("--data", "data_path", required=True, type=click.Path())
@_apply(benchmark_options)
@click.option(
    "--formats", help="Comma-separated formats to score (default: every one in the bundle)."
)
def benchmark_cmd(
    bundle, data_path, split, max_drop, threads, latency_runs, as_json, skip_bad, formats
):
    """One table, one row per format: size, top-1, drop vs float, worst class drop, agreement,
    latency. BUNDLE: a directory, or a bundled model by name (edge, edge-fast). Exit 1 when a
    format drops more than --max-drop points or cannot be scored."""
    run_benchmark(
        bundle,
        data_path,
        split,
        threads,
        max_drop,
        as_json,
        latency_runs,
        skip_bad,
        [f.strip() for f in formats.split(",") if f.strip()] if formats else None,
    )
