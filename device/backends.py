"""Pick the bundle artifact for a backend, open it, and check it against the manifest.

The runtime is fed only from the manifest: the model file must have the manifest's sha256 and
input/output tensors, or it is refused (a swapped or corrupt file is caught before the first frame).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from edgefer.device.delegates import DelegateError, DelegateSpec
from edgefer.device.manifest import Artifact, Manifest, load_manifest
from edgefer.device.runtimes import OnnxRuntime, Runtime, TFLiteRuntime, tflite_module
from edgefer.errors import EdgeferError
from edgefer.hashing import sha256_file

# Preferred artifacts per backend, best first.
PREFERENCES = {
    "cpu": ("tflite-int8", "tflite-fp32", "tflite-fp16", "tflite-dynamic"),
    "edgetpu": ("edgetpu",),
    "gpu": ("tflite-fp16", "tflite-fp32"),
    "external": ("tflite-int8", "tflite-fp32"),
    "onnx": ("onnx-int8", "onnx"),
}


def choose_artifact(manifest: Manifest, backend: str, fmt: str | None = None) -> Artifact:
    if fmt:
        return manifest.artifact(fmt)
    have = {a.format: a for a in manifest.artifacts}
    for f in PREFERENCES[backend]:
        if f in have:
            return have[f]
    hint = " (compile it with edgetpu_compiler: see `edgefer convert`)" if backend == "edgetpu" else ""
    raise EdgeferError(f"bundle has no model for {backend}: needs one of "
                       f"{', '.join(PREFERENCES[backend])}{hint}; it has {', '.join(have)}")


def verify(artifact: Artifact, path: Path, runtime: Runtime) -> None:
    if sha256_file(path) != artifact.sha256:
        raise EdgeferError(f"{path}: sha256 differs from manifest.json; the file is corrupt or replaced")
    if artifact.input is None:
        return
    if isinstance(runtime, TFLiteRuntime):
        got = (list(runtime.model_input_shape), np.dtype(runtime.input["dtype"]).name)
    else:
        got = runtime.spec(runtime.session.get_inputs()[0])
    want = (artifact.input.shape, artifact.input.dtype)
    if got != want:
        raise EdgeferError(f"{path}: model input {got[1]}{got[0]} does not match manifest "
                           f"{want[1]}{want[0]}")


def open_runtime(bundle_dir: str | Path, backend: str = "cpu", threads: int = 1,
                 delegate: DelegateSpec | None = None, fallback: str | None = None,
                 fmt: str | None = None, providers: list[str] | None = None):
    """(runtime, manifest, artifact) for a bundle on a backend: cpu, edgetpu, gpu, external, onnx."""
    if backend not in PREFERENCES:
        raise EdgeferError(f"backend '{backend}': expected one of {', '.join(PREFERENCES)}")
    bundle_dir = Path(bundle_dir)
    manifest = load_manifest(bundle_dir)
    artifact = choose_artifact(manifest, backend, fmt)
    path = bundle_dir / artifact.file
    if backend == "onnx":
        runtime = OnnxRuntime(path, threads=threads, providers=providers)
    else:
        spec = delegate or DelegateSpec(backend if backend != "cpu" else "cpu")
        try:
            loaded = spec.load(tflite_module())
        except DelegateError as exc:
            if fallback != "cpu":
                raise
            warnings.warn(f"{exc}; continuing on the CPU (--fallback cpu)", stacklevel=2)
            return open_runtime(bundle_dir, "cpu", threads, fmt=None)
        runtime = TFLiteRuntime(path, threads=threads, delegates=[loaded] if loaded else None)
    verify(artifact, path, runtime)
    return runtime, manifest, artifact
