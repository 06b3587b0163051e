"""Face detectors (Haar, BlazeFace short and full range, blazeface-track) on the same frames,
one thread each, each behind the int8 expression model.

Frames: the 640x480 moving-face video of `edgefer/samples.py` (300 frames); two scenes with true
boxes ("1 face 40-300 px", "3 faces 40-100 px"); and 100 frames that each hold one LFW face
(scikit-image's subset, upscaled to 160 px) at a seeded place on the coffee photo. Per row:
detector ms p50/p95, end-to-end FPS on frames in memory and read from an mp4, recall against
full-frame Haar's boxes, against the union of full-frame Haar and full-range BlazeFace, and
against the true boxes; MACs and pixels per frame with Pi 4 / Pi 5 estimates; the share of each
stage for blazeface-track; for rows that carry expressions between reads (expression_every),
the label agreement with reading every face on every frame. For single-model BlazeFace rows
also the compute floor: the detector's and the expression model's `invoke` alone, and the FPS
that floor allows with one face a frame.

    python bench/bench_detectors.py [--frames 300] [--repeats 1] [--json out.json] [--bundle DIR]
        [--detectors haar,haar-roi,blazeface-short,blazeface-full,blazeface-track,...]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from tflite_macs import count_macs

from edgefer.bundled import NAMES, default_bundle, resolve_bundle
from edgefer.device.blazeface import VARIANTS, BlazeFaceDetector
from edgefer.device.blazeface_track import BlazeFaceTracker
from edgefer.device.detector import HaarDetector, iou
from edgefer.device.pipeline import Pipeline
from edgefer.device.pipeline_config import PipelineConfig
from edgefer.imaging import to_gray_u8
from edgefer.samples import face_video_frames, faces_video_frames, lfw_faces, write_face_video

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


def lfw_changing_frames(hold: int = 15, faces: int = 20):
    """A face that changes every `hold` frames at one place (drifting 1 px a frame): the first
    `faces` LFW faces in turn, upscaled to 160 px on the coffee photo. For expression_every:
    the tracker keeps following the place, so a carried label is wrong until the next read;
    15 frames is half a second at 30 FPS, the short end of how long an expression lasts."""
    from skimage import data

    background = cv2.resize(cv2.cvtColor(data.coffee(), cv2.COLOR_RGB2BGR), (640, 480))
    bigs = [
        cv2.resize(f, (LFW_SIDE, LFW_SIDE), interpolation=cv2.INTER_CUBIC)
        for f in lfw_faces()[:faces]
    ]
    frames = []
    for i in range(hold * faces):
        big = bigs[i // hold]
        x, y = 200 + i % 40, 150 + i % 30
        frame = background.copy()
        frame[y : y + LFW_SIDE, x : x + LFW_SIDE] = cv2.cvtColor(big, cv2.COLOR_GRAY2BGR)
        frames.append(frame)
    return frames


def labels_of(results) -> list[list[tuple]]:
    return [[(d.box, d.label) for d in r.detections] for r in results]


def label_agreement(reference, results) -> float:
    """Share of the faces found whose label is the one reading every face on every frame gives
    (the same detector, so the same boxes)."""
    same = total = 0
    for ref, got in zip(labels_of(reference), labels_of(results)):
        assert [b for b, _ in ref] == [b for b, _ in got], "the detector must not depend on reads"
        same += sum(a == b for (_, a), (_, b) in zip(ref, got))
        total += len(got)
    return same / max(total, 1)


# Rows: key -> (name, PipelineConfig fields). expression_every > 1 carries each tracked face's
# scores between reads (device/expression_memory.py); its row also gets the label agreement
# with the same detector reading every face on every frame.
ROWS = {
    "haar": ("haar (full frame)", {"detector": {"kind": "haar", "roi_search": {"enabled": False}}}),
    "haar-roi": ("haar (ROI search)", {"detector": {"kind": "haar"}}),
    "blazeface-short": (
        "blazeface-short",
        {"detector": {"kind": "blazeface", "blazeface_range": "short"}},
    ),
    "blazeface-full": (
        "blazeface-full",
        {"detector": {"kind": "blazeface", "blazeface_range": "full"}},
    ),
    "blazeface-track-128": (
        "blazeface-track as first landed (following at 128 px, tiles every cycle)",
        {
            "detector": {
                "kind": "blazeface-track",
                "track_input": 128,
                "track_crop": 2.5,
                "track_tile_cycles": 1,
            }
        },
    ),
    "blazeface-track": ("blazeface-track (default)", {}),
    "blazeface-track-e3": (
        "blazeface-track, expression every 3",
        {"detector": {"kind": "blazeface-track"}, "expression_every": 3},
    ),
}

# Published per-MAC figures for the Pi estimates (MACs only: a floor on the time, so the FPS is a
# ceiling). XNNPACK's README (google/XNNPACK, "Raspberry Pi", benchmarked 2022-02-08, RPi 4
# BCM2711 ARM64, 4 threads): INT8 MobileNet v1 1.0 (569M MACs) 24 ms, FP32 77 ms, i.e. 0.042 and
# 0.135 ms per million MACs on 4 cores; one core is at most 4x that. Low end for int8: the
# issue's 0.10 ms/MMAC; for fp32: 3x the 4-core figure. BlazeFace here has fp16 weights that
# TFLite dequantizes, so it runs in fp32; the expression model is int8. Pi 5: Raspberry Pi Ltd's
# launch claim of 2-3x the Pi 4's CPU performance (Oct 2023).
PI4_MS_PER_MMAC = {"int8": (0.10, 0.17), "fp32": (0.40, 0.54)}
PI5_SPEEDUP = (2.0, 3.0)


def pipelines(bundle, keys, **override):
    """(key, name, pipeline) per row; `override` replaces the rows' PipelineConfig fields."""
    for key in keys:
        name, config = ROWS[key]
        yield key, name, Pipeline.from_bundle(bundle, PipelineConfig(**(config | override)))


