"""How each face detector frames a face, and what that framing costs the expression model.

The expression model learned FER2013's crops. Each FER2013 image is shown to a detector as a
frame (upscaled 4x, centred on a gray 384x384 canvas), so the right crop is known exactly: the
embedded 192x192 square. Per detector this measures recall, where its box sits against that
square (side ratio and vertical offset, medians), and the bundled int8 model's top-1 on the
detector's crop against top-1 on the original image.

Selection on PublicTest, report on PrivateTest: the BlazeFace framing (`FRAMING` in
device/blazeface.py) is fitted on PublicTest and then scored on PrivateTest.

    python bench/bench_framing.py --data ../shared/data/fer2013/fer2013.csv.gz [--per-split 600]
"""

from __future__ import annotations

import argparse
import json

import cv2
import numpy as np
from tqdm import tqdm

from edgefer.bundled import default_bundle
from edgefer.data import load_fer
from edgefer.device.backends import open_runtime, verify_file
from edgefer.device.blazeface import BlazeFaceDetector, haar_framing
from edgefer.device.detector import HaarDetector
from edgefer.device.pipeline import crop_face
from edgefer.preprocess import Preprocessing

SCALE, CANVAS = 4, 384
FACE = ((CANVAS - 48 * SCALE) // 2,) * 2 + (48 * SCALE,) * 2  # x, y, w, h of the known crop


def frame_of(image: np.ndarray) -> np.ndarray:
    big = cv2.resize(image, (48 * SCALE,) * 2, interpolation=cv2.INTER_CUBIC)
    canvas = np.full((CANVAS, CANVAS), 128, np.uint8)
    x, y, w, h = FACE
    canvas[y : y + h, x : x + w] = big
    return canvas


def detectors(bundle, manifest):
    out = {"haar": HaarDetector()}
    for d in manifest.detectors:
        path = verify_file(bundle, d)
        out[f"blazeface-{d.variant}"] = BlazeFaceDetector(
            path, d.variant, framing={"scale": 1, "shift_y": 0}
        )
    return out


def central_box(boxes):
    """The box whose centre is inside the known face square and nearest its centre, or None."""
    x, y, w, h = FACE
    cx, cy = x + w / 2, y + h / 2
    inside = [b for b in boxes if x < b[0] + b[2] / 2 < x + w and y < b[1] + b[3] / 2 < y + h]
    return min(
        inside,
        key=lambda b: (b[0] + b[2] / 2 - cx) ** 2 + (b[1] + b[3] / 2 - cy) ** 2,
        default=None,
    )


def geometry(box) -> tuple[float, float]:
    """(scale, shift_y) that turn this box into the known square: side ratio, centre offset in
    units of the box's side."""
    _, y, w, h = FACE
    side = max(box[2], box[3])
    return w / side, ((y + h / 2) - (box[1] + box[3] / 2)) / side


def measure(images, labels, detector, runtime, prep, framing=None) -> dict:
    direct = runtime.scores(prep.apply(images)).argmax(1)
    found, crops, geo = [], [], []
    for i, img in enumerate(tqdm(images, leave=False, mininterval=1)):
        frame = frame_of(img)
        if isinstance(detector, BlazeFaceDetector):
            boxes = [b for b, _ in detector.detect(frame)]  # as detected, before any framing
        else:
            boxes = detector(frame)
        box = central_box(boxes)
        if box is None:
            continue
        geo.append(geometry(box))
        if framing is not None:
            box = haar_framing(box, framing)
        found.append(i)
        crops.append(crop_face(frame, box, 0.0, prep.size))
    found = np.array(found, int)
    via = runtime.scores(prep.apply(np.stack(crops))).argmax(1) if crops else np.array([])
    geo = np.array(geo) if geo else np.zeros((0, 2))
    return {
        "images": len(images),
        "recall": len(found) / len(images),
        "top1_direct_on_found": float((direct[found] == labels[found]).mean())
        if len(found)
        else None,
        "top1_via_detector": float((via == labels[found]).mean()) if len(found) else None,
        "scale_median": float(np.median(geo[:, 0])) if len(geo) else None,
        "shift_y_median": float(np.median(geo[:, 1])) if len(geo) else None,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--per-split", type=int, default=600, help="images per split (seeded sample)")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    bundle = default_bundle()
    runtime, manifest, _ = open_runtime(bundle, "cpu")
    prep = Preprocessing.from_dict(manifest.preprocessing.model_dump())
    data = load_fer(args.data)
    rng = np.random.default_rng(0)
    splits = {}
    for split in ("PublicTest", "PrivateTest"):
        part = data.split(split)
        idx = np.sort(
            rng.choice(len(part.labels), min(args.per_split, len(part.labels)), replace=False)
        )
        splits[split] = (part.images[idx], part.labels[idx])
    results = {}
    for name, det in detectors(bundle, manifest).items():
        fit = measure(*splits["PublicTest"], det, runtime, prep)
        row = {
            "PublicTest": fit,
            "PrivateTest": measure(*splits["PrivateTest"], det, runtime, prep),
        }
        if name.startswith("blazeface"):
            framing = {
                "scale": round(fit["scale_median"], 2),
                "shift_y": round(fit["shift_y_median"], 3),
            }
            row["fitted_framing"] = framing
            row["PrivateTest_framed"] = measure(*splits["PrivateTest"], det, runtime, prep, framing)
        results[name] = row
        print(name, json.dumps(row, indent=1), flush=True)
    print(
        "\n| detector | framing | recall | top-1 direct | top-1 via detector | box side / crop | centre offset |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, row in results.items():
        variants = [("as detected", row["PrivateTest"])]
        if "PrivateTest_framed" in row:
            variants.append((f"fitted {row['fitted_framing']}", row["PrivateTest_framed"]))
        for label, r in variants:
            print(
                f"| {name} | {label} | {100 * r['recall']:.1f}% | {100 * r['top1_direct_on_found']:.1f}% | "
                f"{100 * r['top1_via_detector']:.1f}% | {1 / r['scale_median']:.2f} | {r['shift_y_median']:+.3f} |"
            )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
