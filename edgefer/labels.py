"""FER2013's classes and the tasks edgefer trains on.

A task is a subset of FER2013's seven classes, relabelled 0..k-1 in the order given. The binary
task of "Classification of Sad Emotions and Depression Through Images Using CNN" is FER2013 class
4 (sad) against class 2 (fear): that paper's "depression" folder *is* FER2013's fear folder, so
edgefer calls the task `sad-vs-fear`. It detects a facial expression, not depression; nothing in
edgefer is a clinical tool.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgefer.errors import EdgeferError, shown

FER7 = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


@dataclass(frozen=True)
class Task:
    name: str
    source_classes: tuple[int, ...]  # FER2013 class ids, in the order of the new labels

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(FER7[c] for c in self.source_classes)

    @property
    def num_classes(self) -> int:
        return len(self.source_classes)

    def relabel(self, fer_labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return (mask of kept items, their new labels 0..k-1)."""
        lut = np.full(len(FER7), -1, np.int64)
        lut[list(self.source_classes)] = np.arange(self.num_classes)
        new = lut[np.asarray(fer_labels, np.int64)]
        keep = new >= 0
        return keep, new[keep]


TASKS = {
    "fer7": Task("fer7", tuple(range(7))),
    # Label 0 = sad, 1 = fear (the paper's "depression"); the sigmoid output is P(fear).
    "sad-vs-fear": Task("sad-vs-fear", (4, 2)),
}


def class_id(name: str) -> int:
    """FER2013 id of a class given by name ("happy") or number ("3")."""
    key = name.strip().lower()
    if key.isascii() and key.isdigit() and int(key) < len(FER7):
        return int(key)
    if key in FER7:
        return FER7.index(key)
    raise EdgeferError(f"class '{shown(name)}': expected one of {', '.join(FER7)} or 0-6")


def parse_task(spec: str) -> Task:
    """A task by name (fer7, sad-vs-fear) or as a comma-separated class list ("happy,sad,neutral")."""
    if spec in TASKS:
        return TASKS[spec]
    if "," not in spec:
        raise EdgeferError(
            f"task '{spec}': expected one of {', '.join(TASKS)} or a comma-separated class list"
        )
    ids = tuple(class_id(part) for part in spec.split(","))
    if len(set(ids)) != len(ids):
        raise EdgeferError(f"task '{spec}': a class is listed twice")
    return Task("-".join(FER7[i] for i in ids), ids)
