"""Representative samples for int8 calibration: `NAME.npz` (x, y) + `NAME.json` sidecar.

The sidecar records where the samples came from and how they were preprocessed, so the converter
can refuse a calibration set that does not match the model (format: calibration_data/README.md).
"""

from __future__ import annotations

import json
import re
import time
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgefer.atomic import atomic_file
from edgefer.data import FerData
from edgefer.errors import DataError, shown
from edgefer.hashing import sha256_file
from edgefer.labels import Task
from edgefer.preprocess import NORMALIZATIONS, Preprocessing

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
    picks = [
        rng.choice(
            np.flatnonzero(labels == c),
            size=min(per_class, int((labels == c).sum())),
            replace=False,
        )
        for c in np.unique(labels)
    ]
    return np.sort(np.concatenate(picks))


def build(
    data: FerData, split: str, task: Task, prep: Preprocessing, per_class: int, seed: int
) -> CalibrationSet:
    part = data.split(split)
    keep, labels = task.relabel(part.labels)
    missing = [task.class_names[i] for i in range(task.num_classes) if not (labels == i).any()]
    if missing:
        raise DataError(
            f"{data.source} [{split}]",
            f"no images of {', '.join(missing)}; "
            f"task {task.name} needs every one of {', '.join(task.class_names)}",
        )
    idx = sample_per_class(labels, per_class, seed)
    source_path = Path(data.source)
    source = {
        "path": str(source_path),
        "sha256": sha256_file(source_path) if source_path.is_file() else None,
        "split": split,
    }
    return from_samples(
        prep.apply(part.images[keep][idx]), labels[idx], task, prep, source, per_class, seed
    )


