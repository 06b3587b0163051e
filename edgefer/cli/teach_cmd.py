"""`edgefer teach`: an ensemble's soft targets, for distilling a student."""

from __future__ import annotations

from pathlib import Path

import click

from edgefer.cli.common import format_table, load_and_report, skip_bad_option
from edgefer.errors import EdgeferError


@click.command()
@click.option(
    "--model",
    "model_paths",
    multiple=True,
    required=True,
    type=click.Path(dir_okay=False),
    help="A trained .keras model; repeat for an ensemble (their probabilities are averaged).",
)
@click.option("--data", "data_path", required=True, type=click.Path())
@click.option("--split", default="Training", show_default=True, help="The images to answer for.")
@click.option("--check-split", default="PublicTest", show_default=True, help="Scored, not saved.")
@click.option(
    "--temperature", type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True
)
@click.option("--flip/--no-flip", default=True, show_default=True, help="Average with mirrors.")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Teacher .npz file.")
@skip_bad_option
def teach(model_paths, data_path, split, check_split, temperature, flip, out, skip_bad):
    """Write a teacher file: an ensemble's soft targets for distilling a student
    (`edgefer train --config ...` with `teacher = "FILE"` and `distill = 0.7`)."""
    import numpy as np
    from tqdm import tqdm

    from edgefer.labels import parse_task
    from edgefer.model_card import read_card
    from edgefer.train.data import task_part
    from edgefer.train.teacher import ensemble_probs, provenance, soften, write_teacher_file

    for path in model_paths:
        if not Path(path).is_file():
            raise EdgeferError(f"{path}: model file not found; expected a .keras model")
    task = parse_task(read_card(model_paths[0])["task"])
    ds = load_and_report(data_path, skip_bad)
    parts = {s: task_part(ds.split(s), task, s) for s in (split, check_split)}
    views = len(model_paths) * (2 if flip else 1)
    images = np.concatenate([p.images for p in parts.values()])  # each model loads once
    with tqdm(total=views * len(images), desc="teacher", unit="img", leave=False) as bar:
        probs, class_names = ensemble_probs(model_paths, images, flip, progress=bar)
    ends = np.cumsum([len(p) for p in parts.values()])
    answers = dict(zip(parts, np.split(probs, ends[:-1])))
    rows = [
        [name, len(p), f"{100 * (answers[name].argmax(1) == p.labels).mean():.2f}"]
        for name, p in parts.items()
    ]
    if class_names != list(task.class_names):
        raise EdgeferError(f"{model_paths[0]}: classes {class_names} differ from {task.name}'s")
    write_teacher_file(
        out,
        parts[split].images,
        soften(answers[split], temperature),
        class_names,
        provenance(list(model_paths), temperature, flip, split),
    )
    click.echo(format_table(["split", "images", "teacher accuracy %"], rows))
    click.echo(f"wrote {out} ({len(model_paths)} model(s), temperature {temperature:g})")