def run(pipe, frames):
    """(detect ms per frame, total ms per frame, boxes per frame, results)."""
    detect, total, boxes, results = [], [], [], []
    pipe.reset()
    pipe.memory.reads = 0
    if hasattr(pipe.detector, "stats"):
        pipe.detector.stats.update(dict.fromkeys(pipe.detector.stats, 0))
    for frame in frames:
        t0 = time.perf_counter()
        result = pipe(frame)
        total.append((time.perf_counter() - t0) * 1000)
        detect.append(result.timings.get("detect", float("nan")))
        boxes.append([d.box for d in result.detections])
        results.append(result)
    return np.array(detect), np.array(total), boxes, results


def run_decoding(pipe, path) -> float:
    """End-to-end FPS with the decode: frames read from the mp4 file one by one, as a camera
    source reads them."""
    pipe.reset()
    cap = cv2.VideoCapture(str(path))
    n = 0
    t0 = time.perf_counter()
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        pipe(frame)
        n += 1
    elapsed = time.perf_counter() - t0
    cap.release()
    return n / elapsed


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


def union_reference(frames, full: BlazeFaceDetector) -> list[list]:
    """Per frame: full-frame Haar's boxes, plus full-range BlazeFace's (Haar-framed) that no Haar
    box overlaps (IoU >= 0.3): the faces either exhaustive scan finds."""
    haar = HaarDetector()
    out = []
    for frame in frames:
        gray = to_gray_u8(frame)
        boxes = haar(gray)
        boxes += [b for b in full(gray) if all(iou(b, h) < 0.3 for h in boxes)]
        out.append(boxes)
    return out


