"""Each face's expression scores carried from frame to frame, read again by the model every
`every` frames, and at once for a face that is new or has moved away from where it was.

Why: on a video the expression model is most of a frame's cost (one `invoke` per face, each as
long as a whole BlazeFace tracking step), yet a face does not change its expression between two
frames 33 ms apart: expressions last from about half a second to several seconds. Reading each
face every `every` frames divides that cost by `every`; the price is that a change of expression
shows up to `every - 1` frames late (at 30 FPS and `every = 3`, at most 67 ms). `every = 1`, the
default, reads every face on every frame.

Which face is which: a box is the remembered face whose box overlaps it most, with an IoU of at
least `MIN_IOU`, each remembered face taken once. A face that jumped or changed size so much
that the overlap falls below it is read again, never given another face's scores. Only for
consecutive frames of one video or camera: a folder of unrelated images must read every face
(`reset` between unrelated frames, or `every = 1`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from edgefer.device.detector import Box, iou

MIN_IOU = 0.5


@dataclass(frozen=True)
class Remembered:
    box: Box
    scores: np.ndarray
    age: int  # frames since the model read this face


class ExpressionMemory:
    def __init__(self, every: int = 1):
        if every < 1:
            raise ValueError(f"every: {every}; expected 1 or more")
        self.every = every
        self.faces: list[Remembered] = []
        self.reads = 0  # faces the model has read (what `every` saves is visible in benchmarks)

    def reset(self) -> None:
        """Forget every face: the next frame's faces are all read."""
        self.faces = []

    def match(self, boxes: Sequence[Box]) -> list[int | None]:
        """Per box, the index of the remembered face it is (largest IoU first), or None."""
        pairs = sorted(
            ((iou(b, f.box), i, j) for i, b in enumerate(boxes) for j, f in enumerate(self.faces)),
            reverse=True,
        )
        match: list[int | None] = [None] * len(boxes)
        taken: set[int] = set()
        for overlap, i, j in pairs:
            if overlap < MIN_IOU:
                break
            if match[i] is None and j not in taken:
                match[i] = j
                taken.add(j)
        return match

    def scores(
        self, boxes: Sequence[Box], read: Callable[[list[int]], np.ndarray]
    ) -> list[np.ndarray]:
        """Each box's scores: remembered, or from `read(indices)` (one call for all the boxes
        that are due: new, moved, or read `every` frames ago) for those boxes, in that order."""
        match = self.match(boxes)
        out: list[np.ndarray | None] = []
        ages: list[int] = []
        for j in match:
            face = self.faces[j] if j is not None else None
            due = face is None or face.age + 1 >= self.every
            out.append(None if due else face.scores)
            ages.append(0 if due else face.age + 1)
        due = [i for i, s in enumerate(out) if s is None]
        if due:
            for i, s in zip(due, read(due)):
                out[i] = s
            self.reads += len(due)
        self.faces = [Remembered(b, s, a) for b, s, a in zip(boxes, out, ages)]
        return out
