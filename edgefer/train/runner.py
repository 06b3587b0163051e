"""One training run: fresh or resumed, on one device or under a tf.distribute strategy."""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path

import numpy as np

from edgefer.allocator import allocator_in_use
from edgefer.atomic import write_text
from edgefer.data import load_fer
from edgefer.errors import EdgeferError
from edgefer.evaluate import evaluate_probs, open_model, scores_in_batches
from edgefer.labels import parse_task
from edgefer.plots import confusion
from edgefer.train.callbacks import (
    EpochCheckpoint,
    ProgressBar,
    RestoreCallbackState,
    RunState,
    seed_states,
)
from edgefer.train.config import TrainConfig
from edgefer.train.data import Part, task_parts
from edgefer.train.pipeline import class_balance, train_batches
from edgefer.train.teacher import teacher_targets


def make_strategy(kind: str | None, cpu_replicas: int = 1):
    """tf.distribute, not a home-made engine. `cpu_replicas` splits the CPU into logical devices
    (must run before TensorFlow initialises its devices) so mirroring can be tried without GPUs.
    None on another Keras backend, which trains on one device."""
    from edgefer.tf import backend

    if backend() != "tensorflow":
        if kind or cpu_replicas > 1:
            raise EdgeferError(
                f"--distribute/--cpu-replicas: need KERAS_BACKEND=tensorflow, not {backend()}"
            )
        return None
    from edgefer.tf import tf

    if cpu_replicas > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * cpu_replicas
        )
    if kind is None:
        return tf.distribute.get_strategy()
    if kind == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in gpus or tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices)
    if kind == "multiworker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise EdgeferError(f"--distribute {kind}: expected mirrored or multiworker")


def targets_for(part: Part, k: int, binary: bool, cfg: TrainConfig) -> np.ndarray:
    """Training targets: P(class 1) for a sigmoid model; one-hot or FER+ soft labels otherwise."""
    if binary:
        if cfg.labels == "ferplus":
            return part.soft[:, 1:2].astype(np.float32)
        return part.labels.astype(np.float32)[:, None]
    if cfg.labels == "ferplus":
        return part.soft.astype(np.float32)
    return np.eye(k, dtype=np.float32)[part.labels]


def compile_model(model, cfg: TrainConfig, binary: bool):
    from edgefer.tf import keras

    loss = (
        keras.losses.BinaryCrossentropy(label_smoothing=cfg.label_smoothing)
        if binary
        else keras.losses.CategoricalCrossentropy(label_smoothing=cfg.label_smoothing)
    )
    model.compile(
        optimizer=keras.optimizers.Adam(cfg.learning_rate), loss=loss, metrics=["accuracy"]
    )


def _load_data(cfg: TrainConfig, data_path: str, ferplus: str | None, skip_bad: bool):
    if cfg.labels == "ferplus":
        ferplus = ferplus or str(Path(data_path).with_name("fer2013new.csv"))
        if not Path(ferplus).is_file():
            raise EdgeferError(f"{ferplus}: FER+ label file not found; pass --ferplus PATH")
    return load_fer(
        data_path, skip_bad=skip_bad, ferplus=ferplus if cfg.labels == "ferplus" else None
    )


