"""BlazeFace (MediaPipe's short- and full-range face detectors) on the same TFLite runtime as the
expression model: on a Pi, no new runtime.

The model gives, per SSD anchor, a box offset and a face logit; decoding the anchors and the
non-maximum suppression are vectorised numpy here (MediaPipe does them in its C++ graph, which we
do not ship). The boxes come back in frame pixels and in Haar's framing (see `FRAMING`), so the
expression model sees the crops it was trained on whichever detector found the face.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
from pydantic import Field

from edgefer.device.backends import verify_file
from edgefer.device.detector import Box
from edgefer.device.detectors import DetectorContext, DetectorOptions, register
from edgefer.device.manifest import Manifest
from edgefer.device.runtimes import load_interpreter
from edgefer.errors import EdgeferError


@dataclass(frozen=True)
class Variant:
    size: int  # square input side
    layers: tuple[tuple[int, int], ...]  # (stride, anchors per cell) per feature map


# MediaPipe's SsdAnchorsCalculator options for the two graphs, merged per stride.
VARIANTS = {
    "short": Variant(128, ((8, 2), (16, 6))),  # faces within ~2 m: 896 anchors
    "full": Variant(192, ((4, 1),)),  # faces up to ~5 m: 2304 anchors
}


def anchors(variant: Variant) -> np.ndarray:
    """(N, 2) anchor centres in [0, 1], in the model's output order (row-major per layer)."""
    out = []
    for stride, per_cell in variant.layers:
        n = variant.size // stride
        ys, xs = np.meshgrid((np.arange(n) + 0.5) / n, (np.arange(n) + 0.5) / n, indexing="ij")
        centres = np.stack([xs.ravel(), ys.ravel()], axis=1)
        out.append(np.repeat(centres, per_cell, axis=0))
    return np.concatenate(out).astype(np.float32)


def decode(
    regressors: np.ndarray, logits: np.ndarray, anchor_xy: np.ndarray, size: int, threshold: float
) -> tuple[np.ndarray, np.ndarray]:
    """(boxes (M, 4) as x0, y0, x1, y1 in [0, 1], scores (M,)) of the anchors above threshold."""
    scores = 1 / (1 + np.exp(-np.clip(logits.reshape(-1), -80, 80)))  # no float32 overflow
    keep = scores >= threshold
    reg, xy = regressors.reshape(len(scores), -1)[keep, :4] / size, anchor_xy[keep]
    cx, cy = xy[:, 0] + reg[:, 0], xy[:, 1] + reg[:, 1]
    half_w, half_h = reg[:, 2] / 2, reg[:, 3] / 2
    return np.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], axis=1), scores[keep]


def weighted_nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> list[tuple]:
    """MediaPipe's "weighted" suppression: each cluster of overlapping boxes becomes the
    score-weighted mean of its members, which is steadier frame to frame than keeping one."""
    order = np.argsort(-scores)
    boxes, scores = boxes[order], scores[order]
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    alive = np.ones(len(boxes), bool)
    out = []
    for i in range(len(boxes)):
        if not alive[i]:
            continue
        x0 = np.maximum(boxes[i, 0], boxes[:, 0])
        y0 = np.maximum(boxes[i, 1], boxes[:, 1])
        x1 = np.minimum(boxes[i, 2], boxes[:, 2])
        y1 = np.minimum(boxes[i, 3], boxes[:, 3])
        inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
        iou = inter / np.maximum(areas[i] + areas - inter, 1e-9)
        members = alive & (iou >= iou_threshold)
        w = scores[members]
        out.append((tuple((boxes[members] * w[:, None]).sum(0) / w.sum()), float(scores[i])))
        alive &= ~members
    return out


# BlazeFace boxes run from the brows to the chin; FER2013 crops (and Haar's boxes, which match
# them) reach higher and wider. Box -> crop: scale about the centre, then shift the centre by a
# share of the box's side. The medians that turn BlazeFace's boxes into the FER2013 crop on 600
# PublicTest faces (bench/bench_framing.py; docs/BENCHMARKS.md has what they do to top-1).
FRAMING = {"short": {"scale": 1.18, "shift_y": -0.10}, "full": {"scale": 1.15, "shift_y": -0.035}}


