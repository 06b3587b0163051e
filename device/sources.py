"""Where frames come from: an image, a folder of images, a video file, a camera index or a URL.

Each frame carries its decode time. An unreadable image in a folder is reported as that frame's
error; the stream goes on.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from edgefer.errors import EdgeferError
from edgefer.imaging import IMAGE_SUFFIXES, read_image_file

@dataclass
class Frame:
    index: int
    name: str
    image: np.ndarray | None
    decode_ms: float
    error: str | None = None


def _read_image(path: Path, index: int) -> Frame:
    t0 = time.perf_counter()
    img, err = read_image_file(path)
    return Frame(index, str(path), img, (time.perf_counter() - t0) * 1000, err)


def _capture(cap: cv2.VideoCapture, name: str, limit: int | None) -> Iterator[Frame]:
    try:
        i = 0
        while limit is None or i < limit:
            t0 = time.perf_counter()
            ok, img = cap.read()
            if not ok:
                return
            yield Frame(i, f"{name}#{i}", img, (time.perf_counter() - t0) * 1000)
            i += 1
    finally:
        cap.release()


def is_video_source(spec: str) -> bool:
    p = Path(spec)
    return spec.isdigit() or "://" in spec or (p.is_file() and p.suffix.lower() not in IMAGE_SUFFIXES)


def open_source(spec: str, limit: int | None = None) -> Iterator[Frame]:
    """Frames of an IMAGE, DIR, VIDEO, CAMERA_INDEX or URL."""
    path = Path(spec)
    if spec.isdigit() or "://" in spec:
        cap = cv2.VideoCapture(int(spec) if spec.isdigit() else spec)
        if not cap.isOpened():
            kind = "camera" if spec.isdigit() else "stream"
            raise EdgeferError(f"{spec}: cannot open {kind}; expected a camera index or a video URL "
                               "OpenCV can read")
        return _capture(cap, spec, limit)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise EdgeferError(f"{path}: no images (.png, .jpg, ...) in this folder")
        return (_read_image(p, i) for i, p in enumerate(files[:limit]))
    if not path.is_file():
        raise EdgeferError(f"{spec}: no such file, folder, camera index or URL")
    if path.suffix.lower() in IMAGE_SUFFIXES:
        frame = _read_image(path, 0)
        if frame.error:
            raise EdgeferError(f"{path}: {frame.error}")
        return iter([frame])
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise EdgeferError(f"{path}: not a video OpenCV can read")
    return _capture(cap, path.name, limit)