def train(
    cfg: TrainConfig,
    data_path: str,
    run_dir: str | Path,
    resume: bool = False,
    ferplus: str | None = None,
    distribute: str | None = None,
    cpu_replicas: int = 1,
    skip_bad: bool = False,
    log=print,
    data=None,
) -> dict:
    """Train (or resume) one run; `data` may be passed pre-loaded (the sweep loads it once)."""
    run_dir = Path(run_dir)
    state = RunState(run_dir)
    if resume:
        if not state.path.is_file():
            raise EdgeferError(f"{run_dir}: no checkpoint/state.json; nothing to resume")
        state.load()
        if state["finished"]:
            log(f"{run_dir}: already finished at epoch {state['epoch']}")
            return json.loads((run_dir / "metrics.json").read_text())
    elif run_dir.exists() and any(run_dir.iterdir()):
        raise EdgeferError(
            f"{run_dir}: already exists and is not empty; use --resume {run_dir} or another --out"
        )
    strategy = make_strategy(distribute, cpu_replicas)
    from edgefer.models import get_arch
    from edgefer.tf import keras

    keras.utils.set_random_seed(cfg.seed)
    task = parse_task(cfg.task)
    data = data if data is not None else _load_data(cfg, data_path, ferplus, skip_bad)
    parts = task_parts(data, task, cfg)
    # Checked before the run directory exists: a teacher file for other images leaves nothing.
    taught = (
        teacher_targets(cfg.teacher, parts["train"].images, list(task.class_names))
        if cfg.teacher
        else None
    )
    prep = cfg.preprocessing
    binary = cfg.arch == "seed-binary"
    k = task.num_classes
    run_dir.mkdir(parents=True, exist_ok=True)
    write_text(run_dir / "config.json", json.dumps(cfg.to_dict(), indent=2) + "\n")

    with strategy.scope() if strategy else contextlib.nullcontext():
        if resume:
            model = keras.models.load_model(
                run_dir / "checkpoint" / state["checkpoint"], safe_mode=True
            )
            for var, value in zip(seed_states(model), state["seed_states"], strict=True):
                var.assign(np.asarray(value, dtype=var.dtype))
            # A checkpoint carries the jit_compile its saving backend resolved ("auto" is True
            # on JAX; XLA on a CPU is ~2x slower here): resolve "auto" again, as a fresh run.
            model._jit_compile = None
        else:
            options = {} if cfg.head_pooling == "arch" else {"head_pooling": cfg.head_pooling}
            if cfg.width != 1.0:
                options["width"] = cfg.width
            model = get_arch(cfg.arch).build(k, prep.input_shape, dropout=cfg.dropout, **options)
            compile_model(model, cfg, binary)
    replicas = strategy.num_replicas_in_sync if strategy else 1
    if cfg.batch_size % replicas:
        raise EdgeferError(
            f"--batch-size {cfg.batch_size}: expected a multiple of the {replicas} replicas"
        )
    ds, steps, val_ds = _datasets(parts, cfg, k, binary, replicas, state["epoch"], taught)
    card = {
        "arch": cfg.arch,
        "task": task.name,
        "class_names": list(task.class_names),
        "preprocessing": prep.to_dict(),
        "input_shape": list(prep.input_shape),
        "labels": cfg.labels,
        "binary_sigmoid": binary,
    }
    log(
        f"{cfg.arch} on {task.name}: train {len(parts['train'])} ({parts['train'].name}), "
        f"val {len(parts['val'])} ({parts['val'].name}), epochs {state['epoch'] + 1}..{cfg.epochs}, "
        f"{steps} batches/epoch, {model.count_params():,} parameters, {replicas} replica(s), "
        f"malloc: {allocator_in_use()}"
    )
    if state["epoch"] < cfg.epochs and not state["stopped_early"]:
        model.fit(
            ds,
            steps_per_epoch=steps,
            epochs=cfg.epochs,
            initial_epoch=state["epoch"],
            validation_data=val_ds,
            validation_batch_size=256 * replicas,
            verbose=0,
            shuffle=False,
            callbacks=_callbacks(cfg, state, run_dir, card, steps),
        )
    metrics = final_report(run_dir, parts, state, task)
    state["finished"] = True
    state.save()
    # A finished run needs no resume point; model.keras is the result.
    if state["checkpoint"]:
        (run_dir / "checkpoint" / state["checkpoint"]).unlink(missing_ok=True)
    return metrics


