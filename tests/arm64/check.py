"""The known-answer check, run by the same file on the emulated Pi and on this machine: the x86
run is the reference the Pi's numbers are compared with.

    python check.py WORK OUT.json

WORK holds inputs.npz (known-answer images and colour frames, real face crops) and known/ (the
known-answer bundle in every format). Only the base install is imported (numpy, OpenCV, the
TFLite runtime, edgefer): this runs on the Pi's venv, where the tests package is not installed.
Every bundle format is tried; one whose runtime is not installed is reported as skipped with the
reason, so the caller decides which formats the device must run.
"""

from __future__ import annotations

import json
import platform
import struct
import sys
from pathlib import Path

import numpy as np

# Bit n of AT_HWCAP on arm64 Linux (arch/arm64/include/uapi/asm/hwcap.h).
HWCAP = (
    "fp",
    "asimd",
    "evtstrm",
    "aes",
    "pmull",
    "sha1",
    "sha2",
    "crc32",
    "atomics",
    "fphp",
    "asimdhp",
    "cpuid",
    "asimdrdm",
    "jscvt",
    "fcma",
    "lrcpc",
    "dcpop",
    "sha3",
    "sm3",
    "sm4",
    "asimddp",
    "sha512",
    "sve",
    "asimdfhm",
    "dit",
    "uscat",
    "ilrcpc",
    "flagm",
    "ssbs",
    "sb",
    "paca",
    "pacg",
)
AT_HWCAP = 16


def cpu_features() -> list[str] | None:
    """The CPU features the kernel (here: qemu) gives this process, from its aux vector."""
    if platform.machine() != "aarch64":
        return None
    raw = Path("/proc/self/auxv").read_bytes()
    pairs = dict(struct.iter_unpack("<QQ", raw))
    bits = pairs.get(AT_HWCAP, 0)
    return [name for i, name in enumerate(HWCAP) if bits >> i & 1]


def pip_platform_tags() -> list[str] | None:
    """The platform tags this machine's pip accepts (what the wheelhouse must have asked for)."""
    try:
        from pip._vendor.packaging import tags
    except ImportError:
        return None
    return list(tags.platform_tags())


def versions() -> dict:
    import importlib.metadata as md

    out = {}
    for dist in ("ai-edge-litert", "tflite-runtime", "numpy", "opencv-python-headless", "edgefer"):
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            pass
    return out


class FixedBox:
    """The face where the frame was drawn: the pipeline is checked, not a detector."""

    def __init__(self, box):
        self.box = tuple(int(v) for v in box)

    def __call__(self, gray):
        return [self.box]


def run_formats(bundle: Path, images: np.ndarray, frames: np.ndarray, box) -> dict:
    from edgefer.device.backends import open_runtime
    from edgefer.device.manifest import load_manifest
    from edgefer.device.pipeline import Pipeline
    from edgefer.errors import EdgeferError

    manifest = load_manifest(bundle)
    out: dict = {"labels": manifest.labels, "scores": {}, "frames": {}, "skipped": {}}
    for artifact in manifest.artifacts:
        fmt = artifact.format
        if fmt == "keras":
            continue
        backend = "onnx" if fmt.startswith("onnx") else "cpu"
        try:
            rt, man, _ = open_runtime(bundle, backend, fmt=fmt)
        except EdgeferError as exc:
            out["skipped"][fmt] = str(exc)
            continue
        pipe = Pipeline(rt, man, FixedBox(box))
        out["scores"][fmt] = rt.scores(pipe.prep.apply(images)).tolist()
        detections = []
        for frame in frames:
            result = pipe(frame)
            if result.error:
                raise SystemExit(f"{fmt}: the pipeline failed on a frame: {result.error}")
            detections.append(
                [[d.label, [d.scores[c] for c in man.labels]] for d in result.detections]
            )
        out["frames"][fmt] = detections
    return out


def run_bundled(faces: np.ndarray) -> dict:
    """The edge model that ships with edgefer, on the backend a device uses by default."""
    from edgefer.bundled import default_bundle
    from edgefer.device.backends import open_runtime
    from edgefer.preprocess import Preprocessing

    rt, manifest, artifact = open_runtime(default_bundle(), "cpu")
    prep = Preprocessing.from_dict(manifest.preprocessing.model_dump())
    return {
        "format": artifact.format,
        "labels": manifest.labels,
        "scores": rt.scores(prep.apply(faces)).tolist(),
    }


def main(work: Path, out: Path) -> None:
    data = np.load(work / "inputs.npz")
    result = {
        "machine": platform.machine(),
        "python": platform.python_version(),
        "libc": list(platform.libc_ver()),
        "features": cpu_features(),
        "pip_tags": pip_platform_tags(),
        "versions": versions(),
        "known": run_formats(work / "known", data["images"], data["frames"], data["box"]),
        "bundled": run_bundled(data["faces"]),
    }
    out.write_text(json.dumps(result))


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit("usage: check.py WORK OUT.json")
    main(Path(sys.argv[1]), Path(sys.argv[2]))
