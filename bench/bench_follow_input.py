"""Which input side should blazeface-track's follow step run short-range BlazeFace at?

The follow step feeds the model a square crop `crop` times a known face's side, so the face
always fills 1/crop of the input. The graph is fully convolutional: at 64 px it costs a quarter
of its MACs at 128. Per input side and crop share, on the "1 face 40-300 px" video of
`bench_detectors.py` (true boxes known): faces found in their crop, the lowest score of a found
face, the found box's IoU with the true face box (as BlazeFace frames it: brows to chin, so
~0.7 is a hit), crops of the background (same sizes, no face) where it sees a face at 0.5, and
`invoke` alone.

    python bench/bench_follow_input.py [--frames 300] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import time

import cv2
import numpy as np

from edgefer.bundled import default_bundle
from edgefer.device.blazeface import BlazeFaceDetector
from edgefer.device.detector import iou
from edgefer.samples import coffee_background, faces_video_frames

SIDES = (128, 96, 64)
CROPS = (2.5, 2.0, 1.6)


def square(gray: np.ndarray, x0: float, y0: float, side: float, n: int) -> np.ndarray:
    """The square (x0, y0, side) of the frame scaled to n x n (black outside the frame), RGB in
    [-1, 1], as the tracker feeds it."""
    scale = n / side
    m = np.float32([[scale, 0, -x0 * scale], [0, scale, -y0 * scale]])
    crop = cv2.warpAffine(gray, m, (n, n), flags=cv2.INTER_AREA)
    return (cv2.merge((crop, crop, crop)).astype(np.float32) / 127.5 - 1)[None]


def invoke_ms(det: BlazeFaceDetector, n: int = 300) -> float:
    for _ in range(20):
        det.interpreter.invoke()
    t0 = time.perf_counter()
    for _ in range(n):
        det.interpreter.invoke()
    return (time.perf_counter() - t0) / n * 1000


def measure(det: BlazeFaceDetector, frames, spots, background, crop: float) -> dict:
    n = det.variant.size
    scores, ious = [], []
    for frame, ((x, y, w, h),) in frames:
        side = w * crop
        x0, y0 = x + w / 2 - side / 2, y + h / 2 - side / 2
        found = det.infer(square(frame, x0, y0, side, n))
        if found:
            (bx0, by0, bx1, by1), score = max(found, key=lambda f: f[1])
            scores.append(score)
            box = (x0 + bx0 * side, y0 + by0 * side, (bx1 - bx0) * side, (by1 - by0) * side)
            ious.append(iou(box, (x, y, w, h)))
    false = sum(bool(det.infer(square(background, sx, sy, s * crop, n))) for sx, sy, s in spots)
    return {
        "input": n,
        "crop": crop,
        "found": len(scores) / len(frames),
        "min_score": min(scores, default=0.0),
        "iou_p5": float(np.percentile(ious, 5)) if ious else 0.0,
        "iou_median": float(np.median(ious)) if ious else 0.0,
        "background_faces": false / len(spots),
        "invoke_ms": invoke_ms(det),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    cv2.setNumThreads(1)
    frames = [
        (cv2.cvtColor(f, cv2.COLOR_BGR2GRAY), boxes)
        for f, boxes in faces_video_frames(args.frames, faces=1, sides=(40, 300))
    ]
    background = cv2.cvtColor(coffee_background(), cv2.COLOR_BGR2GRAY)
    rng = np.random.default_rng(1)
    spots = [(rng.uniform(0, 560), rng.uniform(0, 400), rng.uniform(40, 300)) for _ in range(300)]
    path = default_bundle() / "blazeface_short.tflite"
    rows = []
    for n in SIDES:
        det = BlazeFaceDetector(path, "short", input_size=n)
        for crop in CROPS:
            rows.append(measure(det, frames, spots, background, crop))
            print(json.dumps(rows[-1]), flush=True)
    print(
        f"\n{len(frames)} frames, one face 40-300 px; {len(spots)} background crops\n"
        "| input px | crop / face | faces found | lowest score | IoU with the true box p5 / "
        "median | background crops seen as a face | invoke ms |\n|---|---|---|---|---|---|---|"
    )
    for r in rows:
        print(
            f"| {r['input']} | {r['crop']} | {100 * r['found']:.1f}% | {r['min_score']:.2f} | "
            f"{r['iou_p5']:.2f} / {r['iou_median']:.2f} | {100 * r['background_faces']:.1f}% | "
            f"{r['invoke_ms']:.3f} |"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
