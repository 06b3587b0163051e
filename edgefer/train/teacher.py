"""Knowledge distillation with the teacher's answers computed once, before training.

Why offline: an ensemble of trained runs scores ~2 points above any one of them, but it is too big
to ship. Its class probabilities on the training images become soft targets for a small student.
Running the teacher once (not on every augmented batch) keeps a student's epoch as cheap as a
plain run on any Keras backend; the edge recipe's mild augmentation (15 degrees, 4 px, +-10% zoom)
does not change which expression a face shows, so the answer for the clean image still holds.

The file is keyed by a digest of each image's pixels, not by row number: any split, subset or
re-ordering of the same images finds its targets, and a file made for other images is refused.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from edgefer.atomic import atomic_file
from edgefer.errors import EdgeferError
from edgefer.hashing import sha256_file


def image_keys(images: np.ndarray) -> np.ndarray:
    """One 8-byte digest per image (uint64): the key a teacher file is looked up by."""
    flat = np.ascontiguousarray(images, dtype=np.uint8).reshape(len(images), -1)
    return np.array(
        [int.from_bytes(hashlib.blake2b(row, digest_size=8).digest(), "little") for row in flat],
        dtype=np.uint64,
    )


def soften(probs: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(log p / T): T > 1 flattens an over-confident teacher, T = 1 leaves it as it is."""
    logits = np.log(np.clip(probs, 1e-12, None)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    e = np.exp(logits)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def ensemble_probs(model_paths, images: np.ndarray, flip: bool, progress=None):
    """(mean class probabilities, class names) of every model, over each raw uint8 image and,
    if `flip`, its mirror. Each model is fed with its own preprocessing (from its card)."""
    from edgefer.evaluate import open_model, scores_in_batches

    views = [images, images[:, :, ::-1]] if flip else [images]
    total, names = 0.0, None
    for path in model_paths:
        runtime, _, class_names, prep = open_model(path)
        if names is not None and list(class_names) != names:
            raise EdgeferError(f"{path}: classes {list(class_names)} differ from {names}")
        names = list(class_names)
        for v in views:
            total = total + scores_in_batches(runtime, prep.apply(v), 4096, progress)
    return total / (len(model_paths) * len(views)), names


def write_teacher_file(
    path: str | Path,
    images: np.ndarray,
    probs: np.ndarray,
    class_names: list[str],
    provenance: dict,
) -> None:
    keys = image_keys(images)
    # Identical images (FER2013 has some) get the same teacher answer: keep the first.
    keys, first = np.unique(keys, return_index=True)
    meta = {"class_names": list(class_names), **provenance}
    with atomic_file(path) as tmp:
        np.savez_compressed(
            tmp, keys=keys, probs=probs[first].astype(np.float32), meta=json.dumps(meta)
        )


def teacher_targets(path: str | Path, images: np.ndarray, class_names: list[str]) -> np.ndarray:
    """The teacher's probabilities for `images`, in their order; every image must be in the file."""
    path = Path(path)
    if not path.is_file():
        raise EdgeferError(f"{path}: teacher file not found; make one with `edgefer teach`")
    try:
        with np.load(path, allow_pickle=False) as z:
            keys, probs, meta = z["keys"], z["probs"], json.loads(str(z["meta"]))
    except (OSError, ValueError, KeyError) as exc:
        raise EdgeferError(
            f"{path}: not a teacher file (keys, probs, meta) made by `edgefer teach` ({exc})"
        ) from None
    if meta.get("class_names") != list(class_names):
        raise EdgeferError(
            f"{path}: teacher classes {meta.get('class_names')} differ from the task's "
            f"{list(class_names)}"
        )
    wanted = image_keys(images)
    at = np.searchsorted(keys, wanted)
    at = np.minimum(at, len(keys) - 1)
    found = keys[at] == wanted
    if not found.all():
        raise EdgeferError(
            f"{path}: no teacher answer for {int((~found).sum())} of {len(images)} training "
            "images; the file was made for other images"
        )
    return probs[at]


def provenance(model_paths: list[str], temperature: float, flip: bool, split: str) -> dict:
    return {
        "teachers": [{"path": str(p), "sha256": sha256_file(p)} for p in model_paths],
        "temperature": temperature,
        "flip": flip,
        "split": split,
    }
