"""The Kaggle FER2013 CSV: `emotion,pixels,Usage`, plain or gzip'd.

Rows are streamed (the decompressed file is ~330 MB of text) and each pixel string is parsed by
numpy in C; non-integer tokens raise instead of being silently truncated.
"""

from __future__ import annotations

import csv
import gzip
import io
import warnings
from pathlib import Path

import numpy as np

from edgefer.data.dataset import KAGGLE_SPLITS, FerData, Skipped, split_codes_from_names
from edgefer.errors import DataError

PIXELS = 48 * 48


def open_text(path: Path) -> io.TextIOBase:
    """Open a CSV as text, transparently gunzipping (by magic bytes, not by extension)."""
    with open(path, "rb") as f:
        magic = f.read(2)
    if magic == b"\x1f\x8b":
        return gzip.open(path, "rt", newline="", encoding="utf-8")
    return open(path, "rt", newline="", encoding="utf-8")


def parse_pixels(text: str) -> np.ndarray:
    """'70 80 ...' -> (48, 48) uint8, or ValueError saying what is wrong."""
    with warnings.catch_warnings():
        # At a token that is not an integer numpy 2.3+ raises; older numpy warns and stops early.
        warnings.simplefilter("error", DeprecationWarning)
        try:
            values = np.fromstring(text, dtype=np.int64, sep=" ")
        except (DeprecationWarning, ValueError):
            raise ValueError("pixels: expected space-separated integers 0..255") from None
    if values.size != PIXELS:
        raise ValueError(f"pixels: expected {PIXELS} values (48x48), got {values.size}")
    if values.min() < 0 or values.max() > 255:
        raise ValueError("pixels: expected values in 0..255")
    return values.astype(np.uint8).reshape(48, 48)


def _row_label(row: dict, col: str) -> int:
    raw = row[col].strip()
    if not raw.isdigit() or int(raw) > 6:
        raise ValueError(f"{col}: expected a class id 0..6, got '{raw}'")
    return int(raw)


def _row_split(row: dict, col: str | None) -> str:
    if col is None:
        return "all"
    value = row[col].strip()
    if value not in KAGGLE_SPLITS:
        raise ValueError(f"{col}: expected one of {', '.join(KAGGLE_SPLITS)}, got '{value}'")
    return value


def read_kaggle_csv(path: str | Path, skip_bad: bool = False) -> FerData:
    """Read the Kaggle layout. Without a Usage column every row is in split 'all'."""
    path = Path(path)
    images, labels, splits, skipped = [], [], [], []
    try:
        with open_text(path) as f:
            reader = csv.DictReader(f)
            fields = [c.strip() for c in (reader.fieldnames or [])]
            reader.fieldnames = fields
            if "emotion" not in fields or "pixels" not in fields:
                raise DataError(
                    str(path), f"header {','.join(fields) or '(empty)'}: expected emotion,pixels[,Usage]"
                )
            usage = "Usage" if "Usage" in fields else None
            for row in reader:
                try:
                    if None in row.values() or None in row:
                        raise ValueError(f"expected {len(fields)} columns")
                    label, split = _row_label(row, "emotion"), _row_split(row, usage)
                    image = parse_pixels(row["pixels"])
                except ValueError as exc:
                    where = f"{path}:{reader.line_num}"
                    if not skip_bad:
                        raise DataError(where, str(exc)) from None
                    skipped.append(Skipped(where, str(exc)))
                    continue
                images.append(image)
                labels.append(label)
                splits.append(split)
    except (OSError, EOFError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(str(path), f"cannot read as a FER2013 CSV ({exc})") from None
    if not images:
        raise DataError(str(path), "no valid rows; expected emotion,pixels[,Usage] rows")
    codes, names = split_codes_from_names(splits)
    return FerData(np.stack(images), np.array(labels, np.int64), codes, names, str(path),
                   skipped=skipped)
