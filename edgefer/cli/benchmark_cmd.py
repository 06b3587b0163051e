"""`edgefer benchmark`: how much accuracy does each format of a bundle lose?

(`edgefer bench` answers how fast the device pipeline runs; the repository's bench/ scripts
measure targets across models.)"""

from __future__ import annotations

import json
import math

import click

from edgefer.cli.common import (
    apply_options,
    bundle_param,
    comma_list,
    format_table,
    load_and_report,
    skip_bad_option,
)


def benchmark_and_report(
    bundle, data_path, *, split, max_drop, threads, latency_runs, as_json, skip_bad, **kwargs
):
    """The accuracy-drop gate on BUNDLE (edgefer.benchmark.run_benchmark: `formats`, `record`
    pass through), printed; exit 1 when it fails."""
    from edgefer.benchmark import TABLE_HEADERS, run_benchmark, table_rows

    result = run_benchmark(
        bundle,
        load_and_report(data_path, skip_bad),
        split,
        max_drop,
        threads=threads,
        latency_runs=latency_runs,
        log=lambda m: click.echo(m, err=True),
        **kwargs,
    )
    if as_json:
        click.echo(json.dumps(result, indent=2))
    else:
        click.echo(
            f"{bundle} on {split} ({result['count']:,} images), drop vs {result['reference']}, "
            f"batch 1, {threads} thread(s)"
        )
        click.echo(format_table(TABLE_HEADERS, table_rows(result)))
    for why in result["failed"]:
        click.echo(f"FAIL: {why}", err=True)
    if result["failed"]:
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


@click.command("benchmark")
@click.argument("bundle", callback=bundle_param)
@click.option("--data", "data_path", required=True, type=click.Path())
@apply_options(benchmark_options)
@click.option(
    "--formats", help="Comma-separated formats to score (default: every one in the bundle)."
)
def benchmark_cmd(bundle, data_path, formats, **options):
    """How much accuracy does each format lose? One row per format: size, top-1, drop vs float.

    Also the worst class drop, agreement and latency. BUNDLE: a directory, or a bundled model
    by name (edge, edge-fast). Exit 1 when a format drops more than --max-drop points or cannot
    be scored. (Speed on a device: `edgefer bench`; the repository's bench/ scripts measure
    targets across models.)"""
    benchmark_and_report(
        bundle, data_path, formats=comma_list(formats) if formats else None, **options
    )
