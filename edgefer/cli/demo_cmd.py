"""`edgefer demo`: the README's main job, on the bundled model, offline."""

from __future__ import annotations

from pathlib import Path

import click

from edgefer.cli.common import format_table


@click.command()
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    default="edgefer-demo",
    show_default=True,
    help="Directory for everything the demo writes (calibration set, bundle, video).",
)
@click.option(
    "--data",
    "data_path",
    type=click.Path(),
    help="FER2013 CSV: calibrate on its Training split and score on PrivateTest "
    "(default: scikit-image's LFW faces, no download).",
)
@click.option(
    "--frames",
    type=click.IntRange(10, 3000),
    default=90,
    show_default=True,
    help="Frames of the sample face video run through the device pipeline.",
)
def demo(out, data_path, frames):
    """Convert the bundled float model to int8 TFLite and ONNX, compare the formats, and run
    the device pipeline on a video of a real face."""
    from edgefer.benchmark import TABLE_HEADERS, table_rows
    from edgefer.demo import faces_line, run_demo
    from edgefer.device.stats import STAGES

    def log(message):
        click.echo(message, err=True)

    out = Path(out)
    log(f"edgefer demo: writing to {out}/")
    result = run_demo(out, data_path, frames, log)
    table = result["table"]
    click.echo(
        f"\nformats on {table['count']:,} faces from {result['source']}, agreement with "
        f"{table['reference']}, batch 1, 1 thread"
    )
    click.echo(format_table(TABLE_HEADERS, table_rows(table)))
    click.echo(f"\ndevice pipeline ({result['detector']} + tflite-int8), sample frames:")
    for name, detections in result["shown"]:
        click.echo(f"  {name}: {faces_line(detections)}")
    stages = result["pipeline"]["stages"]
    click.echo(
        f"\n{result['pipeline']['frames']} frames, {result['pipeline']['fps']:.1f} FPS end to end"
    )
    click.echo(
        format_table(
            ["stage", "p50 ms", "p95 ms"],
            [
                [s, f"{stages[s]['p50']:.2f}", f"{stages[s]['p95']:.2f}"]
                for s in STAGES
                if s in stages
            ],
        )
    )
    click.echo(f"\ndone in {result['seconds']:.0f} s; everything is in {out}/")
