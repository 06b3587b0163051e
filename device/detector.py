"""Face detection with OpenCV Haar cascades, and the tracker that makes it fast enough.

Full-frame `detectMultiScale` dominates a frame's cost (a 600k-parameter int8 model takes ~0.5 ms
per face), so `TrackingDetector` scans the whole (downscaled) frame only every `full_every`
frames or when a face is lost, and in between searches small regions around the known faces,
at sizes close to the known ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edgefer.errors import EdgeferError
from edgefer.imaging import opencv_quiet

Box = tuple[int, int, int, int]  # x, y, w, h


def default_cascade() -> str:
    return str(Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml")


@dataclass(frozen=True)
class HaarConfig:
    cascade: str | None = None  # path; default: OpenCV's frontal-face cascade
    scale_factor: float = 1.1
    min_neighbors: int = 5
    min_size: int = 48
    max_size: int = 0  # 0 = no limit
    largest_only: bool = False

    def __post_init__(self):
        # Checked here, not only by the CLI: detectMultiScale fails with an OpenCV assertion
        # (or loops forever) on these values, whoever passes them.
        if not self.scale_factor > 1:
            raise EdgeferError(f"scale_factor: expected a number > 1, got {self.scale_factor}")
        if self.min_neighbors < 0:
            raise EdgeferError(f"min_neighbors: expected 0 or more, got {self.min_neighbors}")
        if self.min_size < 1:
            raise EdgeferError(f"min_size: expected 1 pixel or more, got {self.min_size}")
        if self.max_size and self.max_size < self.min_size:
            raise EdgeferError(
                f"max_size: expected 0 (no limit) or at least min_size "
                f"({self.min_size}), got {self.max_size}"
            )


class HaarDetector:
    """Full-frame detection; `scale` < 1 detects on a downscaled frame and maps boxes back.

    The cascade cannot see a face smaller than its window (24x24 for the default cascade) in the
    frame it scans, so `scale` is raised where needed to keep faces of `min_size` findable:
    the scale in use is `self.scale`, at least window / min_size (and at most 1).
    """

    def __init__(self, config: HaarConfig = HaarConfig(), scale: float = 1.0):
        path = config.cascade or default_cascade()
        if not Path(path).is_file():
            raise EdgeferError(f"{path}: Haar cascade file not found")
        try:
            with opencv_quiet():
                self.cascade = cv2.CascadeClassifier(path)
        except (SystemError, cv2.error):  # what OpenCV raises on a file that is not XML/YAML
            self.cascade = None
        if self.cascade is None or self.cascade.empty():
            raise EdgeferError(
                f"{path}: not a Haar cascade OpenCV can load; expected a cascade "
                "XML such as OpenCV's haarcascade_frontalface_default.xml"
            )
        self.window = min(self.cascade.getOriginalWindowSize())
        self.config = config
        self.scale = min(1.0, max(scale, self.window / config.min_size))

    def _run(self, gray: np.ndarray, min_size: int, max_size: int, min_neighbors=None) -> list[Box]:
        c = self.config
        sizes = {"minSize": (min_size, min_size)}
        if max_size:
            sizes["maxSize"] = (max_size, max_size)
        found = self.cascade.detectMultiScale(
            gray,
            scaleFactor=c.scale_factor,
            minNeighbors=c.min_neighbors if min_neighbors is None else min_neighbors,
            **sizes,
        )
        return [tuple(int(v) for v in b) for b in found]

    def __call__(self, gray: np.ndarray) -> list[Box]:
        c = self.config
        if self.scale == 1.0:
            boxes = self._run(gray, c.min_size, c.max_size)
        else:
            small = cv2.resize(
                gray, None, fx=self.scale, fy=self.scale, interpolation=cv2.INTER_AREA
            )
            boxes = [
                tuple(round(v / self.scale) for v in b)
                for b in self._run(
                    small,
                    max(self.window, round(c.min_size * self.scale)),
                    round(c.max_size * self.scale),
                )
            ]
        return select(boxes, c.largest_only)

    def search_near(self, gray: np.ndarray, box: Box, margin: float, size_range) -> Box | None:
        """The face nearest `box` within an expanded region, at a similar size, or None."""
        x, y, w, h = box
        H, W = gray.shape[:2]
        x0, y0 = max(0, int(x - margin * w)), max(0, int(y - margin * h))
        x1, y1 = min(W, int(x + w + margin * w)), min(H, int(y + h + margin * h))
        lo, hi = int(w * size_range[0]), int(w * size_range[1]) + 1
        found = self._run(gray[y0:y1, x0:x1], max(self.window, lo), hi)
        if not found:
            return None
        cx, cy = x + w / 2, y + h / 2
        bx, by, bw, bh = min(
            found, key=lambda b: (x0 + b[0] + b[2] / 2 - cx) ** 2 + (y0 + b[1] + b[3] / 2 - cy) ** 2
        )
        return (x0 + bx, y0 + by, bw, bh)


def select(boxes: list[Box], largest_only: bool) -> list[Box]:
    if largest_only and boxes:
        return [max(boxes, key=lambda b: b[2] * b[3])]
    return boxes


@dataclass(frozen=True)
class TrackingConfig:
    downscale: float = 0.5  # full scans run on the frame scaled by this
    full_every: int = 15  # frames between full scans
    roi_margin: float = 0.5  # search region: the box grown by this share on each side
    size_range: tuple[float, float] = (0.75, 1.33)  # face size change allowed between frames

    def __post_init__(self):
        if not 0 < self.downscale <= 1:
            raise EdgeferError(f"downscale: expected a number in (0, 1], got {self.downscale}")
        if self.full_every < 1:
            raise EdgeferError(f"full_every: expected 1 frame or more, got {self.full_every}")


class TrackingDetector:
    """Fast detection for video: periodic downscaled full scans, region search in between."""

    def __init__(
        self, haar: HaarConfig = HaarConfig(), tracking: TrackingConfig = TrackingConfig()
    ):
        self.full = HaarDetector(haar, scale=tracking.downscale)
        self.tracking = tracking
        self.boxes: list[Box] = []
        self.since_full = 0

    def reset(self) -> None:
        self.boxes, self.since_full = [], 0

    def __call__(self, gray: np.ndarray) -> list[Box]:
        t = self.tracking
        if self.boxes and self.since_full < t.full_every:
            tracked = [
                self.full.search_near(gray, b, t.roi_margin, t.size_range) for b in self.boxes
            ]
            if all(b is not None for b in tracked):
                self.since_full += 1
                self.boxes = tracked
                return list(tracked)
        # First frame, time for a full scan, or a face was lost: scan everything.
        self.boxes = self.full(gray)
        self.since_full = 0
        return list(self.boxes)


def iou(a: Box, b: Box) -> float:
    ax1, ay1, bx1, by1 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    iw = max(0, min(ax1, bx1) - max(a[0], b[0]))
    ih = max(0, min(ay1, by1) - max(a[1], b[1]))
    inter = iw * ih
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union else 0.0
