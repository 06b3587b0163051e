"""`edgefer train`: train a model, resumably."""

from __future__ import annotations

import click

from edgefer.cli.common import ferplus_option, format_table, skip_bad_option
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
