"""Pick the bundle artifact for a backend, open it, and check it against the manifest.

The runtime is fed only from the manifest: the model file must lie inside the bundle, have the
manifest's sha256 (checked before the file is parsed), input and output tensors (shape, dtype,
quantization) and one output per label, or it is refused — a swapped or corrupt file is caught
before the first frame.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from edgefer.device import formats
from edgefer.device.delegates import DelegateError, DelegateSpec
from edgefer.device.manifest import Artifact, Manifest, TensorSpec, artifact_path, load_manifest
from edgefer.device.runtimes import OnnxRuntime, Runtime, TFLiteRuntime, tflite_module
from edgefer.errors import EdgeferError
from edgefer.hashing import sha256_file

# Preferred artifacts per backend, best first (from the format table).
PREFERENCES = formats.preferences()
# What loads each runtime kind of the format table (keras: TensorFlow, never on the device).
RUNTIMES = {"tflite": TFLiteRuntime, "onnx": OnnxRuntime}


def choose_artifact(manifest: Manifest, backend: str, fmt: str | None = None) -> Artifact:
    if fmt:
        return manifest.artifact(fmt)
    have = {a.format: a for a in manifest.artifacts}
    for f in PREFERENCES[backend]:
        if f in have:
            return have[f]
    hint = (
        " (compile it with edgetpu_compiler: see `edgefer convert`)" if backend == "edgetpu" else ""
    )
    raise EdgeferError(
        f"bundle has no model for {backend}: needs one of "
        f"{', '.join(PREFERENCES[backend])}{hint}; it has {', '.join(have)}"
    )


def verify_file(bundle_dir: str | Path, artifact: Artifact) -> Path:
    """The artifact's path once its bytes match the manifest's sha256. Checked before any runtime
    parses the file: a swapped or corrupt model is refused before it is loaded."""
    path = artifact_path(bundle_dir, artifact)
    if sha256_file(path) != artifact.sha256:
        raise EdgeferError(
            f"{path}: sha256 differs from manifest.json; the file is corrupt or replaced"
        )
    return path


def _tflite_spec(detail) -> TensorSpec:
    scale, zp = detail["quantization"]
    dtype = np.dtype(detail["dtype"]).name
    return TensorSpec(
        name=detail["name"],
        shape=[int(d) for d in detail["shape"]],
        dtype=dtype,
        quantization={"scale": scale, "zero_point": zp} if dtype != "float32" else None,
    )


def runtime_specs(runtime: Runtime) -> tuple[TensorSpec, TensorSpec]:
    """(input, output) as the loaded model declares them: what `edgefer convert` writes into the
    manifest and what the device checks against it."""
    if isinstance(runtime, TFLiteRuntime):
        return _tflite_spec(runtime.input), _tflite_spec(runtime.output)
    tensors = (runtime.session.get_inputs()[0], runtime.session.get_outputs()[0])
    return tuple(
        TensorSpec(name=t.name, shape=runtime.spec(t)[0], dtype=runtime.spec(t)[1]) for t in tensors
    )


def _same(a: TensorSpec, b: TensorSpec) -> bool:
    qa, qb = a.quantization, b.quantization
    same_q = (qa is None) == (qb is None) and (
        qa is None
        or (qa.zero_point == qb.zero_point and abs(qa.scale - qb.scale) <= 1e-6 * qb.scale)
    )
    return (a.name, a.shape, a.dtype) == (b.name, b.shape, b.dtype) and same_q


def check_model(manifest: Manifest, artifact: Artifact, runtime: Runtime, path: Path) -> None:
    """The loaded model must have the manifest's input and output tensors (shape, dtype,
    quantization) and one output per label (one sigmoid output for two labels)."""
    if artifact.input is None or artifact.output is None:
        raise EdgeferError(
            f"{path}: manifest.json gives no input/output tensors for {artifact.format}"
        )
    got = runtime_specs(runtime)
    for role, have, want in zip(("input", "output"), got, (artifact.input, artifact.output)):
        if not _same(have, want):
            raise EdgeferError(
                f"{path}: model {role} {_describe(have)} does not match manifest.json "
                f"{_describe(want)}"
            )
    outputs = got[1].shape[-1]
    expected = 1 if manifest.output == "sigmoid" else len(manifest.labels)
    if len(got[1].shape) != 2 or outputs != expected:
        raise EdgeferError(
            f"{path}: model output {got[1].shape} does not fit the {len(manifest.labels)} "
            f"labels of manifest.json (expected [N, {expected}])"
        )


def _describe(t: TensorSpec) -> str:
    q = (
        f" scale {t.quantization.scale:.6g} zero point {t.quantization.zero_point}"
        if t.quantization
        else ""
    )
    return f"{t.name} {t.dtype}{t.shape}{q}"


def open_artifact(
    bundle_dir: str | Path,
    manifest: Manifest,
    artifact: Artifact,
    threads: int = 1,
    delegates: list | None = None,
    providers: list[str] | None = None,
) -> Runtime:
    """Verify an artifact's bytes, load it, check its tensors: the one way a bundle model is opened
    (device pipeline, evaluate and benchmark alike)."""
    kind = formats.get(artifact.format).runtime
    if kind == "keras":
        raise EdgeferError(
            f"{artifact.file}: the Keras source model runs only with TensorFlow "
            "(edgefer evaluate/benchmark)"
        )
    path = verify_file(bundle_dir, artifact)
    if kind == "onnx":
        runtime = OnnxRuntime(path, threads=threads, providers=providers)
    else:
        runtime = TFLiteRuntime(path, threads=threads, delegates=delegates)
    check_model(manifest, artifact, runtime, path)
    return runtime


def open_runtime(
    bundle_dir: str | Path,
    backend: str = "cpu",
    threads: int = 1,
    delegate: DelegateSpec | None = None,
    fallback: str | None = None,
    fmt: str | None = None,
    providers: list[str] | None = None,
):
    """(runtime, manifest, artifact) for a bundle on a backend: cpu, edgetpu, gpu, external, onnx."""
    if backend not in PREFERENCES:
        raise EdgeferError(f"backend '{backend}': expected one of {', '.join(PREFERENCES)}")
    manifest = load_manifest(bundle_dir)
    artifact = choose_artifact(manifest, backend, fmt)
    loaded = None
    if backend != "onnx":
        spec = delegate or DelegateSpec(backend)
        try:
            loaded = spec.load(tflite_module())
        except DelegateError as exc:
            if fallback != "cpu":
                raise
            warnings.warn(f"{exc}; continuing on the CPU (--fallback cpu)", stacklevel=2)
            return open_runtime(bundle_dir, "cpu", threads, fmt=None)
    runtime = open_artifact(
        bundle_dir,
        manifest,
        artifact,
        threads,
        delegates=[loaded] if loaded else None,
        providers=providers,
    )
    return runtime, manifest, artifact
