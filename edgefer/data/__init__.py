"""Read FER data in the forms people have it: Kaggle CSV (.csv/.csv.gz), image folders, FER+."""

from __future__ import annotations

from pathlib import Path

from edgefer.data.dataset import KAGGLE_SPLITS, FerData, Skipped
from edgefer.data.ferplus import join_ferplus
from edgefer.data.folders import read_image_folders
from edgefer.data.kaggle_csv import read_kaggle_csv
from edgefer.errors import DataError

__all__ = ["KAGGLE_SPLITS", "FerData", "Skipped", "load_fer"]


def load_fer(
    path: str | Path, skip_bad: bool = False, ferplus: str | Path | None = None
) -> FerData:
    """Load a CSV file or an image-folder tree; optionally relabel with a FER+ vote file."""
    path = Path(path)
    if path.is_dir():
        data = read_image_folders(path, skip_bad=skip_bad)
    elif path.is_file():
        data = read_kaggle_csv(path, skip_bad=skip_bad)
    else:
        raise DataError(
            str(path), "no such file or folder; expected a FER2013 CSV or image folders"
        )
    if ferplus is not None:
        if path.is_dir():
            raise DataError(
                str(ferplus), "FER+ labels join a FER2013 CSV row by row, not image folders"
            )
        data = join_ferplus(data, ferplus)
    return data
