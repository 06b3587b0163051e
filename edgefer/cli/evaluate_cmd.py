"""`edgefer evaluate`: how well does one model read expressions on a split?"""

from __future__ import annotations

import json
from pathlib import Path

import click

from edgefer.cli.common import ferplus_option, format_table, load_and_report, skip_bad_option


@click.command()
@click.argument("model", type=click.Path())
@click.option("--data", "data_path", required=True, type=click.Path())
@click.option("--split", default="PrivateTest", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON.")
@click.option(
    "--plot", type=click.Path(dir_okay=False), help="Write the confusion matrix PNG here."
)
@ferplus_option
@skip_bad_option
def evaluate(model, data_path, split, as_json, plot, ferplus, skip_bad):
    """Accuracy, per-class precision/recall/F1 and the confusion matrix of MODEL on a split.

    MODEL is a .keras model, or a .tflite/.onnx file of a bundle made by `edgefer convert`."""
    from edgefer.evaluate import evaluate_probs, open_model, scores_in_batches
    from edgefer.labels import parse_task
    from edgefer.plots import confusion
    from edgefer.train.data import task_part

    runtime, task_name, _, prep = open_model(model)
    task = parse_task(task_name)
    ds = load_and_report(data_path, skip_bad, ferplus)
    part = task_part(ds.split(split), task, split)
    report = evaluate_probs(
        scores_in_batches(runtime, prep.apply(part.images)), part.labels, task.class_names
    )
    report = {"model": str(model), "split": split, **report}
    if plot:
        confusion(
            report["confusion"],
            task.class_names,
            plot,
            f"{Path(model).name} on {split}: accuracy {100 * report['accuracy']:.2f}%",
        )
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    click.echo(
        f"{model} on {split} ({report['count']:,} images): accuracy "
        f"{100 * report['accuracy']:.2f}%, macro F1 {100 * report['macro_f1']:.2f}%"
    )
    rows = [
        [
            name,
            f"{100 * m['precision']:.1f}",
            f"{100 * m['recall']:.1f}",
            f"{100 * m['f1']:.1f}",
            m["support"],
        ]
        for name, m in report["per_class"].items()
    ]
    rows.append(
        [
            "macro",
            f"{100 * report['macro_precision']:.1f}",
            f"{100 * report['macro_recall']:.1f}",
            f"{100 * report['macro_f1']:.1f}",
            report["count"],
        ]
    )
    click.echo(format_table(["class", "precision %", "recall %", "F1 %", "support"], rows))
    click.echo("\nconfusion (rows = true, columns = predicted)")
    click.echo(
        format_table(
            ["", *task.class_names],
            [[n, *r] for n, r in zip(task.class_names, report["confusion"])],
        )
    )
