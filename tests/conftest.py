"""Synthetic FER data: tests never need (or ship) FER2013."""

from __future__ import annotations

import gzip
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgefer.labels import FER7

SHARED_FER2013 = Path(__file__).resolve().parents[1].parent / "shared/data/fer2013/fer2013.csv.gz"


def synthetic_faces(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n random 48x48 uint8 images with labels cycling 0..6."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 48, 48), dtype=np.uint8), np.arange(n) % 7


def csv_rows(images, labels, usages) -> list[str]:
    return [
        f"{lab},{' '.join(map(str, img.ravel()))},{use}"
        for img, lab, use in zip(images, labels, usages)
    ]


def write_csv(path: Path, rows: list[str], header="emotion,pixels,Usage", gz=False) -> Path:
    text = "\n".join([header, *rows]) + "\n"
    if gz:
        with gzip.open(path, "wt") as f:
            f.write(text)
    else:
        path.write_text(text)
    return path


@pytest.fixture
def fer_csv(tmp_path) -> Path:
    """21 images: Training 14, PublicTest 7 (one of each class)... plus PrivateTest 7."""
    images, labels = synthetic_faces(28)
    usages = ["Training"] * 14 + ["PublicTest"] * 7 + ["PrivateTest"] * 7
    return write_csv(tmp_path / "fer.csv", csv_rows(images, labels, usages))


def write_folders(
    root: Path, splits=("train", "test"), per_class=3, named=True, size=64, color=True
) -> Path:
    """<root>/<split>/<class>/*.png|jpg, images larger than 48x48 and in colour."""
    rng = np.random.default_rng(1)
    for split in splits:
        for cid, name in enumerate(FER7):
            cdir = root / split / (name if named else str(cid))
            cdir.mkdir(parents=True)
            for i in range(per_class):
                shape = (size, size, 3) if color else (size, size)
                img = rng.integers(0, 256, shape, dtype=np.uint8)
                cv2.imwrite(str(cdir / f"{i}.{'png' if i % 2 else 'jpg'}"), img)
    return root


@pytest.fixture
def fer_folders(tmp_path) -> Path:
    return write_folders(tmp_path / "folders")


@pytest.fixture
def real_fer2013() -> Path:
    if not SHARED_FER2013.is_file():
        pytest.skip(f"real FER2013 not present at {SHARED_FER2013} (it is never committed)")
    return SHARED_FER2013


@pytest.fixture(scope="session")
def tiny_csv(tmp_path_factory) -> Path:
    """140 images (98 / 21 / 21) whose class is written into the pixels, so a model can learn it."""
    images, labels = synthetic_faces(140)
    for img, lab in zip(images, labels):
        img[:, :] //= 4
        img[lab * 6 : lab * 6 + 6, :] = 255
    usages = ["Training"] * 98 + ["PublicTest"] * 21 + ["PrivateTest"] * 21
    return write_csv(tmp_path_factory.mktemp("tiny") / "fer.csv", csv_rows(images, labels, usages))


@pytest.fixture(scope="session")
def tiny_run(tiny_csv, tmp_path_factory) -> Path:
    """seed-fcn7 trained on tiny_csv until it has learnt the class bands, once per session."""
    from tests.cli_helpers import run

    work = tmp_path_factory.mktemp("tiny_run")
    config = work / "mild.toml"
    config.write_text(
        "rotation = 0\nshift = 2\nzoom_min = 1.0\nzoom_max = 1.0\ndropout = 0.2\n"
        "patience = 0\nepochs = 8\nbatch_size = 8\n"
    )
    res = run(
        "train",
        "--arch",
        "seed-fcn7",
        "--data",
        tiny_csv,
        "--out",
        work / "run",
        "--config",
        config,
    )
    assert res.exit_code == 0, res.output
    return work / "run"


@pytest.fixture(scope="session")
def tiny_calib(tiny_csv, tmp_path_factory) -> Path:
    from edgefer import calibration
    from edgefer.data import load_fer
    from edgefer.labels import parse_task
    from edgefer.preprocess import Preprocessing

    out = tmp_path_factory.mktemp("calib") / "tiny.npz"
    calibration.save(
        calibration.build(
            load_fer(tiny_csv),
            "Training",
            parse_task("fer7"),
            Preprocessing(normalization="minus_one_one"),
            14,
            0,
        ),
        out,
    )
    return out


@pytest.fixture(scope="session")
def tiny_bundle(tiny_run, tiny_calib, tmp_path_factory) -> Path:
    from edgefer.converters.bundle import convert_bundle

    out = tmp_path_factory.mktemp("tiny_bundle") / "bundle"
    convert_bundle(
        tiny_run / "model.keras",
        out,
        ("tflite-fp32", "tflite-int8", "onnx-int8"),
        tiny_calib,
        log=lambda m: None,
    )
    return out


@pytest.fixture(scope="session")
def astronaut_bgr() -> np.ndarray:
    from skimage import data

    return cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)


