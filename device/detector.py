"""Face detection with OpenCV Haar cascades, and the ROI search that makes it fast enough.

Full-frame `detectMultiScale` dominates a frame's cost (a 600k-parameter int8 model takes ~0.5 ms
per face), so `RoiSearchDetector` scans the whole (downscaled) frame only every `full_every`
frames or when a face is lost, and in between searches small regions of interest around the known
faces, at sizes close to the known ones.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from pydantic import Field, ValidationInfo, field_validator

from edgefer.device.detectors import DetectorContext, DetectorOptions, register
from edgefer.device.manifest import Strict
from edgefer.errors import EdgeferError
from edgefer.imaging import opencv_quiet

Box = tuple[int, int, int, int]  # x, y, w, h


def default_cascade() -> str:
    return str(Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml")


class RoiSearchConfig(Strict):
    """Video only: search around the faces of the previous frame instead of the full frame."""

    enabled: bool = True  # false: a full scan of every frame (the slow, exact reference)
    downscale: float = Field(0.5, gt=0, le=1)  # full scans run on the frame scaled by this
    full_every: int = Field(15, ge=1)  # frames between full scans
    roi_margin: float = Field(0.5, ge=0)  # search region: the box grown by this share per side
    size_range: tuple[float, float] = (0.75, 1.33)  # face size change allowed between frames

    @field_validator("size_range")
    @classmethod
    def _grows_and_shrinks(cls, size_range: tuple[float, float]) -> tuple[float, float]:
        lo, hi = size_range
        if not 0 < lo <= 1 <= hi:
            raise ValueError(f"expected [smallest <= 1, largest >= 1], got {list(size_range)}")
        return size_range


class HaarConfig(DetectorOptions):
    """OpenCV's cascade options. Checked here, whoever passes them: detectMultiScale fails with
    an OpenCV assertion (or loops forever) on a scale factor of 1 or a size below 1."""

    cascade: str | None = None  # path; default: OpenCV's frontal-face cascade
    scale_factor: float = Field(1.1, gt=1)
    min_neighbors: int = Field(5, ge=0)
    min_size: int = Field(48, ge=1)
    max_size: int = Field(0, ge=0)  # 0 = no limit
    largest_only: bool = False
    roi_search: RoiSearchConfig = RoiSearchConfig()

    def changed(self) -> list[str]:
        """As DetectorOptions.changed, but `roi_search.enabled` alone is not a choice of Haar:
        `detect` turns the ROI search off for images and --naive, whichever detector runs."""
        search = self.roi_search.model_copy(update={"enabled": RoiSearchConfig().enabled})
        return DetectorOptions.changed(self.model_copy(update={"roi_search": search}))

    @field_validator("max_size")
    @classmethod
    def _not_below_min_size(cls, max_size: int, info: ValidationInfo) -> int:
        min_size = info.data.get("min_size")
        if max_size and min_size is not None and max_size < min_size:
            raise ValueError(f"expected 0 (no limit) or at least min_size ({min_size})")
        return max_size


DEFAULT_HAAR = HaarConfig()


class HaarDetector:
    """Full-frame detection; `scale` < 1 detects on a downscaled frame and maps boxes back.

    The cascade cannot see a face smaller than its window (24x24 for the default cascade) in the
    frame it scans, so `scale` is raised where needed to keep faces of `min_size` findable:
    the scale in use is `self.scale`, at least window / min_size (and at most 1).
    """

    def __init__(self, config: HaarConfig = DEFAULT_HAAR, scale: float = 1.0):
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


class RoiSearchDetector:
    """Fast detection for video: periodic downscaled full scans, region search in between."""

    def __init__(self, haar: HaarConfig = DEFAULT_HAAR):
        self.search = haar.roi_search
        self.full = HaarDetector(haar, scale=self.search.downscale)
        self.boxes: list[Box] = []
        self.since_full = 0

    def reset(self) -> None:
        self.boxes, self.since_full = [], 0

    def __call__(self, gray: np.ndarray) -> list[Box]:
        s = self.search
        if self.boxes and self.since_full < s.full_every:
            found = [self.full.search_near(gray, b, s.roi_margin, s.size_range) for b in self.boxes]
            if all(b is not None for b in found):
                self.since_full += 1
                self.boxes = found
                return list(found)
        # First frame, time for a full scan, or a face was lost: scan everything.
        self.boxes = self.full(gray)
        self.since_full = 0
        return list(self.boxes)


@register("haar", HaarConfig)
def haar(options: HaarConfig, context: DetectorContext):
    """OpenCV's Haar cascade, searching around known faces between full scans on video.

    roi_search.enabled = false scans every full frame (the slow, exact reference)."""
    return RoiSearchDetector(options) if options.roi_search.enabled else HaarDetector(options)


def iou(a: Box, b: Box) -> float:
    ax1, ay1, bx1, by1 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    iw = max(0, min(ax1, bx1) - max(a[0], b[0]))
    ih = max(0, min(ay1, by1) - max(a[1], b[1]))
    inter = iw * ih
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union else 0.0
