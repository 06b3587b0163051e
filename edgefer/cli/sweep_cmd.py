"""`edgefer sweep`: paper 2's hyperparameter search, one stage at a time."""

from __future__ import annotations

import click

from edgefer.cli.common import format_table, skip_bad_option


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
