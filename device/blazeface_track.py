"""BlazeFace tracking: the full-range model on the whole frame now and then, the short-range model
on a small square crop around each known face in between.

Why: short-range BlazeFace on the whole frame is fast but blind to faces under ~75 px (it sees
the frame shrunk to 128 px); full-range sees them but costs ~4x as much; Haar's ROI search scans
an image pyramid on the CPU and a full Haar pass is what makes a Pi slow. Here the full-range
model runs every `track_rescan_every` frames, and on every frame from the one that loses a
tracked face until it is found again (or the cycle restarts); between those scans each face costs
one short-range invoke on a crop `track_crop` times its side, scaled to a `track_input` px square
(64: the graph is fully convolutional, and a face that fills half of it is found as well as at
the model's own 128 px, for a quarter of the MACs), so a face always fills the same share of
that input (1/track_crop) whatever its size in the frame: a 40 px face is as visible as a
300 px one.

The crop is a square centred on the face; where it runs past the frame, the missing part is
black (what BlazeFace's own letterbox pads with) and the face keeps its place in it, so a face at
the frame's edge is still seen whole and mapped back to the right pixels. A scheduled rescan keeps
the faces the crops confirm and adds those the full-range model finds elsewhere: a face that
walks in is found within `track_rescan_every` frames.

Boxes come back in Haar's framing (`FRAMING` of the model that found the face this frame), like
the `blazeface` detector's. `stats` counts the invokes and pixels, for the cost per frame.
"""

from __future__ import annotations

import functools
import time
from typing import Literal

import cv2
import numpy as np
from pydantic import Field

from edgefer.device.backends import verify_file
from edgefer.device.blazeface import FRAMING, BlazeFaceDetector, haar_framing
from edgefer.device.detector import Box
from edgefer.device.detectors import DetectorContext, DetectorOptions, register
from edgefer.device.manifest import Manifest

Raw = tuple[float, float, float, float]  # x0, y0, x1, y1 in frame pixels, as BlazeFace frames it


class TrackConfig(DetectorOptions):
    """[detector] kind = "blazeface-track" (option names are the registry's, so `track_`)."""

    track_rescan_every: int = Field(15, ge=1)  # frames between full-range scans of the frame
    # Side in px of the short-range tiles that find faces too small for the full-range scan; 0: off
    track_tile: int = Field(320, ge=0)
    # The tiles are spread over this many scan cycles, one share a frame: a new face under
    # ~65 px is found within track_rescan_every * this frames (larger ones by the next scan);
    # 2 rather than 1 takes ~10% off a frame's time (docs/BENCHMARKS.md, issue 25).
    track_tile_cycles: int = Field(2, ge=1)
    track_crop: float = Field(2.0, ge=1.2, le=6)  # crop side / face side: face = 1/this of input
    # The follow step's input side: 64 finds a face filling half the input as well as 128 does
    # (docs/BENCHMARKS.md, "Every face, fast"), for a quarter of the MACs.
    track_input: Literal[64, 96, 128] = 64
    track_threshold: float = Field(0.5, gt=0, lt=1)  # a face in its crop below this is lost
    # A face in a tile is a candidate from this score: a 40-50 px face scores 0.3-0.75 there...
    track_tile_threshold: float = Field(0.3, gt=0, lt=1)
    # ...and a new face from a tile becomes a track only if its own crop (VERIFY_CROP times its
    # side, at the model's own 128 px) scores this: on bench frames (docs/BENCHMARKS.md, issue
    # 25) every one of 319 true tile faces scored >= 0.75 there, none of 54 false ones did.
    track_verify_threshold: float = Field(0.75, gt=0, lt=1)
    track_full_threshold: float = Field(0.5, gt=0, lt=1)  # the full-range scan's face confidence


DEFAULT_TRACK = TrackConfig()
VERIFY_CROP = 2.5  # what track_verify_threshold was measured with

# What `BlazeFaceTracker.stats` counts: frames, full-range scans, crops, tiles and verifications
# (short-range invokes), the frame pixels the resizes read, and the milliseconds of each stage.
STATS = (
    *("frames", "full", "crops", "tiles", "verify", "pixels_read"),
    *("crops_ms", "full_ms", "tiles_ms"),
)


def iou_raw(a: Raw, b: Raw) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def tile_origins(width: int, height: int, side: int) -> list[tuple[int, int]]:
    """Top-left corners of square tiles covering the frame, neighbours overlapping by at least
    half a tile (so a face up to half a tile wide lies whole in one of them)."""

    def starts(length: int) -> list[int]:
        if length <= side:
            return [0]
        n = int(np.ceil((length - side) / (side / 2))) + 1
        return [round(v) for v in np.linspace(0, length - side, n)]

    return [(x, y) for y in starts(height) for x in starts(width)]


