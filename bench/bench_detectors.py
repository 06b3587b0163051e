"""Haar vs BlazeFace (short and full range) on the same frames, one thread each.

Frames: the 640x480 moving-face video of `edgefer/samples.py` (300 frames), and 100 frames that
each hold one LFW face (scikit-image's subset, upscaled to 160 px) at a seeded place on the coffee
photo — there the true face box is known. Per detector: detector ms p50/p95, end-to-end FPS of
the pipeline (detect + crop + int8 expression model) on frames already in memory, recall of the
known LFW faces, and agreement with full-frame Haar on the video (share of Haar's boxes the
detector also finds, IoU >= 0.3). For BlazeFace also the compute floor: the detector's and the
expression model's `invoke` alone, timed back to back on inputs already set (warm caches, no
pre/post-processing), and the FPS that floor allows with one face a frame — no pipeline code can
beat it on this CPU, so it says whether an FPS target is reachable with these models at all.

    python bench/bench_detectors.py [--frames 300] [--repeats 1] [--json out.json] [--bundle DIR]
        [--detectors haar,haar-roi,blazeface-short,blazeface-full]
"""

from __future__ import annotations

import argparse
import json
import time

import cv2
import numpy as np

from edgefer.bundled import NAMES, default_bundle, resolve_bundle
from edgefer.device.detector import HaarDetector, iou
from edgefer.device.pipeline import Pipeline
from edgefer.device.pipeline_config import PipelineConfig
from edgefer.imaging import to_gray_u8
from edgefer.samples import face_video_frames, lfw_faces

LFW_SIDE = 160


def lfw_frames(seed: int = 0):
    """(frames, true boxes): one upscaled LFW face per 640x480 frame."""
    from skimage import data

    background = cv2.resize(cv2.cvtColor(data.coffee(), cv2.COLOR_RGB2BGR), (640, 480))
    rng = np.random.default_rng(seed)
    frames, boxes = [], []
    for face in lfw_faces():
        big = cv2.resize(face, (LFW_SIDE, LFW_SIDE), interpolation=cv2.INTER_CUBIC)
        x, y = int(rng.integers(0, 640 - LFW_SIDE)), int(rng.integers(0, 480 - LFW_SIDE))
        frame = background.copy()
        frame[y : y + LFW_SIDE, x : x + LFW_SIDE] = cv2.cvtColor(big, cv2.COLOR_GRAY2BGR)
        frames.append(frame)
        boxes.append((x, y, LFW_SIDE, LFW_SIDE))
    return frames, boxes


DETECTORS = {
    "haar": ("haar (full frame)", {"roi_search": {"enabled": False}}),
    "haar-roi": ("haar (ROI search, default)", {}),
    "blazeface-short": ("blazeface-short", {"kind": "blazeface", "blazeface_range": "short"}),
    "blazeface-full": ("blazeface-full", {"kind": "blazeface", "blazeface_range": "full"}),
}


def pipelines(bundle, detectors):
    for key in detectors:
        name, detector = DETECTORS[key]
        yield name, Pipeline.from_bundle(bundle, PipelineConfig(detector=detector))


def run(pipe, frames):
    """(detect ms per frame, total ms per frame, boxes per frame)."""
    detect, total, boxes = [], [], []
    if hasattr(pipe.detector, "reset"):
        pipe.detector.reset()
    for frame in frames:
        t0 = time.perf_counter()
        result = pipe(frame)
        total.append((time.perf_counter() - t0) * 1000)
        detect.append(result.timings.get("detect", float("nan")))
        boxes.append([d.box for d in result.detections])
    return np.array(detect), np.array(total), boxes


def invoke_ms(interpreter, n: int = 300) -> float:
    """p50 ms of `invoke` alone on whatever input the interpreter holds (warm, after the run)."""
    for _ in range(20):
        interpreter.invoke()
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        interpreter.invoke()
        times.append((time.perf_counter() - t0) * 1000)
    return float(np.median(times))


