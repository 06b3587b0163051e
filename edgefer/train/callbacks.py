"""Callbacks that make a run resumable and watchable: per-epoch checkpoints, a progress bar."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from tqdm import tqdm

from edgefer.atomic import atomic_file, write_csv, write_text
from edgefer.model_card import write_card
from edgefer.plots import training_curves
from edgefer.tf import keras

HISTORY_FIELDS = (
    "epoch",
    "loss",
    "accuracy",
    "val_loss",
    "val_accuracy",
    "learning_rate",
    "seconds",
)


class RunState:
    """checkpoint/state.json: the last finished epoch and everything needed to continue from it.

    It is written last in each epoch, after the checkpoint it names: a run killed at any moment
    resumes from the last state.json, losing at most the epoch in progress."""

    def __init__(self, run_dir: Path):
        self.path = run_dir / "checkpoint" / "state.json"
        self.data = {
            "epoch": 0,
            "checkpoint": None,
            "best_val_accuracy": -1.0,
            "best_epoch": 0,
            "history": [],
            "callbacks": {},
            "seed_states": [],
            "train_seconds": 0.0,
            "stopped_early": False,
            "finished": False,
        }

    def load(self) -> RunState:
        self.data.update(json.loads(self.path.read_text()))
        return self

    def save(self) -> None:
        write_text(self.path, json.dumps(self.data, indent=1) + "\n")

    def __getitem__(self, key):
        return self.data[key]

    def __setitem__(self, key, value):
        self.data[key] = value


# Callback attributes that Keras resets in on_train_begin and that a resumed run must keep.
_CALLBACK_FIELDS = {
    "early_stopping": ("wait", "best"),
    "reduce_lr": ("wait", "best", "cooldown_counter"),
}


class RestoreCallbackState(keras.callbacks.Callback):
    """Put early-stopping and LR-plateau counters back after Keras reset them (list it after them)."""

    def __init__(self, named_callbacks: dict, state: RunState, learning_rate: float | None):
        super().__init__()
        self.named, self.state, self.learning_rate = named_callbacks, state, learning_rate

    def on_train_begin(self, logs=None):
        for name, cb in self.named.items():
            for attr, value in self.state["callbacks"].get(name, {}).items():
                setattr(cb, attr, value)
        if self.learning_rate is not None:
            self.model.optimizer.learning_rate = self.learning_rate


class EpochCheckpoint(keras.callbacks.Callback):
    """Each epoch: best model (+ its card), a full checkpoint (weights + optimizer), the state,
    history.csv and curves.png."""

    def __init__(self, run_dir: Path, state: RunState, named_callbacks: dict, card: dict):
        super().__init__()
        self.run_dir, self.state, self.named, self.card = run_dir, state, named_callbacks, card

    def on_epoch_begin(self, epoch, logs=None):
        self.t0 = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        seconds = time.perf_counter() - self.t0
        lr = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        row = {
            "epoch": epoch + 1,
            **{
                k: float(logs.get(k, float("nan")))
                for k in ("loss", "accuracy", "val_loss", "val_accuracy")
            },
            "learning_rate": lr,
            "seconds": round(seconds, 1),
        }
        st = self.state
        if row["val_accuracy"] > st["best_val_accuracy"]:
            with atomic_file(self.run_dir / "model.keras") as tmp:
                self.model.save(tmp)
            write_card(
                self.run_dir / "model.keras",
                {**self.card, "epoch": epoch + 1, "val_accuracy": row["val_accuracy"]},
            )
            st["best_val_accuracy"], st["best_epoch"] = row["val_accuracy"], epoch + 1
        ckpt = f"epoch-{epoch + 1:04d}.keras"
        with atomic_file(self.run_dir / "checkpoint" / ckpt) as tmp:
            self.model.save(tmp)
        previous = st["checkpoint"]
        st["history"].append(row)
        st["callbacks"] = {
            name: {a: _plain(getattr(cb, a)) for a in _CALLBACK_FIELDS[name]}
            for name, cb in self.named.items()
        }
        st["seed_states"] = [
            keras.ops.convert_to_numpy(v).tolist() for v in seed_states(self.model)
        ]
        st["epoch"], st["checkpoint"] = epoch + 1, ckpt
        st["train_seconds"] += seconds
        st["stopped_early"] = bool(self.model.stop_training)  # EarlyStopping runs before us
        st.save()
        if previous and previous != ckpt:
            (self.run_dir / "checkpoint" / previous).unlink(missing_ok=True)
        write_csv(self.run_dir / "history.csv", HISTORY_FIELDS, st["history"])
        training_curves(st["history"], self.run_dir / "curves.png", self.card["arch"])


def seed_states(model) -> list:
    """The dropout layers' random-stream states. A .keras file does not restore them (a loaded
    model starts the streams afresh), so the run state carries them: without them a resumed run
    draws other dropout masks than an uninterrupted one."""
    return [v for v in model.non_trainable_variables if v.path.endswith("seed_generator_state")]


def _plain(value):
    return None if value is None else float(value)


class ProgressBar(keras.callbacks.Callback):
    """One bar over all remaining batches with an ETA for the whole run, and a line per epoch."""

    def __init__(self, total_epochs: int, initial_epoch: int, steps: int):
        super().__init__()
        self.total_epochs, self.initial_epoch, self.steps = total_epochs, initial_epoch, steps

    def on_train_begin(self, logs=None):
        tty = sys.stderr.isatty()
        self.bar = tqdm(
            total=(self.total_epochs - self.initial_epoch) * self.steps,
            unit="batch",
            file=sys.stderr,
            mininterval=0.5 if tty else 60,
            dynamic_ncols=True,
            desc=f"epoch {self.initial_epoch + 1}/{self.total_epochs}",
        )

    def on_train_batch_end(self, batch, logs=None):
        self.bar.update(1)
        if logs and batch % 20 == 0:
            self.bar.set_postfix(
                loss=f"{logs.get('loss', 0):.3f}",
                acc=f"{logs.get('accuracy', 0):.3f}",
                refresh=False,
            )

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        self.bar.set_description(f"epoch {min(epoch + 2, self.total_epochs)}/{self.total_epochs}")
        self.bar.write(
            f"epoch {epoch + 1}/{self.total_epochs}: loss {logs.get('loss', 0):.4f} "
            f"acc {logs.get('accuracy', 0):.4f} val_loss {logs.get('val_loss', 0):.4f} "
            f"val_acc {logs.get('val_accuracy', 0):.4f}",
            file=sys.stderr,
        )

    def on_train_end(self, logs=None):
        self.bar.close()
