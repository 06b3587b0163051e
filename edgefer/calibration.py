"""Representative samples for int8 calibration: `NAME.npz` (x, y) + `NAME.json` sidecar.

The sidecar records where the samples came from and how they were preprocessed, so the converter
can refuse a calibration set that does not match the model (format: calibration_data/README.md).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgefer.atomic import atomic_file
from edgefer.data import FerData
from edgefer.errors import DataError
from edgefer.hashing import sha256_file
from edgefer.labels import Task
from edgefer.preprocess import Preprocessing

FORMAT = "edgefer-calibration/1"


@dataclass
class CalibrationSet:
    x: np.ndarray  # float32 (N, size, size, channels), preprocessed
    y: np.ndarray  # int64 task labels
    meta: dict

    @property
    def preprocessing(self) -> Preprocessing:
        return Preprocessing.from_dict(self.meta["preprocessing"], "calibration preprocessing")


def sample_per_class(labels: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    """Indices of up to `per_class` items of each label, drawn without replacement, sorted."""
    rng = np.random.default_rng(seed)
    picks = [rng.choice(np.flatnonzero(labels == c), size=min(per_class, int((labels == c).sum())),
                        replace=False) for c in np.unique(labels)]
    return np.sort(np.concatenate(picks))


def build(data: FerData, split: str, task: Task, prep: Preprocessing, per_class: int,
          seed: int) -> CalibrationSet:
    part = data.split(split)
    keep, labels = task.relabel(part.labels)
    missing = [task.class_names[i] for i in range(task.num_classes) if not (labels == i).any()]
    if missing:
        raise DataError(f"{data.source} [{split}]", f"no images of {', '.join(missing)}; "
                        f"task {task.name} needs every one of {', '.join(task.class_names)}")
    idx = sample_per_class(labels, per_class, seed)
    x = prep.apply(part.images[keep][idx])
    y = labels[idx]
    source_path = Path(data.source)
    meta = {
        "format": FORMAT,
        "source": {
            "path": str(source_path),
            "sha256": sha256_file(source_path) if source_path.is_file() else None,
            "split": split,
        },
        "task": task.name,
        "class_names": list(task.class_names),
        "counts": {name: int((y == i).sum()) for i, name in enumerate(task.class_names)},
        "count": int(len(y)),
        "per_class": per_class,
        "seed": seed,
        "preprocessing": prep.to_dict(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    return CalibrationSet(x, y, meta)


def sidecar_path(npz_path: str | Path) -> Path:
    return Path(npz_path).with_suffix(".json")


def save(calib: CalibrationSet, out: str | Path) -> dict:
    """Write the .npz and then its sidecar (with the .npz's sha256), each atomically."""
    out = Path(out)
    if out.suffix != ".npz":
        raise DataError(str(out), "expected an output path ending in .npz")
    with atomic_file(out) as tmp:
        np.savez_compressed(tmp, x=calib.x, y=calib.y)
        meta = {**calib.meta, "file": out.name, "sha256": sha256_file(tmp)}
        with atomic_file(sidecar_path(out)) as tmp_json:
            tmp_json.write_text(json.dumps(meta, indent=2) + "\n")
    return meta


def load(path: str | Path) -> CalibrationSet:
    """Load and check a calibration set: both files present, arrays sane, checksum matching."""
    path = Path(path)
    side = sidecar_path(path)
    if not path.is_file():
        raise DataError(str(path), "calibration file not found; build one with `edgefer calib build`")
    if not side.is_file():
        raise DataError(str(side), "calibration sidecar missing; expected it beside the .npz")
    try:
        meta = json.loads(side.read_text())
        with np.load(path) as npz:
            x, y = npz["x"], npz["y"]
    except (OSError, ValueError, KeyError) as exc:
        raise DataError(str(path), f"not an edgefer calibration set ({exc})") from None
    if meta.get("format") != FORMAT:
        raise DataError(str(side), f"format '{meta.get('format')}': expected {FORMAT}")
    if meta.get("sha256") != sha256_file(path):
        raise DataError(str(path), "sha256 differs from its sidecar; the .npz was changed or replaced")
    if x.ndim != 4 or x.dtype != np.float32 or len(x) == 0 or len(x) != len(y):
        raise DataError(str(path), f"x {x.dtype}{x.shape}, y {y.shape}: expected float32 (N,H,W,C) "
                        "with N > 0 and one label per sample")
    return CalibrationSet(x, y.astype(np.int64), meta)