def compute_floor(pipe) -> dict:
    """The models' own share of a one-face frame: detector invoke + expression invoke."""
    detector = invoke_ms(pipe.detector.interpreter)
    expression = invoke_ms(pipe.runtime.interpreter)
    return {
        "detector_invoke_ms": detector,
        "expression_invoke_ms": expression,
        "fps_ceiling": 1000 / (detector + expression),
    }


def matched(reference, found, threshold=0.3) -> tuple[int, int]:
    """(reference boxes matched by a found box, reference boxes)."""
    hits = sum(
        any(iou(r, f) >= threshold for f in fs) for rs, fs in zip(reference, found) for r in rs
    )
    return hits, sum(len(rs) for rs in reference)


def fps_cell(passes: list[float]) -> str:
    """The median FPS, with the range when there was more than one pass."""
    median = f"{np.median(passes):.0f}"
    return median if len(passes) == 1 else f"{median} ({min(passes):.0f}–{max(passes):.0f})"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="video passes per detector; FPS is their median (this CPU wanders between runs)",
    )
    ap.add_argument(
        "--bundle",
        type=resolve_bundle,
        default=default_bundle(),
        help="bundle directory or bundled name (default: edge)",
    )
    ap.add_argument(
        "--detectors",
        default=",".join(DETECTORS),
        type=lambda v: [d for d in v.split(",") if d],
        help=f"comma-separated, of {', '.join(DETECTORS)}",
    )
    args = ap.parse_args()
    if args.repeats < 1:
        ap.error(f"--repeats {args.repeats}: expected 1 or more")
    if not args.bundle.is_dir():
        ap.error(
            f"--bundle {args.bundle}: expected a bundle directory or one of {', '.join(NAMES)}"
        )
    unknown = sorted(set(args.detectors) - set(DETECTORS))
    if unknown or not args.detectors:
        given = ", ".join(unknown) if unknown else "none given"
        ap.error(
            f"--detectors: {given}; expected a comma-separated subset of {', '.join(DETECTORS)}"
        )
    cv2.setNumThreads(1)
    video = list(face_video_frames(args.frames))
    lfw, lfw_boxes = lfw_frames()
    haar = HaarDetector()
    haar_video = [haar(to_gray_u8(f)) for f in video]
    rows = []
    for name, pipe in pipelines(args.bundle, args.detectors):
        run(pipe, video[:10])  # warm-up: first-call allocations are not what a camera sees
        passes = [run(pipe, video) for _ in range(args.repeats)]
        detect = np.concatenate([p[0] for p in passes])
        fps = [1000 / float(np.mean(p[1])) for p in passes]
        found = passes[0][2]
        _, _, lfw_found = run(pipe, lfw)
        hits, n = matched(haar_video, found)
        lfw_hits, lfw_n = matched([[b] for b in lfw_boxes], lfw_found)
        floor = compute_floor(pipe) if hasattr(pipe.detector, "interpreter") else {}
        rows.append(
            {
                "detector": name,
                "detect_p50_ms": float(np.median(detect)),
                "detect_p95_ms": float(np.percentile(detect, 95)),
                "fps": float(np.median(fps)),
                "fps_passes": fps,
                "haar_boxes_found": hits / max(n, 1),
                "lfw_recall": lfw_hits / lfw_n,
                "video_faces_per_frame": float(np.mean([len(b) for b in found])),
                **floor,
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    print(
        f"\n{len(video)} video frames 640x480, {len(lfw)} LFW frames; one thread; FPS excludes decoding"
    )
    print(
        "| detector | detect p50 ms | detect p95 ms | end-to-end FPS | finds Haar's boxes | LFW recall | faces/frame | models alone ms (FPS ceiling) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        floor = (
            f"{r['detector_invoke_ms']:.2f} + {r['expression_invoke_ms']:.2f} ({r['fps_ceiling']:.0f})"
            if "fps_ceiling" in r
            else "—"
        )
        print(
            f"| {r['detector']} | {r['detect_p50_ms']:.2f} | {r['detect_p95_ms']:.2f} | {fps_cell(r['fps_passes'])} | "
            f"{100 * r['haar_boxes_found']:.1f}% | {100 * r['lfw_recall']:.0f}% | {r['video_faces_per_frame']:.2f} | {floor} |"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