class BlazeFaceDetector:
    """Faces in a gray or BGR frame, as Haar-framed boxes in frame pixels."""

    def __init__(
        self,
        model_path: str | Path,
        variant: str = "short",
        threshold: float = 0.5,
        iou_threshold: float = 0.3,
        threads: int = 1,
        framing: dict | None = None,
        input_size: int | None = None,
    ):
        """`input_size`: run the graph on a square input of this side instead of its own (it is
        fully convolutional; the anchors follow the grid). For crops where a face fills a fixed
        share of the input: at 64 px short-range BlazeFace finds such a face as well as at 128
        for a quarter of the MACs (docs/BENCHMARKS.md, "Every face, fast")."""
        if variant not in VARIANTS:
            raise EdgeferError(
                f"blazeface variant '{variant}': expected one of {', '.join(VARIANTS)}"
            )
        if not 0 < threshold < 1:
            raise EdgeferError(f"blazeface threshold {threshold}: expected a value in (0, 1)")
        path = Path(model_path)
        if not path.is_file():
            raise EdgeferError(f"{path}: BlazeFace model not found")
        self.variant = VARIANTS[variant]
        self.interpreter = load_interpreter(path, threads)
        inp = self.interpreter.get_input_details()[0]
        want = [1, self.variant.size, self.variant.size, 3]
        if list(inp["shape"]) != want:
            raise EdgeferError(
                f"{path}: input {list(inp['shape'])} is not BlazeFace {variant}'s {want}"
            )
        self.input_index = inp["index"]
        if input_size is not None and input_size != self.variant.size:
            stride = max(s for s, _ in self.variant.layers)
            if input_size <= 0 or input_size % stride:
                raise EdgeferError(
                    f"blazeface input_size {input_size}: expected a positive multiple of {stride}"
                )
            self.variant = Variant(input_size, self.variant.layers)
            self.interpreter.resize_tensor_input(self.input_index, [1, input_size, input_size, 3])
            self.interpreter.allocate_tensors()
        outs = sorted(self.interpreter.get_output_details(), key=lambda d: -int(d["shape"][-1]))
        self.regressors_index, self.logits_index = outs[0]["index"], outs[1]["index"]
        self.anchor_xy = anchors(self.variant)
        if len(self.anchor_xy) != int(outs[1]["shape"][1]):
            raise EdgeferError(
                f"{path}: {outs[1]['shape'][1]} anchors, BlazeFace {variant} has "
                f"{len(self.anchor_xy)}"
            )
        self.threshold, self.iou_threshold = threshold, iou_threshold
        self.framing = framing or FRAMING[variant]
        self.lock = threading.Lock()  # one interpreter, any number of calling threads

    def _pixels(self, frame: np.ndarray) -> tuple[np.ndarray, int]:
        """The frame shrunk to fit the model's square, RGB in [-1, 1], and the frame's longer
        side. Shrinking first costs less than padding the full frame; a gray frame becomes three
        equal channels with cv2.merge (0.01 ms here; broadcasting one channel into three, 0.09)."""
        h, w = frame.shape[:2]
        side = max(h, w)
        n = self.variant.size
        sw, sh = max(1, round(w * n / side)), max(1, round(h * n / side))
        small = cv2.resize(frame, (sw, sh), interpolation=cv2.INTER_AREA)
        if small.ndim == 2:
            rgb = cv2.merge((small, small, small))
        else:
            rgb = cv2.cvtColor(small, cv2.COLOR_BGR2RGB)
        pixels = rgb.astype(np.float32)
        pixels *= np.float32(1 / 127.5)
        pixels -= 1
        return pixels, side

    def _letterboxed(self, pixels: np.ndarray) -> np.ndarray:
        """The pixels top-left in the model's square input, padded black (-1)."""
        n = self.variant.size
        x = np.full((1, n, n, 3), -1.0, np.float32)
        x[0, : pixels.shape[0], : pixels.shape[1]] = pixels
        return x

    def infer(self, x: np.ndarray, threshold: float | None = None) -> list[tuple]:
        """((x0, y0, x1, y1) in [0, 1] of the model's square input, score) per face, for an
        input already shaped (1, size, size, 3) in [-1, 1]."""
        with self.lock:
            self.interpreter.set_tensor(self.input_index, x)
            self.interpreter.invoke()
            reg = self.interpreter.get_tensor(self.regressors_index)
            logits = self.interpreter.get_tensor(self.logits_index)
        threshold = self.threshold if threshold is None else threshold
        boxes, scores = decode(reg, logits, self.anchor_xy, self.variant.size, threshold)
        return weighted_nms(boxes, scores, self.iou_threshold)

    def detect(self, frame: np.ndarray) -> list[tuple[Box, float]]:
        """(box, score) per face, box as BlazeFace frames it (no Haar framing)."""
        pixels, side = self._pixels(frame)
        h, w = frame.shape[:2]
        found = []
        for (x0, y0, x1, y1), score in self.infer(self._letterboxed(pixels)):
            bx0, by0 = max(0, round(x0 * side)), max(0, round(y0 * side))
            bx1, by1 = min(w, round(x1 * side)), min(h, round(y1 * side))
            if bx1 > bx0 and by1 > by0:
                found.append(((bx0, by0, bx1 - bx0, by1 - by0), score))
        return found

    def __call__(self, frame: np.ndarray) -> list[Box]:
        return [haar_framing(box, self.framing) for box, _ in self.detect(frame)]


def haar_framing(box: Box, framing: dict) -> Box:
    """A square box around a BlazeFace box, framed like Haar's (and FER2013's) crops."""
    x, y, w, h = box
    side = max(w, h) * framing["scale"]
    cx, cy = x + w / 2, y + h / 2 + framing["shift_y"] * max(w, h)
    return (round(cx - side / 2), round(cy - side / 2), round(side), round(side))


class BlazeFaceConfig(DetectorOptions):
    blazeface_range: Literal["short", "full"] = "short"  # faces within ~2 m, or ~5 m
    threshold: float = Field(0.5, gt=0, lt=1)  # smallest face confidence kept


def bundle_has_model(options: BlazeFaceConfig, manifest: Manifest) -> None:
    """BlazeFace runs the bundle's own copy of the model (`edgefer convert --detector`)."""
    manifest.detector(options.blazeface_range)


@register("blazeface", BlazeFaceConfig, check_bundle=bundle_has_model)
def blazeface(options: BlazeFaceConfig, context: DetectorContext) -> BlazeFaceDetector:
    """BlazeFace from the bundle on every frame (on the pipeline's interpreter threads)."""
    variant = options.blazeface_range
    model = verify_file(context.bundle_dir, context.manifest.detector(variant))
    return BlazeFaceDetector(model, variant, options.threshold, threads=context.threads)
