"""The in-memory FER data set every loader produces."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace

import numpy as np

from edgefer.errors import EdgeferError, shown
from edgefer.labels import FER7

# The Kaggle CSV's Usage values, in the order they mean train / validation / test.
KAGGLE_SPLITS = ("Training", "PublicTest", "PrivateTest")


@dataclass(frozen=True)
class Skipped:
    """One item left out under --skip-bad: where it is and why."""

    where: str
    why: str


@dataclass
class FerData:
    """Images as 48x48 uint8 gray, FER2013 labels 0..6, a split name per image.

    `soft_labels` holds FER+ vote distributions over the seven classes when they were joined.
    """

    images: np.ndarray  # (N, 48, 48) uint8
    labels: np.ndarray  # (N,) int64, FER2013 ids
    split_codes: np.ndarray  # (N,) int64 index into split_names
    split_names: tuple[str, ...]
    source: str
    soft_labels: np.ndarray | None = None  # (N, 7) float32
    skipped: list[Skipped] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, mask: np.ndarray) -> FerData:
        return replace(
            self,
            images=self.images[mask],
            labels=self.labels[mask],
            split_codes=self.split_codes[mask],
            soft_labels=None if self.soft_labels is None else self.soft_labels[mask],
        )

    def split(self, name: str) -> FerData:
        """The items of one split, or of several pooled as "A+B" (e.g. "PublicTest+PrivateTest",
        the 7,178-image validation set some papers report on); an unknown name is an error
        that lists the known ones."""
        parts = name.split("+")
        for part in parts:
            if part not in self.split_names:
                raise EdgeferError(
                    f"{shown(self.source, None)}: no split '{shown(part)}'; it has "
                    f"{', '.join(shown(s) for s in self.split_names)} (pool several with '+')"
                )
        codes = [self.split_names.index(p) for p in parts]
        return self.subset(np.isin(self.split_codes, codes))

    def counts(self) -> dict[str, dict[str, int]]:
        """{split: {class: count}} for every split and all seven classes (zeros included)."""
        out = {}
        for code, split in enumerate(self.split_names):
            c = Counter(self.labels[self.split_codes == code].tolist())
            out[split] = {name: c.get(i, 0) for i, name in enumerate(FER7)}
        return out


# Split names by role, for ordering: train first, then validation, then test, then the rest.
SPLIT_ROLES = {
    "train": ("Training", "train", "training"),
    "validation": ("PublicTest", "val", "valid", "validation"),
    "test": ("PrivateTest", "test", "testing"),
}


def _split_rank(name: str) -> int:
    return next(
        (i for i, names in enumerate(SPLIT_ROLES.values()) if name in names), len(SPLIT_ROLES)
    )


def split_codes_from_names(names: list[str]) -> tuple[np.ndarray, tuple[str, ...]]:
    """Encode per-item split names, ordered train / validation / test / others."""
    order = sorted(dict.fromkeys(names), key=_split_rank)
    index = {s: i for i, s in enumerate(order)}
    return np.array([index[n] for n in names], np.int64), tuple(order)
