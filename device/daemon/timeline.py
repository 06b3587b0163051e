"""A camera's expressions over the last hour, minute by minute: what the status page draws as a
stacked strip. Kept in the daemon, in memory, as counts only (no frame, no face, no track id),
so the page can show the last hour right after it is opened, and nothing personal is kept."""

from __future__ import annotations

import time
from collections import OrderedDict

import numpy as np

BIN_SECONDS = 60
BINS = 60  # an hour


class Timeline:
    """Per wall-clock minute, how many face-frames showed each expression (a face's smoothed
    label in a processed frame): the shares in a minute are what the strip stacks."""

    def __init__(self, labels, bins: int = BINS, bin_seconds: int = BIN_SECONDS, clock=time.time):
        self.labels = list(labels)
        self.bins, self.bin_seconds, self.clock = bins, bin_seconds, clock
        self.counts: OrderedDict[int, np.ndarray] = OrderedDict()  # minute -> counts per label

    def add(self, label_indices) -> None:
        """One processed frame's faces, by their label index."""
        if not len(label_indices):
            return
        minute = int(self.clock() // self.bin_seconds)
        row = self.counts.get(minute)
        if row is None:
            row = self.counts[minute] = np.zeros(len(self.labels), np.int64)
            while len(self.counts) > self.bins:
                self.counts.popitem(last=False)
        np.add.at(row, list(label_indices), 1)

    def snapshot(self) -> dict:
        """For /status: the last `bins` minutes, oldest first, each a count per label, and the
        wall-clock time (epoch seconds) at which the newest minute ends."""
        now = int(self.clock() // self.bin_seconds)
        zero = [0] * len(self.labels)
        rows = []
        for minute in range(now - self.bins + 1, now + 1):
            row = self.counts.get(minute)  # one look: the loop may drop the oldest meanwhile
            rows.append(zero if row is None else row.tolist())
        return {
            "bin_seconds": self.bin_seconds,
            "end": (now + 1) * self.bin_seconds,
            "labels": self.labels,
            "counts": rows,
        }