def cost(pipe, results, macs: dict) -> dict:
    """MACs and pixels per frame over a pass (scheduled rescans included): the detector's model
    invokes (fp32) and the expression model's, once per face it read (int8: every face found,
    or fewer with expression_every). Pixels: what the detector's resizes read from the frame
    plus its models' input pixels, and per face read the expression crop's 48x48. None for Haar
    (its cascade is not MACs)."""
    frames = len(results)
    faces = sum(len(r.detections) for r in results) / frames
    reads = pipe.memory.reads / frames
    expr = reads * macs["expression"]
    side = 48
    if isinstance(pipe.detector, BlazeFaceTracker):
        st = pipe.detector.stats
        short = st["tiles"] + st["verify"]
        # The follow step's graph at its own input side: every layer's MACs scale with its area.
        follow = st["crops"] * (pipe.detector.follower.variant.size / 128) ** 2
        det = (st["full"] * macs["full"] + (short + follow) * macs["short"]) / frames
        pixels = (st["pixels_read"] + st["full"] * 192**2 + (short + follow) * 128**2) / frames
    elif isinstance(pipe.detector, BlazeFaceDetector):
        det = macs[{v: k for k, v in VARIANTS.items()}[pipe.detector.variant]]
        pixels = 640 * 480 + pipe.detector.variant.size**2
    else:
        return {"faces": faces, "reads": reads, "expression_mmacs": expr / 1e6}
    pixels += reads * side * side
    ms4 = [
        det / 1e6 * PI4_MS_PER_MMAC["fp32"][i] + expr / 1e6 * PI4_MS_PER_MMAC["int8"][i]
        for i in (0, 1)
    ]
    return {
        "faces": faces,
        "reads": reads,
        "detector_mmacs": det / 1e6,
        "expression_mmacs": expr / 1e6,
        "mmacs": (det + expr) / 1e6,
        "kpixels": pixels / 1e3,
        "pi4_fps": [1000 / ms4[1], 1000 / ms4[0]],
        "pi5_fps": [1000 / ms4[1] * PI5_SPEEDUP[0], 1000 / ms4[0] * PI5_SPEEDUP[1]],
    }


def fps_cell(passes: list[float]) -> str:
    """The median FPS, with the range when there was more than one pass."""
    median = f"{np.median(passes):.0f}"
    return median if len(passes) == 1 else f"{median} ({min(passes):.0f}–{max(passes):.0f})"


def range_cell(lo_hi) -> str:
    return f"{lo_hi[0]:.0f}–{lo_hi[1]:.0f}"


