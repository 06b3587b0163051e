"""edgefer side by side with the `fer` package, on the same images and the same frames.

Models: edgefer's bundled int8 TFLite, fer's Keras model and fer's quantized TFLite, each fed
FER2013's PrivateTest faces (48x48) the way that model expects: top-1 and per-face latency
(batch 1, p50/p95). Pipelines: end-to-end FPS on the same 640x480 face video
(`edgefer/samples.py`, frames already decoded) of `fer.FER(mtcnn=False).detect_emotions` (its
Haar path, with its TFLite and with its Keras model) and of edgefer's pipeline with each detector.
One thread everywhere.

fer pins opencv-contrib-python and pulls TensorFlow and torch, so it runs in its own venv: this
script writes the inputs to a temporary .npz and runs bench/peers/fer_side.py with that venv's
python. Make the venv once:

    python -m venv /work/peer-venv && /work/peer-venv/bin/pip install -r bench/peers/requirements.txt

    python bench/compare_peers.py --data ../shared/data/fer2013/fer2013.csv.gz \\
        --peer-python /work/peer-venv/bin/python [--pause PID] [--json out.json]

`--pause PID` stops another process (SIGSTOP) while the timings run and always resumes it
(SIGCONT) afterwards: on a 2-core machine a training job in the background makes them noise.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from bench_detectors import pipelines, run  # same folder: the same FPS measurement

from edgefer.bundled import default_bundle
from edgefer.data import load_fer
from edgefer.device.backends import open_runtime
from edgefer.labels import FER7
from edgefer.preprocess import Preprocessing

PEER_SCRIPT = Path(__file__).parent / "peers" / "fer_side.py"
VENV_HOWTO = (
    "make the fer venv once: python -m venv /work/peer-venv && "
    "/work/peer-venv/bin/pip install -r bench/peers/requirements.txt; "
    "then pass --peer-python /work/peer-venv/bin/python"
)


@contextlib.contextmanager
def paused(pids: list[int]):
    """SIGSTOP the given processes for the duration, SIGCONT them after, whatever happens
    (an exception, Ctrl-C, SIGTERM): a process left stopped would be worse than noisy timings."""
    for pid in pids:
        if pid in (os.getpid(), os.getppid()):
            raise SystemExit(f"--pause {pid}: that is this process or its parent")
    old = signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    stopped = []
    try:
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
            stopped.append(pid)
        yield
    finally:
        for pid in stopped:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        signal.signal(signal.SIGTERM, old)


def peer(python: str, inputs: Path, task: str, latency_n: int) -> dict:
    """Run fer_side.py in the peer venv; its last stdout line is the JSON result."""
    proc = subprocess.run(
        [python, str(PEER_SCRIPT), str(inputs), task, "--latency-n", str(latency_n)],
        check=False,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-3000:])
        raise SystemExit(f"fer side failed ({task}, exit {proc.returncode}); {VENV_HOWTO}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def to_fer7(predictions, labels) -> np.ndarray:
    """Class indices in a model's own label order -> FER2013 ids, by label name: a model whose
    order differs from FER2013's would otherwise be scored against the wrong classes."""
    return np.array([FER7.index(name) for name in labels])[np.asarray(predictions)]


