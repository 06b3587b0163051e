"""From a loaded FER data set to the train / validation / test parts of one task."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgefer.data import FerData
from edgefer.data.dataset import SPLIT_ROLES
from edgefer.data.splits import resplit, stratified_holdout
from edgefer.errors import DataError
from edgefer.labels import Task


@dataclass
class Part:
    """One split of one task: raw uint8 images, hard labels 0..k-1, and training targets."""

    name: str
    images: np.ndarray  # (N, 48, 48) uint8
    labels: np.ndarray  # (N,) int64
    soft: np.ndarray | None = None  # (N, k) float32 FER+ distributions

    def __len__(self):
        return len(self.labels)


def task_part(data: FerData, task: Task, name: str) -> Part:
    keep, labels = task.relabel(data.labels)
    soft = None
    if data.soft_labels is not None:
        soft = data.soft_labels[keep][:, list(task.source_classes)]
        mass = soft.sum(axis=1, keepdims=True)
        soft = np.divide(soft, mass, out=np.zeros_like(soft), where=mass > 0)
    part = Part(name, data.images[keep], labels, soft)
    missing = [task.class_names[i] for i in range(task.num_classes) if not (labels == i).any()]
    if missing:
        raise DataError(
            f"{data.source} [{name}]",
            f"no images of {', '.join(missing)}; task "
            f"{task.name} needs every one of {', '.join(task.class_names)}",
        )
    return part


def _role(data: FerData, role: str, asked: str) -> str | None:
    if asked != "auto":
        data.split(asked)  # raises with the list of known splits
        return asked
    names = SPLIT_ROLES[role] + (("all",) if role == "train" else ())
    return next((s for s in data.split_names if s in names), None)


def task_parts(data: FerData, task: Task, cfg) -> dict[str, Part]:
    parts = _split_parts(data, task, cfg)
    if cfg.train_fraction < 1:
        train = parts["train"]
        keep = stratified_holdout(train.labels, cfg.train_fraction, cfg.seed)
        parts["train"] = Part(
            train.name,
            train.images[keep],
            train.labels[keep],
            None if train.soft is None else train.soft[keep],
        )
    return parts


def _split_parts(data: FerData, task: Task, cfg) -> dict[str, Part]:
    """{'train', 'val'[, 'test']} parts for training.

    `val_fraction` > 0 pools every split and holds out a stratified fraction (paper 1's 60/40),
    which then is both validation and test (so there is no separate 'test' part). Otherwise the data's own splits are used, and data
    without a validation split gets a seeded 10% holdout of its training split.
    """
    if cfg.val_fraction > 0:
        pooled = resplit(data, cfg.val_fraction, cfg.seed, names=("train", "holdout"))
        parts = {
            "train": task_part(pooled.split("train"), task, "train"),
            "val": task_part(pooled.split("holdout"), task, "holdout"),
        }
        return parts
    train_name = _role(data, "train", cfg.train_split)
    if train_name is None:
        raise DataError(
            data.source,
            f"no training split among {', '.join(data.split_names)}; "
            "expected Training/train or pass --train-split",
        )
    train = data.split(train_name)
    val_name = _role(data, "validation", cfg.val_split)
    if val_name is None:
        holdout = stratified_holdout(train.labels, 0.1, cfg.seed)
        parts = {
            "train": task_part(train.subset(~holdout), task, train_name),
            "val": task_part(train.subset(holdout), task, f"{train_name}-holdout"),
        }
    else:
        parts = {
            "train": task_part(train, task, train_name),
            "val": task_part(data.split(val_name), task, val_name),
        }
    test_name = _role(data, "test", cfg.test_split)
    if test_name is not None:
        parts["test"] = task_part(data.split(test_name), task, test_name)
    return parts