def from_samples(
    x: np.ndarray,
    y: np.ndarray,
    task: Task,
    prep: Preprocessing,
    source: dict,
    per_class: int | None = None,
    seed: int | None = None,
) -> CalibrationSet:
    """A calibration set of preprocessed samples `x` with task labels `y`, and the sidecar
    metadata that says where they come from (`source`: path, sha256, split)."""
    meta = {
        "format": FORMAT,
        "source": source,
        "task": task.name,
        "class_names": list(task.class_names),
        "counts": {name: int((y == i).sum()) for i, name in enumerate(task.class_names)},
        "count": len(y),
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


def _json_type(value) -> str:
    """The JSON name of a decoded value's type, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return {str: "string", list: "array", dict: "object"}.get(type(value), type(value).__name__)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_close(value, expected: float) -> bool:
    """A JSON number within float32 rounding of `expected` (a 400-digit integer is not)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    try:
        return abs(float(value) - expected) <= 1e-6 * max(1.0, abs(expected))
    except OverflowError:
        return False


def _read_sidecar(side: Path) -> dict:
    """The sidecar's JSON object, every field that edgefer reads checked for type and range."""
    name = shown(side, None)
    try:
        meta = json.loads(side.read_bytes().decode("utf-8"))
    except OSError as exc:
        raise DataError(name, f"cannot read ({exc.strerror or exc})") from None
    except UnicodeDecodeError as exc:
        raise DataError(
            name,
            f"not UTF-8 text (byte {exc.start}); expected the JSON sidecar "
            "of `edgefer calib build`",
        ) from None
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, a 5000-digit number, nesting
        raise DataError(
            name,
            f"not JSON ({_first_line(exc)}); expected the JSON sidecar of `edgefer calib build`",
        ) from None
    if not isinstance(meta, dict):
        raise DataError(
            name,
            f"a JSON {_json_type(meta)}; expected an object with format, "
            "sha256, class_names, counts, count and preprocessing",
        )

    def field(key: str, ok, expected: str, where: dict = meta, prefix: str = ""):
        if key not in where:
            raise DataError(name, f"field {prefix}{key}: missing; expected {expected}")
        value = where[key]
        if not ok(value):
            raise DataError(
                name, f"field {prefix}{key}: {shown(_dump(value))}; expected {expected}"
            )
        return value

    if meta.get("format") != FORMAT:
        raise DataError(name, f"format {shown(_dump(meta.get('format')))}: expected {FORMAT}")
    field(
        "sha256",
        lambda v: isinstance(v, str) and re.fullmatch(r"[0-9a-f]{64}", v) is not None,
        "the .npz's sha256, 64 hex digits",
    )
    field("task", lambda v: isinstance(v, str) and v != "", "a task name such as fer7")
    names = field(
        "class_names",
        lambda v: (
            isinstance(v, list)
            and len(v) > 0
            and all(isinstance(c, str) and c for c in v)
            and len(set(v)) == len(v)
        ),
        "a list of distinct class names",
    )
    field(
        "counts",
        lambda v: (
            isinstance(v, dict)
            and list(v) == names
            and all(_is_int(n) and n >= 0 for n in v.values())
        ),
        "samples per class, {name: count} in the order of class_names",
    )
    field("count", lambda v: _is_int(v) and v > 0, "the number of samples, 1 or more")
    prep = field(
        "preprocessing",
        lambda v: isinstance(v, dict),
        "an object with size, channels, normalization",
    )
    sub = "preprocessing."
    field("size", lambda v: _is_int(v) and 8 <= v <= 1024, "an integer 8..1024", prep, sub)
    field("channels", lambda v: _is_int(v) and v in (1, 3), "1 or 3", prep, sub)
    norm = field(
        "normalization",
        lambda v: isinstance(v, str) and v in NORMALIZATIONS,
        f"one of {', '.join(NORMALIZATIONS)}",
        prep,
        sub,
    )
    for key, value in zip(("scale", "offset"), NORMALIZATIONS[norm]):
        if key in prep:
            field(
                key,
                lambda v, value=value: _is_close(v, value),
                f"{value:g}, as {norm} says",
                prep,
                sub,
            )
    return meta


def _first_line(exc: BaseException) -> str:
    """An exception's message, shortened to one line, for the parentheses of ours."""
    lines = str(exc).strip().splitlines()
    return shown(lines[0], 120) if lines else type(exc).__name__


def _dump(value) -> str:
    try:
        return json.dumps(value)
    except (ValueError, RecursionError):
        return repr(value)


def _read_arrays(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """x and y from the .npz; one DataError for a file numpy cannot read as such an archive."""
    name = shown(path, None)
    try:
        with open(path, "rb") as f:
            archive = np.load(f, allow_pickle=False)
            if not isinstance(archive, np.lib.npyio.NpzFile):
                raise DataError(
                    name,
                    "a single numpy array (.npy); expected an .npz archive with arrays x and y",
                )
            with archive:
                missing = [k for k in ("x", "y") if k not in archive.files]
                if missing:
                    raise DataError(
                        name,
                        f"no array {' or '.join(missing)}; expected an .npz "
                        "archive with arrays x and y",
                    )
                return archive["x"], archive["y"]
    except DataError:
        raise
    except (
        OSError,
        EOFError,
        ValueError,
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        zlib.error,
        NotImplementedError,
        MemoryError,
    ) as exc:
        # A truncated or damaged archive, an unsupported compression, an object array.
        raise DataError(
            name,
            f"not a readable .npz archive ({_first_line(exc)}); expected one "
            "written by `edgefer calib build`",
        ) from None


def load(path: str | Path) -> CalibrationSet:
    """Load and check a calibration set: both files present and well-formed, the checksum
    matching, and the arrays what the sidecar says (shape, labels, counts, finite values)."""
    path = Path(path)
    side = sidecar_path(path)
    name = shown(path, None)
    if path.suffix == ".json":
        raise DataError(
            name, "a sidecar; expected the calibration set's .npz (the sidecar is found beside it)"
        )
    if not path.is_file():
        raise DataError(name, "calibration file not found; build one with `edgefer calib build`")
    if not side.is_file():
        raise DataError(
            shown(side, None), "calibration sidecar missing; expected it beside the .npz"
        )
    meta = _read_sidecar(side)
    x, y = _read_arrays(path)
    if meta["sha256"] != sha256_file(path):
        raise DataError(name, "sha256 differs from its sidecar; the .npz was changed or replaced")
    prep = Preprocessing(
        size=meta["preprocessing"]["size"],
        channels=meta["preprocessing"]["channels"],
        normalization=meta["preprocessing"]["normalization"],
    )
    if x.dtype != np.float32 or x.ndim != 4 or x.shape[0] == 0 or x.shape[1:] != prep.input_shape:
        raise DataError(
            name,
            f"x is {shown(x.dtype, 40)} {x.shape}; expected float32 "
            f"(N, {', '.join(map(str, prep.input_shape))}) with N > 0, as the "
            "sidecar's preprocessing says",
        )
    if not np.issubdtype(y.dtype, np.integer) or y.shape != (len(x),):
        raise DataError(
            name,
            f"y is {shown(y.dtype, 40)} {y.shape}; expected integer labels "
            f"of shape ({len(x)},), one per sample of x",
        )
    k = len(meta["class_names"])
    if len(y) and (y.min() < 0 or y.max() >= k):
        raise DataError(
            name,
            f"y has labels {y.min()}..{y.max()}; expected 0..{k - 1} "
            f"({shown(', '.join(meta['class_names']), 80)})",
        )
    bad = int(np.count_nonzero(~np.isfinite(x)))
    if bad:
        raise DataError(
            name, f"x has {bad} NaN or infinite values; expected finite preprocessed pixels"
        )
    counts = np.bincount(y.astype(np.int64), minlength=k).tolist()
    if meta["count"] != len(y) or list(meta["counts"].values()) != counts:
        raise DataError(
            shown(side, None),
            f"count {meta['count']} and counts "
            f"{shown(_dump(meta['counts']))} do not match the .npz's {len(y)} samples "
            f"({', '.join(map(str, counts))} per class)",
        )
    return CalibrationSet(x, y.astype(np.int64), meta)
