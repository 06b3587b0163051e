"""Benchmark: >= 60 FPS end to end on a 640x480 video of a moving face, with face recall within
2 points of full-frame detection on every frame (OpenCV and the interpreter on one thread each).

    python bench/bench_device.py --model BUNDLE [--frames 300] [--video VIDEO]

Recall = share of the full-frame detector's boxes matched by the fast setting's boxes at IoU >= 0.5.
Prints a table (naive vs fast) and JSON; exit 1 on a miss.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def run(bundle: str, video: str, frames: int, roi_search: bool) -> tuple[list, list]:
    from edgefer.device.pipeline import Pipeline
    from edgefer.device.pipeline_config import PipelineConfig
    from edgefer.device.sources import open_source

    config = PipelineConfig(detector={"kind": "haar", "roi_search": {"enabled": roi_search}})
    pipe = Pipeline.from_bundle(bundle, config)
    boxes, timings = [], []
    for frame in open_source(video, frames):
        result = pipe(frame.image)
        result.timings["decode"] = frame.decode_ms
        result.timings["total"] += frame.decode_ms
        boxes.append([d.box for d in result.detections])
        timings.append(result.timings)
    return boxes, timings


def recall(reference: list, candidate: list) -> float:
    from edgefer.device.detector import iou

    total = sum(len(r) for r in reference)
    hit = sum(
        any(iou(b, c) >= 0.5 for c in cand) for ref, cand in zip(reference, candidate) for b in ref
    )
    return hit / total if total else 1.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="bundle directory")
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--video", help="640x480 video (default: make one from scikit-image photos)")
    ap.add_argument("--min-fps", type=float, default=60.0)
    ap.add_argument("--max-recall-loss", type=float, default=0.02)
    args = ap.parse_args()
    import cv2

    from edgefer.cli.common import format_table
    from edgefer.device.stats import summarize
    from edgefer.samples import write_face_video

    cv2.setNumThreads(1)
    with tempfile.TemporaryDirectory() as tmp:
        video = args.video or str(write_face_video(Path(tmp) / "face.mp4", args.frames))
        naive_boxes, naive_t = run(args.model, video, args.frames, False)
        fast_boxes, fast_t = run(args.model, video, args.frames, True)
    rows, out = [], {}
    for name, boxes, t in (("naive", naive_boxes, naive_t), ("fast", fast_boxes, fast_t)):
        s = summarize(t)
        out[name] = {
            "fps": round(s["fps"], 1),
            "detect_p50_ms": round(s["stages"]["detect"]["p50"], 2),
            "total_p50_ms": round(s["stages"]["total"]["p50"], 2),
            "frames_with_face": sum(bool(b) for b in boxes),
            "recall": round(recall(naive_boxes, boxes), 4),
        }
        rows.append(
            [
                name,
                out[name]["fps"],
                out[name]["detect_p50_ms"],
                out[name]["total_p50_ms"],
                out[name]["frames_with_face"],
                f"{100 * out[name]['recall']:.1f}",
            ]
        )
    print(
        format_table(
            ["setting", "FPS", "detect p50 ms", "total p50 ms", "frames with face", "recall %"],
            rows,
        )
    )
    ok = out["fast"]["fps"] >= args.min_fps and out["fast"]["recall"] >= 1 - args.max_recall_loss
    print(
        json.dumps(
            {
                **out,
                "frames": len(naive_boxes),
                "target": f"fast >= {args.min_fps} FPS, recall >= {1 - args.max_recall_loss:.2f}",
                "pass": ok,
            }
        )
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
