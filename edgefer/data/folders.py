"""Image folders: `<root>/<split>/<class>/*.png|jpg`, or `<root>/<class>/*` for one split.

Class folders are named (angry ... neutral) or numbered 0-6, like the "Facial expression dataset
image folders (fer2013)" edition. Images of any size, depth and colour become 48x48 gray.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from edgefer.data.dataset import FerData, Skipped, split_codes_from_names
from edgefer.errors import DataError, EdgeferError
from edgefer.imaging import IMAGE_SUFFIXES, read_image_file, resize_square, to_gray_u8
from edgefer.labels import FER7, class_id

def _subdirs(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))


def _is_class_dir(name: str) -> bool:
    try:
        class_id(name)
        return True
    except EdgeferError:
        return False


def _layout(root: Path) -> dict[str, dict[int, Path]]:
    """{split: {class id: folder}}, checking names and that every split has the same classes."""
    top = _subdirs(root)
    if not top:
        raise DataError(str(root), "no sub-folders; expected <split>/<class>/ or <class>/ folders")
    split_dirs = {"all": root} if all(_is_class_dir(d.name) for d in top) else {d.name: d for d in top}
    layout = {}
    for split, sdir in split_dirs.items():
        classes = {}
        for cdir in _subdirs(sdir):
            if not _is_class_dir(cdir.name):
                raise DataError(str(cdir), f"unknown class folder; expected one of {', '.join(FER7)} or 0-6")
            cid = class_id(cdir.name)
            if cid in classes:
                raise DataError(str(cdir), f"class {FER7[cid]} already given by {classes[cid]}")
            classes[cid] = cdir
        if not classes:
            raise DataError(str(sdir), "no class folders; expected folders named angry..neutral or 0-6")
        layout[split] = classes
    all_classes = set().union(*layout.values())
    for split, classes in layout.items():
        for cid in sorted(all_classes - set(classes)):
            raise DataError(str(split_dirs[split] / FER7[cid]),
                            "missing class folder (other splits have this class)")
    return layout


def _load_one(path: Path) -> np.ndarray:
    img, err = read_image_file(path)
    if err:
        raise ValueError(err)
    return resize_square(to_gray_u8(img), 48)


def read_image_folders(root: str | Path, skip_bad: bool = False) -> FerData:
    root = Path(root)
    items = []  # (path, class id, split)
    for split, classes in _layout(root).items():
        for cid, cdir in sorted(classes.items()):
            files = sorted(p for p in cdir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not files:
                raise DataError(str(cdir), "empty class folder; expected .png/.jpg images")
            items += [(p, cid, split) for p in files]

    def load(item):
        try:
            return _load_one(item[0]), None
        except ValueError as exc:
            return None, str(exc)

    # OpenCV releases the GIL while decoding, so threads use every core.
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        results = list(pool.map(load, items, chunksize=64))
    images, labels, splits, skipped = [], [], [], []
    for (path, cid, split), (img, err) in zip(items, results):
        if err is not None:
            if not skip_bad:
                raise DataError(str(path), err)
            skipped.append(Skipped(str(path), err))
            continue
        images.append(img)
        labels.append(cid)
        splits.append(split)
    if not images:
        raise DataError(str(root), "no readable images")
    codes, names = split_codes_from_names(splits)
    return FerData(np.stack(images), np.array(labels, np.int64), codes, names, str(root),
                   skipped=skipped)
