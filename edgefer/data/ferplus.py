"""FER+ relabelling (Barsoum et al., 2016): ten crowd votes per FER2013 image.

`fer2013new.csv` (Usage, Image name, neutral, happiness, surprise, sadness, anger, disgust, fear,
contempt, unknown, NF) lists the images in the *original* row order of fer2013.csv, so it joins
row by row; edgefer checks each row's Usage to catch a reordered CSV instead of mislabelling.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from edgefer.data.dataset import FerData, Skipped
from edgefer.data.kaggle_csv import READ_ERRORS, open_text
from edgefer.errors import DataError, shown

# FER+ vote columns that map onto FER2013's classes, by FER2013 id.
VOTE_COLUMNS = ("anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral")
# Votes that name no FER2013 class: an image whose plurality is one of these is dropped.
NO_CLASS_COLUMNS = ("contempt", "unknown", "NF")


def read_votes(path: str | Path) -> tuple[list[str], np.ndarray]:
    """(Usage per row, votes (N, 10) in VOTE_COLUMNS + NO_CLASS_COLUMNS order)."""
    path = Path(path)
    name = shown(path, None)
    usages, votes = [], []
    try:
        with open_text(path) as f:
            reader = csv.DictReader(f)
            fields = [c.strip() for c in (reader.fieldnames or [])]
            reader.fieldnames = fields
            needed = ("Usage", *VOTE_COLUMNS, *NO_CLASS_COLUMNS)
            missing = [c for c in needed if c not in fields]
            if missing:
                raise DataError(
                    name,
                    f"header lacks {', '.join(missing)}; expected the FER+ fer2013new.csv columns",
                )
            for row in reader:
                cells = [row[c] for c in VOTE_COLUMNS + NO_CLASS_COLUMNS]
                cells = [c.strip() if isinstance(c, str) else "" for c in cells]
                if not all(c.isascii() and c.isdigit() and len(c) < 10 for c in cells):
                    raise DataError(
                        f"{name}:{reader.line_num}", "votes: expected integer counts 0 or more"
                    )
                votes.append([int(c) for c in cells])
                usages.append(row["Usage"].strip())
    except READ_ERRORS as exc:
        raise DataError(name, f"cannot read as a FER+ label file ({shown(exc, 200)})") from None
    return usages, np.array(votes, np.float32).reshape(-1, 10)


def join_ferplus(data: FerData, ferplus_path: str | Path) -> FerData:
    """Replace labels by FER+ plurality votes and attach soft labels over the seven classes.

    Dropped: images whose plurality is contempt, unknown or not-a-face, ties, and images with no
    votes. They are reported in `skipped`, like any other item left out.
    """
    usages, votes = read_votes(ferplus_path)
    name, source = shown(ferplus_path, None), shown(data.source, None)
    if len(usages) != len(data):
        raise DataError(
            name,
            f"{len(usages)} rows, but {source} has {len(data)}; "
            "expected the FER2013 CSV in its original row order",
        )
    row_splits = np.array(data.split_names)[data.split_codes]
    mismatch = np.flatnonzero(np.array(usages) != row_splits)
    if mismatch.size:
        i = int(mismatch[0])
        raise DataError(
            f"{name}:{i + 2}",
            f"Usage '{shown(usages[i])}' but {source} row {i + 2} "
            f"is '{row_splits[i]}'; expected the FER2013 CSV in its original row order",
        )
    top = votes.max(axis=1)
    winner = votes.argmax(axis=1)
    tie = (votes == top[:, None]).sum(axis=1) > 1
    keep = (top > 0) & ~tie & (winner < len(VOTE_COLUMNS))
    class_votes = votes[:, : len(VOTE_COLUMNS)]
    totals = class_votes.sum(axis=1, keepdims=True)
    soft = np.divide(class_votes, totals, out=np.zeros_like(class_votes), where=totals > 0)
    reasons = np.where(
        top == 0, "no votes", np.where(tie, "tied votes", "plurality is contempt/unknown/NF")
    )
    dropped = [Skipped(f"{name}:{i + 2}", f"FER+ {reasons[i]}") for i in np.flatnonzero(~keep)]
    out = data.subset(keep)
    out.labels = winner[keep].astype(np.int64)
    out.soft_labels = soft[keep]
    out.skipped = data.skipped + dropped
    out.source = f"{data.source} + {ferplus_path}"
    return out
