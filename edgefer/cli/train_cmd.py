"""`edgefer train`, `edgefer evaluate`, `edgefer models`."""

from __future__ import annotations

import json
from pathlib import Path

import click

from edgefer.cli.common import ferplus_option, format_table, load_and_report, skip_bad_option
from edgefer.errors import EdgeferError


@click.command()
@click.option("--arch", help="seed-binary, seed-fcn7 or edge (see `edgefer models`).")
@click.option(
    "--data", "data_path", required=True, type=click.Path(), help="FER CSV or image folders."
)
@click.option("--out", type=click.Path(file_okay=False), help="New run directory.")
@click.option(
    "--resume",
    type=click.Path(file_okay=False),
    help="Continue RUN_DIR from its last finished epoch (config from RUN_DIR).",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False),
    help="TOML/JSON file of config fields; flags override it, it overrides arch defaults.",
)
@click.option("--task", help="fer7, sad-vs-fear or a class list (default: the arch's).")
@click.option(
    "--labels", type=click.Choice(["fer", "ferplus"]), help="FER2013 labels or FER+ votes."
)
@click.option("--epochs", type=int)
@click.option("--batch-size", type=int)
@click.option("--learning-rate", type=float)
@click.option("--dropout", type=float)
@click.option(
    "--patience", type=int, help="Early-stopping patience P (ReduceLROnPlateau at P/4); 0 = off."
)
@click.option(
    "--schedule",
    type=click.Choice(["plateau", "cosine"]),
    help="Learning rate: cut x0.1 on a val-loss plateau, or cosine decay over --epochs.",
)
@click.option("--warmup-epochs", type=int, help="Linear learning-rate warm-up (cosine schedule).")
@click.option("--label-smoothing", type=float)
@click.option(
    "--head-pooling",
    type=click.Choice(["arch", "max", "avg"]),
    help="Global pooling before the classifier (seed-fcn7, edge); arch = the arch's own.",
)
@click.option("--mixup", type=float, help="Mixup alpha (pairs mixed within a batch); 0 = off.")
@click.option("--width", type=float, help="Channel multiplier of the edge arch (params ~ width^2).")
@click.option(
    "--teacher", type=click.Path(dir_okay=False), help="Teacher file from `edgefer teach`."
)
@click.option("--distill", type=float, help="Weight of the teacher's answers in the targets (0-1).")
@click.option(
    "--balance",
    type=click.Choice(["none", "weights", "sampling"]),
    help="Class-imbalance handling: class weights or balanced sampling.",
)
@click.option(
    "--val-fraction",
    type=float,
    help="Pool all splits, hold out this stratified fraction (0.4 = paper 1's 60/40).",
)
@click.option("--seed", type=int)
@click.option(
    "--distribute", type=click.Choice(["mirrored", "multiworker"]), help="tf.distribute strategy."
)
@click.option(
    "--cpu-replicas",
    type=click.IntRange(1, 64),
    default=1,
    help="Split the CPU into N logical devices (to try --distribute without GPUs).",
)
@ferplus_option
@skip_bad_option
def train(
    arch,
    data_path,
    out,
    resume,
    config_file,
    distribute,
    cpu_replicas,
    ferplus,
    skip_bad,
    **overrides,
):
    """Train a model; checkpoints every epoch, so --resume continues a killed run."""
    from edgefer.train.config import load_run_config, resolve
    from edgefer.train.runner import train as run_training

    if bool(out) == bool(resume):
        raise EdgeferError("give exactly one of --out RUN_DIR (new run) or --resume RUN_DIR")
    if resume:
        cfg = load_run_config(resume)
    elif not arch:
        raise EdgeferError("--arch: required for a new run (see `edgefer models`)")
    else:
        cfg = resolve(arch, config_file, **overrides)
    metrics = run_training(
        cfg,
        data_path,
        resume or out,
        resume=bool(resume),
        ferplus=ferplus,
        distribute=distribute,
        cpu_replicas=cpu_replicas,
        skip_bad=skip_bad,
        log=lambda m: click.echo(m, err=True),
    )
    rows = [
        [
            metrics[r]["split"],
            f"{100 * metrics[r]['accuracy']:.2f}",
            f"{100 * metrics[r]['macro_f1']:.2f}",
        ]
        for r in ("val", "test")
        if r in metrics
    ]
    click.echo(
        f"best epoch {metrics['best_epoch']} of {metrics['epochs_run']}, "
        f"{metrics['train_seconds']:.0f} s training; wrote {resume or out}/"
    )
    click.echo(format_table(["split", "accuracy %", "macro F1 %"], rows))


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


