"""One evaluation path for every model format: load, predict class probabilities, score."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from edgefer.errors import EdgeferError
from edgefer.metrics import classification_report


def load_keras(path: str | Path):
    """Load a .keras model in safe mode (a model file can never run arbitrary code)."""
    from edgefer.tf import keras

    path = Path(path)
    if not path.is_file():
        raise EdgeferError(f"{path}: model file not found")
    if not zipfile.is_zipfile(path):
        raise EdgeferError(f"{path}: not a Keras model; expected a .keras file saved by Keras 3")
    try:
        return keras.models.load_model(path, safe_mode=True, compile=False)
    except Exception as exc:  # Keras raises many types for a bad file
        raise EdgeferError(f"{path}: not a loadable Keras model ({type(exc).__name__}: "
                           f"{str(exc).splitlines()[0][:200]})") from None


def as_class_probs(out: np.ndarray) -> np.ndarray:
    """A single sigmoid output p becomes two columns [1-p, p], so binary and multi-class models
    are scored the same way."""
    out = np.asarray(out, np.float32)
    if out.ndim == 2 and out.shape[1] == 1:
        return np.concatenate([1 - out, out], axis=1)
    return out


def check_input_shape(model_shape, x_shape, where: str) -> None:
    if tuple(model_shape[1:]) != tuple(x_shape[1:]):
        raise EdgeferError(f"{where}: model input {tuple(model_shape[1:])} does not match the data "
                           f"{tuple(x_shape[1:])}; check --channels/--size")


def predict_keras(model, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    check_input_shape(model.input_shape, x.shape, model.name)
    return as_class_probs(model.predict(x, batch_size=batch_size, verbose=0))


def evaluate_probs(probs: np.ndarray, y: np.ndarray, class_names) -> dict:
    if probs.shape[1] != len(class_names):
        raise EdgeferError(f"model has {probs.shape[1]} outputs but the task has "
                           f"{len(class_names)} classes ({', '.join(class_names)})")
    return classification_report(probs, y, class_names)
