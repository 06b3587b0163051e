"""The Kaggle FER2013 CSV: `emotion,pixels,Usage`, plain or gzip'd.

Rows are streamed (the decompressed file is ~330 MB of text) and each pixel string is parsed by
numpy in C; non-integer tokens raise instead of being silently truncated.
"""

from __future__ import annotations

import csv
import gzip
import io
import warnings
import zlib
from pathlib import Path

import numpy as np

from edgefer.data.dataset import KAGGLE_SPLITS, FerData, Skipped, split_codes_from_names
from edgefer.errors import DataError, shown

PIXELS = 48 * 48
# Column names, matched case-insensitively: a header that says `usage` must not silently turn
# three splits into one (training on the test split).
COLUMNS = ("emotion", "pixels", "Usage")
LABELS = frozenset(str(i) for i in range(7))
# What reading a damaged file can raise: gzip.BadGzipFile is an OSError; a corrupt deflate
# stream raises zlib.error, a truncated one EOFError.
READ_ERRORS = (OSError, EOFError, zlib.error, UnicodeDecodeError, csv.Error)
NOT_INTEGERS = "pixels: expected space-separated integers 0..255"


def open_text(path: Path) -> io.TextIOBase:
    """Open a CSV as text, transparently gunzipping (by magic bytes, not by extension).

    A UTF-8 byte-order mark (Excel writes one) is skipped, so the header still reads `emotion`.
    """
    with open(path, "rb") as f:
        magic = f.read(2)
    if magic == b"\x1f\x8b":
        return gzip.open(path, "rt", newline="", encoding="utf-8-sig")
    return open(path, "rt", newline="", encoding="utf-8-sig")


def parse_pixels(text: str) -> np.ndarray:
    """'70 80 ...' -> (48, 48) uint8, or ValueError saying what is wrong."""
    # np.fromstring reads a lone '+' or '-' as 0 (and '- 5' as -5), and whitespace alone as one
    # 0; pixels carry no sign, so any sign is refused here (two C-speed scans).
    if "-" in text or "+" in text:
        raise ValueError(NOT_INTEGERS)
    if not text.strip():
        raise ValueError(f"pixels: expected {PIXELS} values (48x48), got 0")
    with warnings.catch_warnings():
        # At a token that is not an integer numpy 2.3+ raises; older numpy warns and stops early.
        warnings.simplefilter("error", DeprecationWarning)
        try:
            values = np.fromstring(text, dtype=np.int64, sep=" ")
        except (DeprecationWarning, ValueError):
            raise ValueError(NOT_INTEGERS) from None
    if values.size != PIXELS:
        raise ValueError(f"pixels: expected {PIXELS} values (48x48), got {values.size}")
    if values.min() < 0 or values.max() > 255:
        raise ValueError("pixels: expected values in 0..255")
    return values.astype(np.uint8).reshape(48, 48)


def _label(raw: str) -> int:
    raw = raw.strip()
    key = (raw.lstrip("0") or "0") if raw else ""  # '03' is 3; '٣' or '²' (isdigit()!) are not
    if key not in LABELS:
        raise ValueError(f"emotion: expected a class id 0..6, got '{shown(raw)}'")
    return int(key)


def _split(raw: str) -> str:
    value = raw.strip()
    if value not in KAGGLE_SPLITS:
        raise ValueError(f"Usage: expected one of {', '.join(KAGGLE_SPLITS)}, got '{shown(value)}'")
    return value


def _columns(path: str, header: list[str]) -> tuple[int, int, int | None]:
    """Positions of emotion, pixels and Usage (None: no Usage column) in the header row."""
    names = [h.strip().lower() for h in header]
    if "emotion" not in names or "pixels" not in names:
        text = shown(",".join(h.strip() for h in header)) or "(empty)"
        raise DataError(path, f"header {text}: expected emotion,pixels[,Usage]")
    for col in COLUMNS:
        if names.count(col.lower()) > 1:
            raise DataError(
                path,
                f"header: column {col} appears {names.count(col.lower())} times; expected it once",
            )
    usage = names.index("usage") if "usage" in names else None
    return names.index("emotion"), names.index("pixels"), usage


def read_kaggle_csv(path: str | Path, skip_bad: bool = False) -> FerData:
    """Read the Kaggle layout. Without a Usage column every row is in split 'all'.

    Columns are found by name (any order, any case, extra columns ignored); blank lines are
    skipped; every other row must have as many columns as the header.
    """
    path = Path(path)
    name = shown(path, None)
    images, labels, splits, skipped = [], [], [], []
    reader = None
    try:
        with open_text(path) as f:
            reader = csv.reader(f)
            header = next((r for r in reader if r), [])
            i_emotion, i_pixels, i_usage = _columns(name, header)
            for row in reader:
                if not row:
                    continue
                try:
                    if len(row) != len(header):
                        raise ValueError(f"expected {len(header)} columns, got {len(row)}")
                    label = _label(row[i_emotion])
                    split = "all" if i_usage is None else _split(row[i_usage])
                    image = parse_pixels(row[i_pixels])
                except ValueError as exc:
                    where = f"{name}:{reader.line_num}"
                    if not skip_bad:
                        raise DataError(where, str(exc)) from None
                    skipped.append(Skipped(where, str(exc)))
                    continue
                images.append(image)
                labels.append(label)
                splits.append(split)
    except READ_ERRORS as exc:
        where = f"{name}:{reader.line_num}" if reader is not None and reader.line_num else name
        raise DataError(where, f"cannot read as a FER2013 CSV ({shown(exc, 200)})") from None
    if not images:
        raise DataError(name, "no valid rows; expected emotion,pixels[,Usage] rows")
    codes, names = split_codes_from_names(splits)
    return FerData(
        np.stack(images), np.array(labels, np.int64), codes, names, str(path), skipped=skipped
    )