@pytest.fixture(scope="session")
def face_video(tmp_path_factory) -> Path:
    from edgefer.samples import write_face_video

    return write_face_video(tmp_path_factory.mktemp("video") / "face.mp4", frames=40)


KNOWN_FORMATS = ("tflite-fp32", "tflite-fp16", "tflite-dynamic", "tflite-int8", "onnx", "onnx-int8")


def known_answer_bundle(work: Path, class_order=tuple(range(7))) -> Path:
    """Bundle (every format) of the known-answer model (tests/known_answer.py)."""
    from edgefer import calibration
    from edgefer.converters.bundle import convert_bundle
    from edgefer.data import load_fer
    from edgefer.labels import parse_task
    from edgefer.preprocess import Preprocessing
    from tests import known_answer

    csv = known_answer.write_csv(work / "known.csv")
    model = known_answer.save_model(work / "model.keras", class_order)
    calib = work / "calib.npz"
    calibration.save(
        calibration.build(
            load_fer(csv),
            "Training",
            parse_task("fer7"),
            Preprocessing(normalization="minus_one_one"),
            3,
            0,
        ),
        calib,
    )
    convert_bundle(model, work / "bundle", KNOWN_FORMATS, calib, log=lambda m: None)
    return work / "bundle"


@pytest.fixture(scope="session")
def known_bundle(tmp_path_factory) -> Path:
    return known_answer_bundle(tmp_path_factory.mktemp("known"))


@pytest.fixture(scope="session")
def known_csv(known_bundle) -> Path:
    return known_bundle.parent / "known.csv"


# The suite's tiers (README "Tests"): `-m "not services and not emulated and not field"` is the
# fast loop. CI, and the README's test command, run every tier.
TIER_OF_FOLDER = {"deploy": "services", "arm64": "emulated"}  # tests/field marks its own
SERVICE_FIXTURES = {"broker", "browser"}  # a real Mosquitto, a real chromium


def pytest_collection_modifyitems(config, items):
    tests = Path(__file__).parent
    for item in items:
        folder = Path(item.path).relative_to(tests).parts[0]
        tier = TIER_OF_FOLDER.get(folder)
        if tier is None and SERVICE_FIXTURES & set(item.fixturenames):
            tier = "services"
        if tier is not None:
            item.add_marker(tier)


# The deploy caches, shared by tests/deploy and tests/field (both deploy this checkout).
@pytest.fixture(scope="session")
def deploy_cache(request, tmp_path_factory) -> Path:
    """XDG_CACHE_HOME for edgefer's wheel and wheelhouse caches, kept between runs (in a
    temporary folder when pytest runs without its cache, -p no:cacheprovider)."""
    cache = getattr(request.config, "cache", None)
    if cache is None:
        return tmp_path_factory.mktemp("edgefer-deploy-cache")
    return Path(cache.mkdir("edgefer-deploy"))


@pytest.fixture(scope="session")
def device_wheel(deploy_cache) -> Path:
    """This checkout's edgefer wheel, built once per session by the deploy's own builder."""
    from edgefer.deploy.wheel import edgefer_wheel

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(deploy_cache))
        return edgefer_wheel()
