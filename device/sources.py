"""Where frames come from: an image, a folder of images, a video file, a camera index or a URL.

Each frame carries its decode time. An unreadable image in a folder is reported as that frame's
error; the stream goes on. A video that stops before its last frame raises EdgeferError (the
frames before it have been yielded); a camera or live stream that stops sending is reopened a
few times, with growing pauses, before it does.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edgefer.errors import EdgeferError
from edgefer.imaging import IMAGE_SUFFIXES, opencv_quiet, read_image_file

# Seconds to wait before each attempt to reopen a camera or stream that stopped sending.
RECONNECT_DELAYS_S = (0.5, 1.0, 2.0, 4.0)


@dataclass
class Frame:
    index: int
    name: str
    image: np.ndarray | None
    decode_ms: float
    error: str | None = None


@dataclass
class Source:
    """Iterate it for frames. `kind` is what `source_kind` says; `fps` is the frame rate a video,
    camera or stream declares (None for images and where OpenCV does not know it)."""

    frames: Iterator[Frame]
    kind: str
    fps: float | None = None

    def __iter__(self) -> Iterator[Frame]:
        return self.frames


VIDEO_KINDS = ("video", "camera", "stream")  # consecutive frames of one scene


def source_kind(spec: str) -> str:
    """'camera' (an index), 'stream' (a URL), 'folder', 'image' or 'video'."""
    if spec.isdigit():
        return "camera"
    if "://" in spec:
        return "stream"
    path = Path(spec)
    if path.is_dir():
        return "folder"
    if not path.is_file():
        raise EdgeferError(f"{spec}: no such file, folder, camera index or URL")
    return "image" if path.suffix.lower() in IMAGE_SUFFIXES else "video"


def _read_image(path: Path, index: int) -> Frame:
    t0 = time.perf_counter()
    img, err = read_image_file(path)
    return Frame(index, str(path), img, (time.perf_counter() - t0) * 1000, err)


def _open_capture(spec: str) -> cv2.VideoCapture:
    with opencv_quiet():  # a failure is reported by the caller, in one line
        return cv2.VideoCapture(int(spec) if spec.isdigit() else spec)


def _capture(
    spec: str,
    cap: cv2.VideoCapture,
    name: str,
    limit: int | None,
    reopen: Callable[[], cv2.VideoCapture] | None,
) -> Iterator[Frame]:
    """Frames until the end, `limit`, or a read error.

    A read that fails before the frame count the video declares is an error, not the end: it
    is how OpenCV reports a corrupt or truncated file. Where there is no count (a camera, a live
    stream) and `reopen` is given, the source is reopened after RECONNECT_DELAYS_S pauses; a
    file without a count just ends.
    """
    total = 0 if spec.isdigit() else max(0, int(cap.get(cv2.CAP_PROP_FRAME_COUNT)))
    i = failures = 0
    try:
        while limit is None or i < limit:
            t0 = time.perf_counter()
            ok, img = cap.read()
            if ok:
                failures = 0
                yield Frame(i, f"{name}#{i}", img, (time.perf_counter() - t0) * 1000)
                i += 1
            elif i < total:
                raise EdgeferError(
                    f"{spec}: cannot read frame #{i} of {total}; the video is corrupt or truncated"
                )
            elif total or reopen is None:
                return
            elif failures == len(RECONNECT_DELAYS_S):
                raise EdgeferError(
                    f"{spec}: no frame after {failures} attempts to reopen it "
                    f"(the last frame read was #{i - 1}); is it still connected?"
                )
            else:
                cap.release()
                time.sleep(RECONNECT_DELAYS_S[failures])
                failures += 1
                cap = reopen()
    finally:
        cap.release()


def open_source(spec: str, limit: int | None = None) -> Source:
    """Frames of an IMAGE, DIR, VIDEO, CAMERA_INDEX or URL."""
    kind = source_kind(spec)
    path = Path(spec)
    if kind == "folder":
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise EdgeferError(f"{path}: no images (.png, .jpg, ...) in this folder")
        return Source((_read_image(p, i) for i, p in enumerate(files[:limit])), kind)
    if kind == "image":
        frame = _read_image(path, 0)
        if frame.error:
            raise EdgeferError(f"{path}: {frame.error}")
        return Source(iter([frame]), kind)
    cap = _open_capture(spec)
    if not cap.isOpened():
        raise EdgeferError(
            f"{spec}: not a video OpenCV can read"
            if kind == "video"
            else f"{spec}: cannot open {kind}; expected a camera index or a video URL "
            "OpenCV can read"
        )
    fps = cap.get(cv2.CAP_PROP_FPS)
    reopen = None if kind == "video" else lambda: _open_capture(spec)
    frames = _capture(spec, cap, path.name if kind == "video" else spec, limit, reopen)
    return Source(frames, kind, fps if fps > 0 else None)