def _datasets(
    parts: dict[str, Part],
    cfg: TrainConfig,
    k: int,
    binary: bool,
    replicas: int,
    initial_epoch: int,
    taught: np.ndarray | None,
):
    """(training batches, steps per epoch, validation (images, targets))."""
    train_part, val_part = parts["train"], parts["val"]
    item_weights = class_balance(train_part.labels, k)[train_part.labels]
    targets = targets_for(train_part, k, binary, cfg)
    if taught is not None:
        targets = (1 - cfg.distill) * targets + cfg.distill * taught
    ds, steps = train_batches(
        train_part.images,
        targets,
        cfg,
        initial_epoch,
        weights=item_weights if cfg.balance == "weights" else None,
        sample_p=item_weights / item_weights.sum() if cfg.balance == "sampling" else None,
        full_batches_only=replicas > 1,
    )
    # Per-epoch validation feeds replicas equal shares: at most replicas-1 samples are left out
    # here; the final report scores all of them.
    n_val = len(val_part) - len(val_part) % replicas
    val = (
        cfg.preprocessing.apply(val_part.images[:n_val]),
        targets_for(val_part, k, binary, cfg)[:n_val],
    )
    return ds, steps, val


def _callbacks(cfg: TrainConfig, state: RunState, run_dir: Path, card: dict, steps: int) -> list:
    from edgefer.tf import keras

    named, schedule = {}, []
    if cfg.patience:
        named["early_stopping"] = keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=cfg.patience
        )
    if cfg.schedule == "cosine":
        schedule = [keras.callbacks.LearningRateScheduler(lambda epoch: cosine_lr(cfg, epoch))]
    elif cfg.patience:
        named["reduce_lr"] = keras.callbacks.ReduceLROnPlateau(
            monitor="val_loss", factor=0.1, patience=max(1, cfg.patience // 4), min_lr=1e-6
        )
    last_lr = state["history"][-1]["learning_rate"] if state["history"] else None
    return [
        *named.values(),
        RestoreCallbackState(named, state, last_lr),
        *schedule,
        EpochCheckpoint(run_dir, state, named, card),
        ProgressBar(cfg.epochs, state["epoch"], steps),
    ]


def cosine_lr(cfg: TrainConfig, epoch: int) -> float:
    """Linear warm-up to the base rate, then half a cosine down to zero at the last epoch."""
    if epoch < cfg.warmup_epochs:
        return cfg.learning_rate * (epoch + 1) / (cfg.warmup_epochs + 1)
    progress = (epoch - cfg.warmup_epochs) / max(1, cfg.epochs - cfg.warmup_epochs)
    return float(cfg.learning_rate * 0.5 * (1 + np.cos(np.pi * progress)))


def final_report(run_dir: Path, parts: dict[str, Part], state: RunState, task) -> dict:
    """Score the best model on validation (and test, if the data has one): metrics.json, confusion.png."""
    # The same evaluation path as `edgefer evaluate`: the model with its model.meta.json.
    runtime, _, _, prep = open_model(run_dir / "model.keras")
    t0 = time.perf_counter()
    results = {}
    for role in ("val", "test"):
        if role in parts:
            p = parts[role]
            results[role] = {
                "split": p.name,
                **evaluate_probs(
                    scores_in_batches(runtime, prep.apply(p.images)), p.labels, task.class_names
                ),
            }
    shown = results.get("test", results["val"])
    confusion(
        shown["confusion"],
        task.class_names,
        run_dir / "confusion.png",
        f"{run_dir.name}: {shown['split']} (row %), accuracy {100 * shown['accuracy']:.2f}%",
    )
    history = state["history"]
    metrics = {
        "best_epoch": state["best_epoch"],
        "epochs_run": state["epoch"],
        "final_epoch_val_accuracy": history[-1]["val_accuracy"] if history else None,
        "train_seconds": round(state["train_seconds"], 1),
        "eval_seconds": round(time.perf_counter() - t0, 1),
        **results,
    }
    write_text(run_dir / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    return metrics