def stage_shares(results, decode_ms: float, stats: dict | None) -> dict:
    """Mean ms per frame of each stage (the decode timed on its own), for the share table."""
    n = len(results)
    mean = lambda k: sum(r.timings.get(k, 0.0) for r in results) / n
    stages = {"decode": decode_ms, "detect": mean("detect")}
    if stats:
        for k in ("crops", "full", "tiles"):
            stages[f"detect: {k}"] = stats[f"{k}_ms"] / n
    stages |= {k: mean(k) for k in ("preprocess", "inference", "postprocess")}
    return stages


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="video passes per detector, the detectors taking turns; FPS is their median",
    )
    ap.add_argument(
        "--bundle",
        type=resolve_bundle,
        default=default_bundle(),
        help="bundle directory or bundled name (default: edge)",
    )
    ap.add_argument(
        "--detectors",
        default=",".join(ROWS),
        type=lambda v: [d for d in v.split(",") if d],
        help=f"comma-separated, of {', '.join(ROWS)}",
    )
    args = ap.parse_args()
    if args.repeats < 1:
        ap.error(f"--repeats {args.repeats}: expected 1 or more")
    if not args.bundle.is_dir():
        ap.error(
            f"--bundle {args.bundle}: expected a bundle directory or one of {', '.join(NAMES)}"
        )
    unknown = sorted(set(args.detectors) - set(ROWS))
    if unknown or not args.detectors:
        given = ", ".join(unknown) if unknown else "none given"
        ap.error(f"--detectors: {given}; expected a comma-separated subset of {', '.join(ROWS)}")
    cv2.setNumThreads(1)
    video = list(face_video_frames(args.frames))
    scenes = {
        "1 face 40–300 px": list(faces_video_frames(args.frames, faces=1, sides=(40, 300))),
        "3 faces 40–100 px": list(faces_video_frames(args.frames, faces=3, sides=(40, 100))),
    }
    lfw, lfw_boxes = lfw_frames()
    agreement_scenes = {"video": video, "LFW faces changing every 15 frames": lfw_changing_frames()}
    haar = HaarDetector()
    haar_video = [haar(to_gray_u8(f)) for f in video]
    full = BlazeFaceDetector(args.bundle / "blazeface_full.tflite", "full")
    union = {"video": union_reference(video, full)}
    union |= {k: union_reference([f for f, _ in v], full) for k, v in scenes.items()}
    # The union's boxes that are a true face (the scenes' true boxes are known): the rest are
    # the exhaustive scans' false positives, which no detector should be asked to find.
    union_true = {
        k: [
            [u for u in us if any(iou(u, t) >= 0.3 for t in ts)] for us, (_, ts) in zip(union[k], v)
        ]
        for k, v in scenes.items()
    }
    macs = {
        "expression": count_macs(args.bundle / "model_int8.tflite")["macs"],
        "short": count_macs(args.bundle / "blazeface_short.tflite")["macs"],
        "full": count_macs(args.bundle / "blazeface_full.tflite")["macs"],
    }
    tmp = tempfile.TemporaryDirectory()
    mp4 = write_face_video(Path(tmp.name) / "face.mp4", frames=args.frames)
    t0 = time.perf_counter()
    cap, n = cv2.VideoCapture(str(mp4)), 0
    while cap.read()[0]:
        n += 1
    decode_ms = (time.perf_counter() - t0) * 1000 / max(n, 1)
    pipes = list(pipelines(args.bundle, args.detectors))
    for _, _, pipe in pipes:
        run(pipe, video[:10])  # warm-up: first-call allocations are not what a camera sees
    passes = {key: [] for key, _, _ in pipes}
    decoded = {key: [] for key, _, _ in pipes}
    for _ in range(args.repeats):  # the detectors take turns: the machine's load drifts
        for key, _, pipe in pipes:
            passes[key].append(run(pipe, video))
            decoded[key].append(run_decoding(pipe, mp4))
    rows = []
    for key, name, pipe in pipes:
        detect = np.concatenate([p[0] for p in passes[key]])
        fps = [1000 / float(np.mean(p[1])) for p in passes[key]]
        found = passes[key][0][2]
        hits, n = matched(haar_video, found)
        u_hits, u_n = matched(union["video"], found)
        row = {
            "detector": name,
            "detect_p50_ms": float(np.median(detect)),
            "detect_p95_ms": float(np.percentile(detect, 95)),
            "fps": float(np.median(fps)),
            "fps_passes": fps,
            "fps_decoded": float(np.median(decoded[key])),
            "fps_decoded_passes": decoded[key],
            "haar_boxes_found": hits / max(n, 1),
            "union_recall": {"video": u_hits / max(u_n, 1)},
            "true_recall": {},
            "union_true_recall": {},
            "cost": {},
            "video_faces_per_frame": float(np.mean([len(b) for b in found])),
        }
        for scene, frames in scenes.items():
            _, _, boxes, results = run(pipe, [f for f, _ in frames])
            u_hits, u_n = matched(union[scene], boxes)
            t_hits, t_n = matched([t for _, t in frames], boxes)
            row["union_recall"][scene] = u_hits / max(u_n, 1)
            row["true_recall"][scene] = t_hits / t_n
            r_hits, r_n = matched(union_true[scene], boxes)
            row["union_true_recall"][scene] = r_hits / max(r_n, 1)
            row["cost"][scene] = cost(pipe, results, macs)
            if isinstance(pipe.detector, BlazeFaceTracker) and scene.startswith("1"):
                stats = dict(pipe.detector.stats)
                row["stages_ms"] = stage_shares(results, decode_ms, stats)
        if ROWS[key][1].get("expression_every", 1) > 1:
            (_, _, every_frame), *_ = pipelines(args.bundle, [key], expression_every=1)
            row["label_agreement"] = {
                scene: label_agreement(run(every_frame, frames)[3], run(pipe, frames)[3])
                for scene, frames in agreement_scenes.items()
            }
        _, _, lfw_found, _ = run(pipe, lfw)
        lfw_hits, lfw_n = matched([[b] for b in lfw_boxes], lfw_found)
        row["lfw_recall"] = lfw_hits / lfw_n
        if hasattr(pipe.detector, "interpreter"):
            row |= compute_floor(pipe)
        rows.append(row)
        print(json.dumps(row), flush=True)
    one, three = scenes
    print(
        f"\n{len(video)} video frames 640x480 (+ {one}, {three}: {args.frames} frames each), "
        f"{len(lfw)} LFW frames; one thread; {args.repeats} passes per detector, taking turns; "
        f"decode alone {decode_ms:.2f} ms/frame; load average {os.getloadavg()[0]:.2f} at the end"
    )
    print(
        "| detector | detect p50 ms | detect p95 ms | FPS in memory | FPS with decode | "
        f"finds Haar's boxes | recall vs union: video / {one} / {three} | "
        f"true faces found: {one} / {three} | LFW recall | faces/frame | "
        "M MACs/frame: 1 face / 3 faces | k pixels/frame: 1 / 3 | Pi 4 est. FPS (1 face) | "
        "Pi 5 est. FPS (1 face) | models alone ms (FPS ceiling) |"
    )
    print("|---" * 15 + "|")
    for r in rows:
        floor = (
            f"{r['detector_invoke_ms']:.2f} + {r['expression_invoke_ms']:.2f} ({r['fps_ceiling']:.0f})"
            if "fps_ceiling" in r
            else "—"
        )
        c1, c3 = r["cost"][one], r["cost"][three]
        has = "mmacs" in c1
        mm = (
            f"{c1['mmacs']:.0f} / {c3['mmacs']:.0f}"
            if has
            else (f"Haar + {c1['expression_mmacs']:.0f} / Haar + {c3['expression_mmacs']:.0f}")
        )
        px = f"{c1['kpixels']:.0f} / {c3['kpixels']:.0f}" if has else "—"
        pi4 = range_cell(c1["pi4_fps"]) if has else "—"
        pi5 = range_cell(c1["pi5_fps"]) if has else "—"
        ur, tr = r["union_recall"], r["true_recall"]
        print(
            f"| {r['detector']} | {r['detect_p50_ms']:.2f} | {r['detect_p95_ms']:.2f} | "
            f"{fps_cell(r['fps_passes'])} | {fps_cell(r['fps_decoded_passes'])} | "
            f"{100 * r['haar_boxes_found']:.1f}% | "
            f"{100 * ur['video']:.1f}% / {100 * ur[one]:.1f}% / {100 * ur[three]:.1f}% | "
            f"{100 * tr[one]:.1f}% / {100 * tr[three]:.1f}% | {100 * r['lfw_recall']:.0f}% | "
            f"{r['video_faces_per_frame']:.2f} | {mm} | {px} | {pi4} | {pi5} | {floor} |"
        )
    print()
    for k, us in union_true.items():
        total = sum(map(len, union[k]))
        false = total - sum(map(len, us))
        print(f"Union reference, {k}: {total} boxes, {false} of them on no true face.")
    print("Recall of the union's true faces (1 face / 3 faces):")
    for r in rows:
        ut = r["union_true_recall"]
        print(f"- {r['detector']}: {100 * ut[one]:.1f}% / {100 * ut[three]:.1f}%")
    for r in rows:
        if "label_agreement" in r:
            agree = ", ".join(f"{k} {100 * v:.1f}%" for k, v in r["label_agreement"].items())
            print(f"Labels of {r['detector']} as reading every face every frame: {agree}")
    for r in rows:
        if "stages_ms" in r:
            total = sum(v for k, v in r["stages_ms"].items() if ":" not in k)
            print(f"\nStages of {r['detector']} ({one}), mean ms per frame (share of the total):")
            for k, v in r["stages_ms"].items():
                print(f"- {k}: {v:.3f} ms ({100 * v / total:.0f}%)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
