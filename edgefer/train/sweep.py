"""Paper 2's tuning protocol: sweep batch size, then epochs, then dropout, each stage keeping the
best value (by validation accuracy) for the stages after it. Every trial is an ordinary run
directory, so an interrupted sweep resumes where it stopped."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from edgefer.atomic import write_csv
from edgefer.train.config import TrainConfig
from edgefer.train.runner import train

SWEEP_FIELDS = (
    "stage",
    "value",
    "batch_size",
    "epochs",
    "dropout",
    "val_accuracy",
    "best_epoch",
    "train_seconds",
    "run_dir",
)


def stage_values(field: str, values, max_epochs: int | None) -> list:
    if field == "epochs" and max_epochs:
        values = [min(v, max_epochs) for v in values]
    return list(dict.fromkeys(values))


def sweep(
    base: TrainConfig,
    data,
    out_dir: str | Path,
    stages: list[tuple[str, list]],
    max_epochs: int | None = None,
    log=print,
) -> tuple[list[dict], TrainConfig]:
    out_dir = Path(out_dir)
    best = replace(base, epochs=min(base.epochs, max_epochs)) if max_epochs else base
    rows = []
    for field, values in stages:
        scored = []
        for value in stage_values(field, values, max_epochs):
            cfg = replace(best, **{field: value})
            run_dir = out_dir / f"{field}-{value}"
            resume = (run_dir / "checkpoint" / "state.json").is_file()
            log(f"sweep {field} = {value}" + (" (resuming)" if resume else ""))
            metrics = train(cfg, data.source, run_dir, resume=resume, log=log, data=data)
            acc = metrics["val"]["accuracy"]
            scored.append((acc, value))
            rows.append(
                {
                    "stage": field,
                    "value": value,
                    "batch_size": cfg.batch_size,
                    "epochs": cfg.epochs,
                    "dropout": cfg.dropout,
                    "val_accuracy": round(acc, 4),
                    "best_epoch": metrics["best_epoch"],
                    "train_seconds": metrics["train_seconds"],
                    "run_dir": str(run_dir),
                }
            )
            write_csv(out_dir / "sweep.csv", SWEEP_FIELDS, rows)
        # ties keep the value listed first
        best = replace(best, **{field: max(scored, key=lambda t: t[0])[1]})
    return rows, best