def latency_ms(fn, xs, warm_up: int = 20) -> list[float]:
    for x in xs[:warm_up]:
        fn(x)
    times = []
    for x in xs:
        t0 = time.perf_counter()
        fn(x)
        times.append((time.perf_counter() - t0) * 1000)
    return times


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data/fer2013/fer2013.csv.gz")
    ap.add_argument("--peer-python", help="python of the venv with fer installed")
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--latency-n", type=int, default=500, help="faces timed per model")
    ap.add_argument("--pause", type=int, action="append", default=[], metavar="PID")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    if not args.peer_python:
        raise SystemExit(f"--peer-python is required: {VENV_HOWTO}")
    cv2.setNumThreads(1)
    from edgefer.samples import face_video_frames

    test = load_fer(args.data).split("PrivateTest")
    frames = np.stack(list(face_video_frames(args.frames)))
    bundle = default_bundle()
    runtime, manifest, artifact = open_runtime(bundle, "cpu", threads=1)
    prep = Preprocessing.from_dict(manifest.preprocessing.model_dump())
    ours_x = prep.apply(test.images)

    with tempfile.TemporaryDirectory() as tmp:
        inputs = Path(tmp) / "inputs.npz"
        np.savez(inputs, faces=test.images, frames=frames)
        # Accuracy needs no quiet machine; timings do.
        fer_acc = peer(args.peer_python, inputs, "accuracy", args.latency_n)
        ours_pred = np.argmax(runtime.scores(ours_x), 1)
        with paused(args.pause):
            fer_time = peer(args.peer_python, inputs, "timing", args.latency_n)
            ours_lat = latency_ms(runtime.scores, ours_x[: args.latency_n, None])
            ours_fps = {}
            for _, name, pipe in pipelines(
                bundle, ["haar", "haar-roi", "blazeface-short", "blazeface-full"]
            ):
                run(pipe, frames[:10])  # warm-up, as bench_detectors.py
                _, total, found, _ = run(pipe, frames)
                ours_fps[name] = {"frame_ms": total.tolist(), "faces": [len(b) for b in found]}

    truth = test.labels
    majority = np.bincount(truth).max() / len(truth)
    fer_input = "64x64 gray (bilinear up), [-1, 1] float"
    table = [  # name, input, predictions in the model's label order, its labels, latencies, bytes
        (
            "edgefer `edge`, int8 TFLite",
            f"{prep.size}x{prep.size} gray, [-1, 1] quantized to int8",
            ours_pred,
            manifest.labels,
            ours_lat,
            (Path(bundle) / artifact.file).stat().st_size,
        ),
        (
            "fer Keras (mini-Xception, float)",
            fer_input,
            fer_acc["keras"],
            fer_acc["labels"],
            fer_time["latency_ms"]["keras"],
            fer_time["file_bytes"]["keras"],
        ),
        (
            "fer quantized TFLite (int8 weights, float activations)",
            fer_input,
            fer_acc["tflite"],
            fer_acc["labels"],
            fer_time["latency_ms"]["tflite"],
            fer_time["file_bytes"]["tflite"],
        ),
    ]
    models, preds = [], []
    for name, input_, pred, labels, lat, size in table:
        preds.append(to_fer7(pred, labels))
        top1 = float(np.mean(preds[-1] == truth))
        if top1 <= majority:
            print(f"WARNING {name}: top-1 {top1:.1%} <= always-majority {majority:.1%}: labels?")
        models.append(
            {
                "model": name,
                "input": input_,
                "file_kib": size / 1024,
                "top1": top1,
                "p50_ms": float(np.median(lat)),
                "p95_ms": float(np.percentile(lat, 95)),
            }
        )
    fer_agree = float(np.mean(preds[1] == preds[2]))
    fer_call = "fer `FER(mtcnn=False).detect_emotions`"
    e2e = [
        (
            f"{fer_call}, quantized TFLite (default)",
            "haar (full frame)",
            fer_time["pipelines"]["tflite"],
        ),
        (
            f"{fer_call}, Keras (`use_tflite=False`)",
            "haar (full frame)",
            fer_time["pipelines"]["keras"],
        ),
    ] + [("edgefer `Pipeline`, int8 TFLite", d, r) for d, r in ours_fps.items()]
    pipes = [
        {
            "pipeline": name,
            "detector": det,
            "fps": 1000 / float(np.mean(r["frame_ms"])),
            "faces_per_frame": float(np.mean(r["faces"])),
        }
        for name, det, r in e2e
    ]

    print(
        f"\nPrivateTest: {len(truth)} images (always-majority {majority:.1%}); "
        f"{len(frames)} video frames 640x480; one thread; {fer_time['versions']}"
    )
    print("| model | input | file KiB | PrivateTest top-1 | per-face p50 ms | p95 ms |")
    print("|---|---|---|---|---|---|")
    for m in models:
        print(
            f"| {m['model']} | {m['input']} | {m['file_kib']:.0f} | {100 * m['top1']:.2f}% | "
            f"{m['p50_ms']:.2f} | {m['p95_ms']:.2f} |"
        )
    print(f"\nfer Keras vs fer quantized TFLite: same top class on {100 * fer_agree:.2f}%\n")
    print("| pipeline | face detector | end-to-end FPS | faces/frame |")
    print("|---|---|---|---|")
    for p in pipes:
        print(
            f"| {p['pipeline']} | {p['detector']} | {p['fps']:.1f} | {p['faces_per_frame']:.2f} |"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "models": models,
                    "fer_keras_tflite_agreement": fer_agree,
                    "pipelines": pipes,
                    "peer_versions": fer_time["versions"],
                },
                f,
                indent=1,
            )


if __name__ == "__main__":
    main()
