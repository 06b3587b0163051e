"""`edgefer calib`: build representative sets for int8 calibration."""

from __future__ import annotations

import json

import click

from edgefer import calibration
from edgefer.cli.common import format_table, load_and_report, skip_bad_option
from edgefer.labels import parse_task
from edgefer.preprocess import NORMALIZATIONS, Preprocessing


@click.group()
def calib():
    """Representative FER samples for int8 quantization."""


@calib.command("build")
@click.option(
    "--data", "data_path", required=True, type=click.Path(), help="FER CSV or image folders."
)
@click.option(
    "--per-class",
    type=click.IntRange(min=1),
    default=100,
    show_default=True,
    help="Samples drawn per class (all of a class if it has fewer).",
)
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Output .npz.")
@click.option("--split", default="Training", show_default=True, help="Split to draw from.")
@click.option(
    "--task",
    "task_spec",
    default="fer7",
    show_default=True,
    help="fer7, sad-vs-fear, or a comma-separated class list.",
)
@click.option(
    "--normalization",
    type=click.Choice(list(NORMALIZATIONS)),
    default="zero_one",
    show_default=True,
    help="zero_one: p/255; minus_one_one: (p/255-0.5)*2.",
)
@click.option("--channels", type=click.Choice(["1", "3"]), default="1", show_default=True)
@click.option("--size", type=click.IntRange(8, 1024), default=48, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@skip_bad_option
def build(
    data_path, per_class, out, split, task_spec, normalization, channels, size, seed, skip_bad
):
    """Draw a stratified, seeded, preprocessed sample and write OUT + its JSON sidecar."""
    task = parse_task(task_spec)
    prep = Preprocessing(size=size, channels=int(channels), normalization=normalization)
    ds = load_and_report(data_path, skip_bad)
    calib_set = calibration.build(ds, split, task, prep, per_class, seed)
    short = {k: v for k, v in calib_set.meta["counts"].items() if v < per_class}
    if short:
        click.echo(
            f"note: fewer than {per_class} images for {', '.join(short)}; took all of them",
            err=True,
        )
    meta = calibration.save(calib_set, out)
    click.echo(
        f"wrote {out} ({meta['count']} samples, sha256 {meta['sha256'][:12]}) "
        f"and {calibration.sidecar_path(out).name}"
    )
    click.echo(format_table(["class", "samples"], [[k, v] for k, v in meta["counts"].items()]))


@calib.command("info")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def info(path, as_json):
    """Check the calibration set PATH (.npz and its JSON sidecar) and summarize it.

    The checks are those `edgefer convert --calib` makes before it uses a set: both files
    well-formed, the sha256 matching, x float32 of the sidecar's input shape with finite values,
    one label per sample, the counts agreeing.
    """
    cs = calibration.load(path)
    prep = cs.preprocessing
    lo, hi = float(cs.x.min()), float(cs.x.max())
    counts = cs.meta["counts"]
    if as_json:
        click.echo(
            json.dumps(
                {
                    "path": str(path),
                    "count": len(cs.y),
                    "task": cs.meta["task"],
                    "counts": counts,
                    "shape": list(cs.x.shape),
                    "min": lo,
                    "max": hi,
                    "preprocessing": prep.to_dict(),
                    "sha256": cs.meta["sha256"],
                },
                indent=2,
            )
        )
        return
    click.echo(
        f"{path}: {len(cs.y)} samples, task {cs.meta['task']}, x {cs.x.shape} in "
        f"[{lo:.3f}, {hi:.3f}] ({prep.normalization}), sha256 {cs.meta['sha256'][:12]}"
    )
    click.echo(format_table(["class", "samples"], [[k, v] for k, v in counts.items()]))
