"""Is this calibration set fit for this model? A mismatch between the calibration data and the
model's training preprocessing is the first cause of int8 accuracy collapse, so it is an error
(unless --force) before any conversion starts."""

from __future__ import annotations

import numpy as np

from edgefer.calibration import CalibrationSet
from edgefer.errors import EdgeferError
from edgefer.preprocess import Preprocessing


def check(calib: CalibrationSet, card: dict, where: str) -> list[str]:
    """Raise for what can never work (shape, dtype); return the mismatches --force may override."""
    prep = Preprocessing.from_dict(card["preprocessing"])
    if calib.x.dtype != np.float32:
        raise EdgeferError(f"{where}: x is {calib.x.dtype}; expected float32")
    if tuple(calib.x.shape[1:]) != prep.input_shape:
        raise EdgeferError(
            f"{where}: samples are {tuple(calib.x.shape[1:])} but the model takes "
            f"{prep.input_shape}; rebuild it with matching --size/--channels"
        )
    bad = int((~np.isfinite(calib.x)).sum())
    if bad:
        raise EdgeferError(
            f"{where}: x has {bad} NaN or infinite values; expected finite preprocessed pixels"
        )
    problems = []
    calib_prep = calib.meta.get("preprocessing", {}).get("normalization")
    if calib_prep != prep.normalization:
        problems.append(
            f"normalization is {calib_prep}, the model was trained with {prep.normalization}"
        )
    lo, hi = prep.value_range
    if calib.x.min() < lo - 1e-3 or calib.x.max() > hi + 1e-3:
        problems.append(
            f"values span [{calib.x.min():.3f}, {calib.x.max():.3f}], outside the "
            f"model's input range [{lo:g}, {hi:g}]"
        )
    elif calib.x.max() - calib.x.min() < 0.5 * (hi - lo):
        problems.append(
            f"values span only [{calib.x.min():.3f}, {calib.x.max():.3f}] of the model's "
            f"input range [{lo:g}, {hi:g}]; int8 would clip real inputs"
        )
    if list(calib.meta.get("class_names", [])) != list(card["class_names"]):
        problems.append(
            f"classes {calib.meta.get('class_names')} differ from the model's {card['class_names']}"
        )
    missing = [c for i, c in enumerate(card["class_names"]) if not (calib.y == i).any()]
    if missing:
        problems.append(f"no samples of {', '.join(missing)}")
    return problems


def subset(calib: CalibrationSet, count: int | None, seed: int = 0) -> np.ndarray:
    """`count` samples, stratified by class, or all of them."""
    if not count or count >= len(calib.y):
        return calib.x
    from edgefer.calibration import sample_per_class

    k = int(calib.y.max()) + 1
    idx = sample_per_class(calib.y, -(-count // k), seed)[:count]
    return calib.x[np.sort(idx)]
