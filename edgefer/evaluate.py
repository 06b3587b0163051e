"""One evaluation path for every model format: load, predict class probabilities, score."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from edgefer.device.runtimes import as_class_probs
from edgefer.errors import EdgeferError, MissingExtraError
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
    except Exception as exc:  # noqa: BLE001 -- Keras raises many types for a bad file
        raise EdgeferError(
            f"{path}: not a loadable Keras model ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0][:200]})"
        ) from None


def check_input_shape(model_shape, x_shape, where: str) -> None:
    if tuple(model_shape[1:]) != tuple(x_shape[1:]):
        raise EdgeferError(
            f"{where}: model input {tuple(model_shape[1:])} does not match the data "
            f"{tuple(x_shape[1:])}; check --channels/--size"
        )


def predict_keras(model, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    check_input_shape(model.input_shape, x.shape, model.name)
    return as_class_probs(model.predict(x, batch_size=batch_size, verbose=0))


def scores_in_batches(runtime, x: np.ndarray, batch: int = 256, progress=None) -> np.ndarray:
    out = []
    for i in range(0, len(x), batch):
        out.append(runtime.scores(x[i : i + batch]))
        if progress is not None:
            progress.update(len(out[-1]))
    return np.concatenate(out)


def evaluate_probs(probs: np.ndarray, y: np.ndarray, class_names) -> dict:
    if probs.shape[1] != len(class_names):
        raise EdgeferError(
            f"model has {probs.shape[1]} outputs but the task has "
            f"{len(class_names)} classes ({', '.join(class_names)})"
        )
    return classification_report(probs, y, class_names)


class KerasRuntime:
    """The float Keras model behind the same `scores(x)` interface as the device runtimes."""

    name = "keras"

    def __init__(self, path: str | Path):
        self.model = load_keras(path)

    def scores(self, x: np.ndarray) -> np.ndarray:
        if len(x) > 8:
            return predict_keras(self.model, x)
        # A direct call: predict() adds milliseconds of overhead per call.
        check_input_shape(self.model.input_shape, x.shape, self.model.name)
        return as_class_probs(np.asarray(self.model(x, training=False)))


class NotRunnableHere(EdgeferError):
    """A verified artifact that needs hardware this machine lacks (an Edge TPU model)."""


def bundle_runtime(bundle_dir: Path, manifest, artifact, threads: int = 1):
    """A bundle's artifact, verified against its manifest (sha256 before loading, then tensors and
    labels), behind the `scores(x)` interface: the Keras source model included."""
    from edgefer.device.backends import open_artifact, verify_file

    if artifact.format == "keras":
        path = verify_file(bundle_dir, artifact)
        try:
            return KerasRuntime(path)
        except MissingExtraError as exc:  # a base install: the float model is not scored here
            raise NotRunnableHere(f"{path}: {exc}") from None
    if artifact.format == "edgetpu":
        verify_file(bundle_dir, artifact)
        raise NotRunnableHere(
            f"{bundle_dir / artifact.file}: an Edge TPU model runs only on a Coral "
            "device (edgefer detect/bench --backend edgetpu)"
        )
    return open_artifact(bundle_dir, manifest, artifact, threads)


def open_model(path: str | Path, threads: int = 1):
    """(runtime, task name, class names, Preprocessing) for a .keras model (read with its
    model.meta.json) or a bundle's .tflite/.onnx (read with, and checked against, the bundle's
    manifest.json)."""
    from edgefer.device.manifest import load_manifest
    from edgefer.model_card import read_card
    from edgefer.preprocess import Preprocessing

    path = Path(path)
    if path.suffix == ".keras":
        card = read_card(path)
        return (
            KerasRuntime(path),
            card["task"],
            card["class_names"],
            Preprocessing.from_dict(card["preprocessing"]),
        )
    if path.suffix not in (".tflite", ".onnx"):
        raise EdgeferError(f"{path}: expected a .keras, .tflite or .onnx model")
    manifest = load_manifest(path.parent)
    art = next((a for a in manifest.artifacts if a.file == path.name), None)
    if art is None:
        raise EdgeferError(f"{path}: not listed in {path.parent}/manifest.json")
    return (
        bundle_runtime(path.parent, manifest, art, threads),
        manifest.task,
        manifest.labels,
        Preprocessing.from_dict(manifest.preprocessing.model_dump()),
    )
