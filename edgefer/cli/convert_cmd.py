"""`edgefer convert`: a trained model -> a bundle of formats and manifest.json."""

from __future__ import annotations

import click

from edgefer.cli.benchmark_cmd import benchmark_and_report, benchmark_options
from edgefer.cli.common import apply_options, comma_list
from edgefer.device.formats import CONVERTED


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
    default=",".join(CONVERTED),
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
@apply_options(benchmark_options)
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
    **benchmark,
):
    """Convert a trained .keras MODEL to TFLite / ONNX formats plus manifest.json."""
    from edgefer.converters.bundle import convert_bundle

    def log(message):
        click.echo(message, err=True)

    manifest, report = convert_bundle(
        model,
        out,
        comma_list(formats),
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
        benchmark_and_report(out, eval_data, record=True, **benchmark)