class BlazeFaceTracker:
    """Full-range scans of the whole frame every `track_rescan_every` frames or when a face is
    lost; in the frames between, short-range on each known face's crop, plus (track_tile) one
    short-range tile of the frame per frame until all have been scanned once a cycle: the
    full-range model shrinks a 640x480 frame to 192 px and misses faces under ~65 px, a 320 px
    tile in the short-range model's 128 px input sees them from ~40 px. Call with a gray uint8
    frame; boxes out in Haar's framing."""

    def __init__(
        self,
        short: BlazeFaceDetector,
        full: BlazeFaceDetector,
        config: TrackConfig = DEFAULT_TRACK,
        follower: BlazeFaceDetector | None = None,
    ):
        """`short` (at its own 128 px) scans the tiles and verifies their faces; `follower`, the
        short-range model at `track_input` px (default: `short`), follows the known faces."""
        self.short, self.full, self.config = short, full, config
        self.follower = follower or short
        self.tracks: list[tuple[Raw, str]] = []  # raw box, variant that found it
        self.tick = 0  # frame of the tile cycle (track_tile_cycles scan cycles)
        # Faces tracked before one was lost: until the tracks are back to that many, or the
        # cycle restarts, every frame is scanned whole (a face that moved too far for its crop
        # is searched for on the next frames too, not only on the frame that lost it).
        self.missing_from = 0
        self.fresh = True  # the first frame after a start or reset: every tile too
        self.canvases = {
            m.variant.size: np.zeros((m.variant.size,) * 2, np.uint8)
            for m in (short, self.follower)
        }
        self.stats = dict.fromkeys(STATS, 0)

    def reset(self) -> None:
        self.tracks, self.tick, self.missing_from, self.fresh = [], 0, 0, True

    @property
    def phase(self) -> int:
        """Frame of the scan cycle: 0 scans the whole frame."""
        return self.tick % self.config.track_rescan_every

    def square_input(self, gray: np.ndarray, x0: float, y0: float, side: float, n: int):
        """The input (n x n) of a short-range model for the square (x0, y0, side) of the frame
        (black where it runs past the frame, the rest in place), and how to map its input pixels
        back: (origin x, origin y, frame pixels per input pixel in x, in y)."""
        per = side / n  # frame pixels per input pixel
        H, W = gray.shape[:2]
        ix0, iy0 = max(0, int(np.floor(x0))), max(0, int(np.floor(y0)))
        ix1, iy1 = min(W, int(np.ceil(x0 + side))), min(H, int(np.ceil(y0 + side)))
        canvas = self.canvases[n]
        canvas[:] = 0
        origin = (x0, y0, per, per)
        if ix1 > ix0 and iy1 > iy0:
            # Where the visible part lands in the input, in whole input pixels.
            u0, v0 = max(0, round((ix0 - x0) / per)), max(0, round((iy0 - y0) / per))
            u1, v1 = min(n, round((ix1 - x0) / per)), min(n, round((iy1 - y0) / per))
            if u1 > u0 and v1 > v0:
                part = gray[iy0:iy1, ix0:ix1]
                shrink = part.shape[1] > u1 - u0
                canvas[v0:v1, u0:u1] = cv2.resize(
                    part,
                    (u1 - u0, v1 - v0),
                    interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR,
                )
                self.stats["pixels_read"] += part.size
                # Map the input back exactly: input pixel u is frame x ix0 + (u - u0) * sx.
                sx, sy = (ix1 - ix0) / (u1 - u0), (iy1 - iy0) / (v1 - v0)
                origin = (ix0 - u0 * sx, iy0 - v0 * sy, sx, sy)
        rgb = cv2.merge((canvas, canvas, canvas)).astype(np.float32)
        rgb *= np.float32(1 / 127.5)
        rgb -= 1
        return rgb[None], origin

    def short_range(
        self, model: BlazeFaceDetector, gray, x0: float, y0: float, side: float, threshold: float
    ) -> list[Raw]:
        """Short-range BlazeFace's faces in the square (x0, y0, side), in frame pixels."""
        n = model.variant.size
        x, (ox, oy, sx, sy) = self.square_input(gray, x0, y0, side, n)
        return [
            (ox + b[0] * n * sx, oy + b[1] * n * sy, ox + b[2] * n * sx, oy + b[3] * n * sy)
            for b, _ in model.infer(x, threshold)
        ]

    def follow(
        self, model: BlazeFaceDetector, gray: np.ndarray, box: Raw, crop: float, threshold: float
    ) -> Raw | None:
        """The face in the crop (`crop` times its side) around `box` nearest its centre, in
        frame pixels, or None."""
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        side = max(box[2] - box[0], box[3] - box[1]) * crop
        boxes = self.short_range(model, gray, cx - side / 2, cy - side / 2, side, threshold)
        if not boxes:
            return None
        return min(
            boxes, key=lambda b: ((b[0] + b[2]) / 2 - cx) ** 2 + ((b[1] + b[3]) / 2 - cy) ** 2
        )

    def scan(self, gray: np.ndarray) -> list[Raw]:
        """Full-range BlazeFace on the whole frame (shrunk to its 192 px input)."""
        self.stats["full"] += 1
        self.stats["pixels_read"] += gray.size
        return [
            (float(x), float(y), float(x + w), float(y + h))
            for (x, y, w, h), score in self.full.detect(gray)
            if score >= self.config.track_full_threshold
        ]

    def tiles_now(self, gray: np.ndarray) -> list[tuple[int, int]]:
        """The tiles this frame scans: spread over the frames of the tile cycle after its first,
        one share each; all of them on the first frame after a start or reset (an image of a
        folder: `frames_with_results` resets before each), and on every frame when the scan cycle
        is one frame long."""
        c = self.config
        if not c.track_tile:
            return []
        origins = self.origins(gray.shape[1], gray.shape[0], c.track_tile)
        if c.track_rescan_every == 1 or self.fresh:
            return origins
        n, slots = len(origins), c.track_rescan_every * c.track_tile_cycles - 1
        slot = self.tick - 1
        return [o for i, o in enumerate(origins) if (i * slots // n if n > slots else i) == slot]

    @staticmethod
    @functools.cache
    def origins(width: int, height: int, side: int) -> list[tuple[int, int]]:
        return tile_origins(width, height, side)

    def __call__(self, gray: np.ndarray) -> list[Box]:
        stats = self.stats
        stats["frames"] += 1
        t0 = time.perf_counter()
        c = self.config
        stats["crops"] += len(self.tracks)
        followed = [
            self.follow(self.follower, gray, box, c.track_crop, c.track_threshold)
            for box, _ in self.tracks
        ]
        kept = [(b, "short") for b in followed if b is not None]
        t1 = time.perf_counter()
        found: list[tuple[Raw, str]] = []
        if len(kept) < len(self.tracks):  # a face is lost
            self.missing_from = max(self.missing_from, len(self.tracks))
        if self.phase == 0 or len(kept) < self.missing_from:  # the cycle starts, or searching
            found += [(b, "full") for b in self.scan(gray)]
        t2 = time.perf_counter()
        for x, y in self.tiles_now(gray):
            stats["tiles"] += 1
            for b in self.short_range(self.short, gray, x, y, c.track_tile, c.track_tile_threshold):
                if all(iou_raw(b, k) < 0.3 for k, _ in kept + found):
                    stats["verify"] += 1
                    verified = self.follow(
                        self.short, gray, b, VERIFY_CROP, c.track_verify_threshold
                    )
                    if verified is not None:
                        found.append((verified, "short"))
        t3 = time.perf_counter()
        stats["crops_ms"] += (t1 - t0) * 1000
        stats["full_ms"] += (t2 - t1) * 1000
        stats["tiles_ms"] += (t3 - t2) * 1000
        self.tick = (self.tick + 1) % (c.track_rescan_every * c.track_tile_cycles)
        self.fresh = False
        # Keep what the crops confirmed; add the faces the scans find elsewhere (two tracks that
        # drifted onto one face become one).
        tracks: list[tuple[Raw, str]] = []
        for b, v in kept + found:
            if all(iou_raw(b, t) < 0.3 for t, _ in tracks):
                tracks.append((b, v))
        self.tracks = tracks
        if len(tracks) >= self.missing_from or self.phase == 0:  # found again, or a new cycle
            self.missing_from = 0
        H, W = gray.shape[:2]
        out = []
        for (x0, y0, x1, y1), v in tracks:  # clipped to the frame, as `blazeface` clips
            bx0, by0 = max(0, round(x0)), max(0, round(y0))
            bx1, by1 = min(W, round(x1)), min(H, round(y1))
            if bx1 > bx0 and by1 > by0:
                out.append(haar_framing((bx0, by0, bx1 - bx0, by1 - by0), FRAMING[v]))
        return out


def bundle_has_both(options: TrackConfig, manifest: Manifest) -> None:
    """Both BlazeFace models, from the bundle (`edgefer convert --detector`)."""
    manifest.detector("short")
    manifest.detector("full")


@register("blazeface-track", TrackConfig, check_bundle=bundle_has_both)
def blazeface_track(options: TrackConfig, context: DetectorContext) -> BlazeFaceTracker:
    """Full-range BlazeFace every track_rescan_every frames, short-range on a crop per face in
    between (on the pipeline's interpreter threads)."""

    def model(variant: str, input_size: int | None = None) -> BlazeFaceDetector:
        path = verify_file(context.bundle_dir, context.manifest.detector(variant))
        return BlazeFaceDetector(path, variant, threads=context.threads, input_size=input_size)

    follower = model("short", options.track_input)
    return BlazeFaceTracker(model("short"), model("full"), options, follower)
