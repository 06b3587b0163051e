"""Image folders: `<root>/<split>/<class>/*.png|jpg`, or `<root>/<class>/*` for one split.

Class folders are named (angry ... neutral) or numbered 0-6, like the "Facial expression dataset
image folders (fer2013)" edition. Images of any size, depth and colour become 48x48 gray.
Hidden folders and files (a leading '.', like macOS's `._x.png`) are not data and are passed over.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from edgefer.data.dataset import FerData, Skipped, split_codes_from_names
from edgefer.errors import DataError, shown
from edgefer.imaging import IMAGE_SUFFIXES, read_image_file, resize_square, to_gray_u8
from edgefer.labels import FER7


def _subdirs(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))


def _class_of(name: str) -> int | None:
    """FER2013 id of a class folder named like `happy`, `Happy` or `3`; None for any other name.

    Only ASCII digits count as a number: '²' or '٣' are not class ids.
    """
    key = name.strip().lower()
    if key in FER7:
        return FER7.index(key)
    if key.isascii() and key.isdigit() and int(key) < len(FER7):
        return int(key)
    return None


def _layout(root: Path) -> dict[str, dict[int, Path]]:
    """{split: {class id: folder}}, checking names and that every split has the same classes."""
    top = _subdirs(root)
    if not top:
        raise DataError(
            shown(root, None), "no sub-folders; expected <split>/<class>/ or <class>/ folders"
        )
    if all(_class_of(d.name) is not None for d in top):
        split_dirs = {"all": root}
    else:
        split_dirs = {d.name: d for d in top}
    layout = {}
    for split, sdir in split_dirs.items():
        classes = {}
        for cdir in _subdirs(sdir):
            cid = _class_of(cdir.name)
            if cid is None:
                raise DataError(
                    shown(cdir, None),
                    f"unknown class folder; expected one of {', '.join(FER7)} or 0-6",
                )
            if cid in classes:
                raise DataError(
                    shown(cdir, None),
                    f"class {FER7[cid]} already given by {shown(classes[cid], None)}",
                )
            classes[cid] = cdir
        if not classes:
            raise DataError(
                shown(sdir, None), "no class folders; expected folders named angry..neutral or 0-6"
            )
        layout[split] = classes
    all_classes = set().union(*layout.values())
    for split, classes in layout.items():
        for cid in sorted(all_classes - set(classes)):
            raise DataError(
                shown(split_dirs[split] / FER7[cid], None),
                "missing class folder (other splits have this class)",
            )
    return layout


def _load_one(path: Path) -> np.ndarray:
    """One image as 48x48 uint8 gray, or ValueError saying (in one line) why it cannot be."""
    try:
        img, err = read_image_file(path)
        if err:
            raise ValueError(err)
        return resize_square(to_gray_u8(img), 48)
    except cv2.error as exc:
        # OpenCV refuses some damaged files (a huge size in a BMP header, a pixel type that its
        # colour conversion does not take) by raising instead of returning None.
        why = " ".join(part.strip(" >") for part in str(exc.err or exc).splitlines())
        raise ValueError(f"unreadable image ({shown(' '.join(why.split()), 120)})") from None


def _items(root: Path) -> list[tuple[Path, int, str]]:
    """(image file, class id, split) of every image under root, in a stable order."""
    items = []
    for split, classes in _layout(root).items():
        for cid, cdir in sorted(classes.items()):
            files = sorted(
                p
                for p in cdir.iterdir()
                if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
            )
            if not files:
                raise DataError(shown(cdir, None), "empty class folder; expected .png/.jpg images")
            items += [(p, cid, split) for p in files]
    return items


def read_image_folders(root: str | Path, skip_bad: bool = False) -> FerData:
    root = Path(root)
    try:
        items = _items(root)
    except OSError as exc:  # a folder that cannot be listed (permissions, removed meanwhile)
        where = shown(exc.filename if exc.filename is not None else root, None)
        raise DataError(
            where,
            f"cannot list folder ({exc.strerror or exc}); expected a readable "
            "<split>/<class>/ tree",
        ) from None

    def load(item):
        try:
            return _load_one(item[0]), None
        except ValueError as exc:
            return None, shown(exc, 200)

    # OpenCV releases the GIL while decoding, so threads use every core.
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        results = list(pool.map(load, items, chunksize=64))
    images, labels, splits, skipped = [], [], [], []
    for (path, cid, split), (img, err) in zip(items, results):
        if err is not None:
            if not skip_bad:
                raise DataError(shown(path, None), err)
            skipped.append(Skipped(shown(path, None), err))
            continue
        images.append(img)
        labels.append(cid)
        splits.append(split)
    if not images:
        raise DataError(shown(root, None), "no readable images")
    codes, names = split_codes_from_names(splits)
    return FerData(
        np.stack(images), np.array(labels, np.int64), codes, names, str(root), skipped=skipped
    )
