"""Frame -> faces -> expressions, with per-stage timings. Never crashes on a frame.

    pipe = Pipeline.from_bundle("bundles/edge")
    result = pipe(frame)            # BGR, gray, BGRA, 8- or 16-bit
    for d in result.detections: print(d.box, d.label, d.score)
    result.timings                  # ms: detect, preprocess, inference, postprocess, total
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgefer.device.backends import open_runtime
from edgefer.device.delegates import DelegateSpec
from edgefer.device.detector import Box, HaarConfig, HaarDetector, TrackingConfig, TrackingDetector
from edgefer.device.manifest import Manifest
from edgefer.device.runtimes import Runtime
from edgefer.imaging import resize_square, to_gray_u8
from edgefer.preprocess import Preprocessing


@dataclass(frozen=True)
class Detection:
    box: Box  # x, y, w, h in frame pixels
    label: str
    score: float
    scores: dict[str, float]

    def to_dict(self) -> dict:
        return {"box": list(self.box), "label": self.label, "score": round(self.score, 4),
                "scores": {k: round(v, 4) for k, v in self.scores.items()}}


@dataclass
class FrameResult:
    detections: list[Detection] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)  # milliseconds
    error: str | None = None  # why a frame could not be processed (the pipeline went on)


def crop_face(gray: np.ndarray, box: Box, margin: float, size: int) -> np.ndarray:
    """Square crop around the box grown by `margin` on each side, clamped to the frame."""
    x, y, w, h = box
    side = int(round(max(w, h) * (1 + 2 * margin)))
    cx, cy = x + w / 2, y + h / 2
    x0, y0 = int(round(cx - side / 2)), int(round(cy - side / 2))
    H, W = gray.shape[:2]
    x0, y0 = min(max(0, x0), max(0, W - side)), min(max(0, y0), max(0, H - side))
    return resize_square(gray[y0:y0 + side, x0:x0 + side], size)


class Pipeline:
    def __init__(self, runtime: Runtime, manifest: Manifest, detector, margin: float = 0.0):
        self.runtime, self.manifest, self.detector, self.margin = runtime, manifest, detector, margin
        self.prep = Preprocessing.from_dict(manifest.preprocessing.model_dump())
        self.labels = manifest.labels

    @classmethod
    def from_bundle(cls, bundle_dir: str | Path, backend: str = "cpu", threads: int = 1,
                    delegate: DelegateSpec | None = None, fallback: str | None = None,
                    fmt: str | None = None, haar: HaarConfig = HaarConfig(),
                    tracking: TrackingConfig | None = TrackingConfig(), margin: float = 0.0,
                    providers: list[str] | None = None) -> "Pipeline":
        """`tracking=None` runs full-frame detection on every frame (the slow, exact reference)."""
        runtime, manifest, _ = open_runtime(bundle_dir, backend, threads, delegate, fallback, fmt,
                                            providers)
        detector = HaarDetector(haar) if tracking is None else TrackingDetector(haar, tracking)
        return cls(runtime, manifest, detector, margin)

    def __call__(self, frame) -> FrameResult:
        t0 = time.perf_counter()
        timings = {}
        try:
            if frame is None or np.asarray(frame).size == 0:
                raise ValueError("empty frame")
            gray = to_gray_u8(frame)
        except ValueError as exc:
            if hasattr(self.detector, "reset"):
                self.detector.reset()
            return FrameResult(timings={"total": (time.perf_counter() - t0) * 1000},
                               error=str(exc))
        boxes = self.detector(gray)
        t1 = time.perf_counter()
        timings["detect"] = (t1 - t0) * 1000
        detections = []
        if boxes:
            crops = np.stack([crop_face(gray, b, self.margin, self.prep.size) for b in boxes])
            x = self.prep.apply(crops)
            t2 = time.perf_counter()
            scores = self.runtime.scores(x)  # one call for all faces; batch-1 models loop inside
            t3 = time.perf_counter()
            for box, s in zip(boxes, scores):
                best = int(np.argmax(s))
                detections.append(Detection(box, self.labels[best], float(s[best]),
                                            dict(zip(self.labels, map(float, s)))))
            t4 = time.perf_counter()
            timings.update(preprocess=(t2 - t1) * 1000, inference=(t3 - t2) * 1000,
                           postprocess=(t4 - t3) * 1000)
        else:
            timings.update(preprocess=0.0, inference=0.0, postprocess=0.0)
        timings["total"] = (time.perf_counter() - t0) * 1000
        return FrameResult(detections, timings)