@click.command()
def models():
    """List the model zoo: parameters, MACs and input shape."""
    from edgefer.models import ARCHS, count_macs
    from edgefer.train.config import ARCH_DEFAULTS, resolve

    rows = []
    for name, arch in ARCHS.items():
        cfg = resolve(name)
        m = arch.build(
            2 if name == "seed-binary" else 7, cfg.preprocessing.input_shape, dropout=cfg.dropout
        )
        rows.append(
            [
                name,
                m.count_params(),
                f"{count_macs(m) / 1e6:.1f}M",
                "x".join(map(str, cfg.preprocessing.input_shape)),
                ARCH_DEFAULTS[name]["task"],
                arch.summary,
            ]
        )
    click.echo(format_table(["arch", "parameters", "MACs", "input", "task", "design"], rows))
    bundled_table()


def bundled_table() -> None:
    """The bundled models' formats with the top-1 their own accuracy-drop reports measured."""
    from edgefer.bundled import DEFAULT, NAMES, bundled_path, bundled_results
    from edgefer.device.manifest import load_manifest

    rows, splits = [], set()
    for name in NAMES:
        manifest, results = load_manifest(bundled_path(name)), bundled_results(name)
        label = f"{name} (default)" if name == DEFAULT else name
        if results is None:
            rows.append([label, manifest.arch, "-", "-", "not benchmarked"])
            continue
        splits.add(f"{results['split']} top-1 on {results['count']:,} images")
        rows.extend(
            [
                label,
                manifest.arch,
                fmt,
                f"{results['size_bytes'][fmt] / 1024:.0f}",
                f"{100 * acc:.2f}",
            ]
            for fmt, acc in results["accuracy"].items()
        )
    click.echo(
        f"\nbundled models (pick one with --model NAME; {DEFAULT} when --model is not given), "
        f"{'; '.join(sorted(splits))}"
    )
    click.echo(format_table(["bundle", "arch", "format", "KiB", "top-1 %"], rows))


def _number_list(kind):
    def parse(ctx, param, value):
        try:
            return [kind(v) for v in value.split(",") if v.strip()]
        except ValueError:
            raise click.BadParameter(
                f"expected comma-separated {kind.__name__}s, got '{value}'"
            ) from None

    return parse


@click.command()
@click.option("--arch", required=True, help="Arch whose recipe is the starting point.")
@click.option("--data", "data_path", required=True, type=click.Path())
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False),
    help="Sweep directory (one run per trial; rerun the same command to resume).",
)
@click.option("--config", "config_file", type=click.Path(dir_okay=False))
@click.option(
    "--batch-sizes", default="16,32,64,128,256", show_default=True, callback=_number_list(int)
)
@click.option(
    "--epochs-list", default="25,50,100,200", show_default=True, callback=_number_list(int)
)
@click.option(
    "--dropouts", default="0.3,0.4,0.5,0.6,0.7", show_default=True, callback=_number_list(float)
)
@click.option("--max-epochs", type=click.IntRange(min=1), help="Budget: cap every trial's epochs.")
@click.option(
    "--data-fraction",
    type=click.FloatRange(0, 1, min_open=True),
    help="Budget: train every trial on this stratified share of the training split.",
)
@click.option("--seed", type=int)
@skip_bad_option
def sweep(
    arch,
    data_path,
    out,
    config_file,
    batch_sizes,
    epochs_list,
    dropouts,
    max_epochs,
    data_fraction,
    seed,
    skip_bad,
):
    """Paper 2's protocol: batch size, then epochs, then dropout, each stage keeping the best."""
    from edgefer.train.config import resolve
    from edgefer.train.runner import _load_data
    from edgefer.train.sweep import sweep as run_sweep

    base = resolve(arch, config_file, train_fraction=data_fraction, seed=seed)
    data = _load_data(base, data_path, None, skip_bad)
    stages = [("batch_size", batch_sizes), ("epochs", epochs_list), ("dropout", dropouts)]
    rows, best = run_sweep(
        base, data, out, stages, max_epochs, log=lambda m: click.echo(m, err=True)
    )
    click.echo(
        format_table(
            ["stage", "value", "batch", "epochs", "dropout", "val acc %", "best epoch", "seconds"],
            [
                [
                    r["stage"],
                    r["value"],
                    r["batch_size"],
                    r["epochs"],
                    r["dropout"],
                    f"{100 * r['val_accuracy']:.2f}",
                    r["best_epoch"],
                    f"{r['train_seconds']:.0f}",
                ]
                for r in rows
            ],
        )
    )
    click.echo(
        f"best: batch_size {best.batch_size}, epochs {best.epochs}, dropout {best.dropout} "
        f"(table: {out}/sweep.csv)"
    )


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
