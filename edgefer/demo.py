"""`edgefer demo`: the whole toolkit on the bundled model, offline, in under a minute.

float .keras -> calibration on real faces -> int8 TFLite + int8 ONNX -> the format table -> the
device pipeline on a video of a real face, with per-stage latency. Faces come from FER2013 when
`--data` is given (then the table has top-1 on PrivateTest), otherwise from the LFW faces that
scikit-image ships (agreement with the float model only: those faces have no expression labels).
"""

from __future__ import annotations

import time
from pathlib import Path

from edgefer import calibration
from edgefer.bundled import default_bundle
from edgefer.device.formats import HOST_INT8
from edgefer.errors import EdgeferError
from edgefer.labels import parse_task
from edgefer.preprocess import Preprocessing

FORMATS = HOST_INT8  # the int8 formats any machine runs: tflite-int8, onnx-int8


def faces_and_calibration(data_path: str | None, source_model: Path):
    """(calibration set, face images to score, their labels or None, where they come from)."""
    from edgefer.data import load_fer
    from edgefer.evaluate import KerasRuntime
    from edgefer.samples import lfw_faces
    from edgefer.train.data import task_part

    task = parse_task("fer7")
    prep = Preprocessing(normalization="minus_one_one")
    if data_path:
        data = load_fer(data_path)
        test = task_part(data.split("PrivateTest"), task, "PrivateTest")
        calib = calibration.build(data, "Training", task, prep, per_class=15, seed=0)
        return calib, test.images, test.labels, f"{data_path} (PrivateTest)"
    faces = lfw_faces()
    x = prep.apply(faces)
    # No expression labels: each face is filed under the float model's own answer, which is all
    # calibration needs (a representative range of real face pixels).
    y = KerasRuntime(source_model).scores(x).argmax(axis=1)
    source = {"path": "scikit-image lfw_subset (faces)", "sha256": None, "split": "all"}
    calib = calibration.from_samples(x, y, task, prep, source)
    return calib, faces, None, "scikit-image's LFW faces"


def run_demo(out: Path, data_path: str | None, frames: int, log) -> dict:
    from edgefer.benchmark import score_formats
    from edgefer.converters import detectors
    from edgefer.converters.bundle import convert_bundle
    from edgefer.device.pipeline import Pipeline, frames_with_results
    from edgefer.device.sources import open_source
    from edgefer.device.stats import summarize
    from edgefer.samples import write_face_video

    t0 = time.perf_counter()
    source_model = default_bundle() / "model.keras"
    if not source_model.is_file():
        raise EdgeferError(f"{source_model}: the bundled float model is missing; reinstall edgefer")
    out.mkdir(parents=True, exist_ok=True)
    log(f"[1/4] calibration faces ({'FER2013' if data_path else 'LFW, offline'})")
    calib_path = out / "calibration.npz"
    calib, images, labels, where = faces_and_calibration(data_path, source_model)
    calibration.save(calib, calib_path)
    # With the BlazeFace weights the pipeline runs the default detector, blazeface-track;
    # without them ([detectors] not installed) Haar, which needs none.
    faces = detectors.DETECTORS if detectors.installed() else ()
    log(f"[2/4] converting the bundled float model to {', '.join(FORMATS + faces)}")
    bundle = out / "bundle"
    # The LFW set cannot cover every expression: that check is a warning here, not an error.
    convert_bundle(
        source_model,
        bundle,
        FORMATS,
        calib_path,
        force=True,
        detectors=faces,
        log=lambda m: log(f"      {m}"),
    )
    log(f"[3/4] scoring every format on {len(images):,} faces from {where}")
    table = score_formats(bundle, images, labels, latency_runs=50, log=log)
    log(f"[4/4] the device pipeline on a {frames}-frame video of a real face")
    video = write_face_video(out / "face.mp4", frames=frames)
    pipe = Pipeline.from_bundle(bundle)
    timings, shown = [], []
    for frame, result in frames_with_results(pipe, open_source(str(video), None)):
        timings.append(result.timings)
        if frame.index % max(1, frames // 5) == 0:
            shown.append((frame.name, result.detections))
    return {
        "out": str(out),
        "source": where,
        "table": table,
        "shown": shown,
        "detector": pipe.detector_kind,
        "pipeline": summarize(timings),
        "seconds": time.perf_counter() - t0,
    }


def faces_line(detections) -> str:
    return "; ".join(f"{d.label} {d.score:.2f} at {d.box}" for d in detections) or "no face"
