"""Frame -> faces -> expressions, with per-stage timings. Never crashes on a frame.

pipe = Pipeline.from_bundle("bundles/edge")   # or (bundle, PipelineConfig(...)): detector, backend
result = pipe(frame)            # BGR, gray or BGRA; 8-, 16-bit, int or float (see to_gray_u8)
for d in result.detections: print(d.box, d.label, d.score)
result.timings                  # ms: detect, preprocess, inference, postprocess, total
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from edgefer.device.backends import open_runtime
from edgefer.device.detector import Box
from edgefer.device.detectors import DetectorContext
from edgefer.device.expression_memory import ExpressionMemory
from edgefer.device.manifest import Manifest
from edgefer.device.pipeline_config import DetectorConfig, PipelineConfig
from edgefer.device.runtimes import Runtime
from edgefer.device.sources import VIDEO_KINDS, Source
from edgefer.imaging import resize_square, to_gray_u8
from edgefer.preprocess import Preprocessing

DEFAULT = PipelineConfig()


@dataclass(frozen=True)
class Detection:
    box: Box  # x, y, w, h in frame pixels
    label: str
    score: float
    scores: dict[str, float]

    def to_dict(self) -> dict:
        return {
            "box": list(self.box),
            "label": self.label,
            "score": round(self.score, 4),
            "scores": {k: round(v, 4) for k, v in self.scores.items()},
        }


@dataclass
class FrameResult:
    detections: list[Detection] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)  # milliseconds
    error: str | None = None  # why a frame could not be processed (the pipeline went on)


def crop_face(gray: np.ndarray, box: Box, margin: float, size: int) -> np.ndarray:
    """Square crop centred on the box grown by `margin` on each side, resized to size x size.

    Where the square runs past the frame, the frame's edge pixels are repeated into it
    (BORDER_REPLICATE): the face keeps its aspect ratio and stays centred, as in the training
    crops, where shifting the square would move it and clipping it would stretch it. Repeating
    the edge, unlike black padding, adds no hard edge or dark area that training crops never
    have.
    """
    x, y, w, h = box
    side = max(1, round(max(w, h) * (1 + 2 * margin)))
    x0, y0 = round(x + w / 2 - side / 2), round(y + h / 2 - side / 2)
    H, W = gray.shape[:2]
    crop = gray[max(0, y0) : min(H, y0 + side), max(0, x0) : min(W, x0 + side)]
    top, left = max(0, -y0), max(0, -x0)
    bottom, right = max(0, y0 + side - H), max(0, x0 + side - W)
    if top or bottom or left or right:
        crop = cv2.copyMakeBorder(crop, top, bottom, left, right, cv2.BORDER_REPLICATE)
    return resize_square(crop, size)


@dataclass(frozen=True)
class Model:
    """The bundle's expression model, opened once on its runtime: every camera of a daemon runs
    its own Pipeline (its own detector, whose ROI search follows that camera's faces) on this
    one, so a second camera costs no second copy of the model. A runtime is not thread-safe:
    the pipelines that share it run from one thread."""

    bundle_dir: Path
    runtime: Runtime
    manifest: Manifest
    threads: int = 1
    margin: float = 0.0
    expression_every: int = 1

    @classmethod
    def open(cls, bundle_dir: str | Path, config: PipelineConfig = DEFAULT) -> Model:
        runtime, manifest, _ = open_runtime(
            bundle_dir,
            config.backend,
            config.threads,
            config.delegate_spec(),
            config.fallback,
            config.format,
            config.providers,
        )
        return cls(
            Path(bundle_dir),
            runtime,
            manifest,
            config.threads,
            config.margin,
            config.expression_every,
        )

    def pipeline(self, detector: DetectorConfig) -> Pipeline:
        """This model behind a new detector."""
        built = detector.build(DetectorContext(self.bundle_dir, self.manifest, self.threads))
        kind = detector.kind_for(self.manifest)
        return Pipeline(
            self.runtime, self.manifest, built, self.margin, self.expression_every, kind
        )


class Pipeline:
    def __init__(
        self,
        runtime: Runtime,
        manifest: Manifest,
        detector,
        margin: float = 0.0,
        expression_every: int = 1,
        detector_kind: str = "custom",
    ):
        """`detector_kind`: what /status names the detector (the registered kind it was built
        as; "custom" for one passed in directly)."""
        self.runtime, self.manifest, self.detector, self.margin = (
            runtime,
            manifest,
            detector,
            margin,
        )
        self.memory = ExpressionMemory(expression_every)
        self.detector_kind = detector_kind
        self.prep = Preprocessing.from_dict(manifest.preprocessing.model_dump())
        self.labels = manifest.labels

    @classmethod
    def from_bundle(cls, bundle_dir: str | Path, config: PipelineConfig = DEFAULT) -> Pipeline:
        """The bundle's model on `config.backend`, behind the detector `config.detector` names
        (by default blazeface-track where the bundle has BlazeFace, Haar with its ROI search
        where not)."""
        return Model.open(bundle_dir, config).pipeline(config.detector)

    def __call__(self, frame) -> FrameResult:
        """Detections, or FrameResult.error saying why not: never an exception, because one bad
        frame (an odd pixel type, an OpenCV or runtime failure) must not end a camera stream."""
        t0 = time.perf_counter()
        try:
            return self._process(frame, t0)
        except Exception as exc:  # noqa: BLE001 - whatever failed is this frame's error
            self.reset()  # the tracked faces may belong to a frame before the gap
            why = str(exc).strip().splitlines()
            return FrameResult(
                timings={"total": (time.perf_counter() - t0) * 1000},
                error=why[0] if why else type(exc).__name__,
            )

    def reset(self) -> None:
        """Forget the faces of earlier frames (the detector's tracks, the remembered scores):
        for a frame that does not follow the last one."""
        if hasattr(self.detector, "reset"):
            self.detector.reset()
        self.memory.reset()

    def read(self, gray: np.ndarray, boxes: list[Box], timings: dict) -> np.ndarray:
        """The model's scores for these faces, one call for all of them (batch-1 models loop
        inside); their crop and normalisation time added to timings["preprocess"], the model's
        to timings["inference"]."""
        t0 = time.perf_counter()
        crops = np.stack([crop_face(gray, b, self.margin, self.prep.size) for b in boxes])
        x = self.prep.apply(crops)
        t1 = time.perf_counter()
        scores = self.runtime.scores(x)
        timings["preprocess"] += (t1 - t0) * 1000
        timings["inference"] += (time.perf_counter() - t1) * 1000
        return scores

    def _process(self, frame, t0: float) -> FrameResult:
        if frame is None or np.asarray(frame).size == 0:
            raise ValueError("empty frame")
        gray = to_gray_u8(frame)
        boxes = self.detector(gray)
        t1 = time.perf_counter()
        timings = {"detect": (t1 - t0) * 1000}
        timings |= {"preprocess": 0.0, "inference": 0.0}
        scores = self.memory.scores(
            boxes, lambda due: self.read(gray, [boxes[i] for i in due], timings)
        )
        detections = []
        for box, s in zip(boxes, scores):
            best = int(np.argmax(s))
            detections.append(
                Detection(
                    box, self.labels[best], float(s[best]), dict(zip(self.labels, map(float, s)))
                )
            )
        t3 = time.perf_counter()
        # What the memory's matching and the labels took (reads are in preprocess and inference).
        timings["postprocess"] = (t3 - t1) * 1000 - timings["preprocess"] - timings["inference"]
        timings["total"] = (time.perf_counter() - t0) * 1000
        return FrameResult(detections, timings)


def frames_with_results(pipe: Pipeline, source: Source):
    """(frame, result) for each frame of a source, the decode time counted in the result's
    timings; (frame, None) for a frame the source could not decode. The images of a folder are
    unrelated: the pipeline forgets each one's faces before the next (a tracker would otherwise
    look for them there, and the results would depend on the order of the files)."""
    related = source.kind in VIDEO_KINDS
    for frame in source:
        if frame.error:
            yield frame, None
            continue
        if not related:
            pipe.reset()
        result = pipe(frame.image)
        result.timings["decode"] = frame.decode_ms
        result.timings["total"] += frame.decode_ms
        yield frame, result
