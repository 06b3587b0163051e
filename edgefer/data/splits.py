"""Seeded, stratified splits for data that has no validation/test split of its own."""

from __future__ import annotations

import numpy as np

from edgefer.data.dataset import FerData


def stratified_holdout(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Boolean mask of a `fraction` holdout drawn per class, so class shares stay the same."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction {fraction}: expected a value between 0 and 1")
    rng = np.random.default_rng(seed)
    holdout = np.zeros(len(labels), bool)
    for cls in np.unique(labels):
        idx = np.flatnonzero(labels == cls)
        rng.shuffle(idx)
        holdout[idx[: round(len(idx) * fraction)]] = True
    return holdout


def resplit(data: FerData, fraction: float, seed: int, names=("train", "holdout")) -> FerData:
    """Pool every item and split it in two, stratified by class.

    `--val-fraction 0.4` gives the 60/40 train/test split of the sad-vs-depression paper.
    """
    holdout = stratified_holdout(data.labels, fraction, seed)
    out = data.subset(np.ones(len(data), bool))
    out.split_codes = holdout.astype(np.int64)
    out.split_names = tuple(names)
    return out
