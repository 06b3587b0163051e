"""Inference backends behind one interface: preprocessed float32 NHWC batch in, class scores out.

One small class per backend (Frigate-style). They own quantization at the model's edges: an int8
model gets x/scale + zero_point in and dequantized scores out, using the scale and zero point the
model itself declares (the manifest records the same numbers for people and tools).
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from pathlib import Path
from typing import ClassVar

import numpy as np

from edgefer.errors import EdgeferError
from edgefer.quiet import native_stderr_silenced


def as_class_probs(out: np.ndarray) -> np.ndarray:
    """A single sigmoid output p becomes two columns [1-p, p]: binary and multi-class models are
    scored the same way."""
    out = np.asarray(out, np.float32)
    if out.ndim == 2 and out.shape[1] == 1:
        return np.concatenate([1 - out, out], axis=1)
    return out


def tflite_module():
    """The TFLite interpreter module: ai-edge-litert (a base dependency), else tflite-runtime
    where that is what is installed. Never TensorFlow's tf.lite: device/ must run, and be
    tested, without TensorFlow."""
    try:
        from ai_edge_litert import interpreter

        return interpreter
    except ImportError:
        pass
    try:
        from tflite_runtime import interpreter

        return interpreter
    except ImportError:
        raise EdgeferError(
            "no TFLite runtime: pip install ai-edge-litert (or tflite-runtime)"
        ) from None


class Runtime(ABC):
    """Runs one model file. `scores(x)` takes preprocessed float32 (N,H,W,C) input."""

    name = "runtime"

    @abstractmethod
    def raw(self, x: np.ndarray) -> np.ndarray:
        """The model's float output for a batch."""

    def scores(self, x: np.ndarray) -> np.ndarray:
        return as_class_probs(self.raw(np.asarray(x, np.float32)))


def _quantize(x: np.ndarray, dtype, scale: float, zero_point: int) -> np.ndarray:
    """x / scale rounded half away from zero, then + zero_point, clipped: TFLite's own quantizer
    (round(), not numpy's half-to-even), so an input lands on the integer the model was
    calibrated and evaluated with."""
    v = x / scale
    info = np.iinfo(dtype)
    return np.clip(np.sign(v) * np.floor(np.abs(v) + 0.5) + zero_point, info.min, info.max).astype(
        dtype
    )


def load_interpreter(path: Path, threads: int = 1, delegates: list | None = None):
    """A TFLite interpreter with its tensors allocated, or one EdgeferError. The runtime's own
    "INFO: Created TensorFlow Lite XNNPACK delegate" line is kept off the terminal; a failure
    still surfaces, as the exception the interpreter raises."""
    module = tflite_module()
    try:
        with native_stderr_silenced():
            interpreter = module.Interpreter(
                model_path=str(path), num_threads=threads, experimental_delegates=delegates or None
            )
            interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise EdgeferError(
            f"{path}: not a loadable TFLite model ({str(exc).splitlines()[0]})"
        ) from None
    return interpreter


class TFLiteRuntime(Runtime):
    """One TFLite interpreter. Safe to share between threads: an interpreter has one set of
    input/output buffers, so `raw` (resize, set_tensor, invoke, get_tensor) runs under a lock;
    threads that want to run in parallel open one runtime each."""

    name = "tflite"

    def __init__(self, path: str | Path, threads: int = 1, delegates: list | None = None):
        path = Path(path)
        if not path.is_file():
            raise EdgeferError(f"{path}: model file not found")
        self.interpreter = load_interpreter(path, threads, delegates)
        self._read_details()
        self.model_input_shape = self.input_shape  # as stored in the file (the manifest's)
        self.resizable = True
        self._lock = threading.Lock()

    def _read_details(self):
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]

    def _resize(self, n: int) -> bool:
        """Give the input a batch of n (all faces of a frame in one invoke); False where the
        model cannot be resized (e.g. Edge TPU-compiled graphs), which then run image by image."""
        if not self.resizable:
            return False
        try:
            self.interpreter.resize_tensor_input(self.input["index"], [n, *self.input_shape[1:]])
            self.interpreter.allocate_tensors()
        except (RuntimeError, ValueError):
            self.resizable = False
            self.interpreter.resize_tensor_input(self.input["index"], list(self.model_input_shape))
            self.interpreter.allocate_tensors()
        self._read_details()
        return self.resizable

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.input["shape"])

    def _invoke(self, batch: np.ndarray) -> np.ndarray:
        dtype = self.input["dtype"]
        if dtype != np.float32:
            scale, zp = self.input["quantization"]
            batch = _quantize(batch, dtype, scale, zp)
        self.interpreter.set_tensor(self.input["index"], batch)
        self.interpreter.invoke()
        out = self.interpreter.get_tensor(self.output["index"])
        if out.dtype != np.float32:
            scale, zp = self.output["quantization"]
            out = (out.astype(np.float32) - zp) * scale
        return out

    def raw(self, x: np.ndarray) -> np.ndarray:
        if tuple(x.shape[1:]) != self.input_shape[1:]:
            raise EdgeferError(
                f"input {tuple(x.shape[1:])} does not match the model's {self.input_shape[1:]}"
            )
        with self._lock:
            if self.input_shape[0] == len(x) or self._resize(len(x)):
                return self._invoke(x)
            return np.concatenate([self._invoke(x[i : i + 1]) for i in range(len(x))])


class OnnxRuntime(Runtime):
    name = "onnxruntime"

    def __init__(self, path: str | Path, threads: int = 1, providers: list[str] | None = None):
        try:
            import onnxruntime as ort
        except ImportError:
            raise EdgeferError(
                "ONNX models need onnxruntime: pip install 'edgefer[onnx]'"
            ) from None
        path = Path(path)
        if not path.is_file():
            raise EdgeferError(f"{path}: model file not found")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(
                str(path), opts, providers=providers or ["CPUExecutionProvider"]
            )
        except Exception as exc:  # noqa: BLE001 -- onnxruntime raises its own exception types
            raise EdgeferError(
                f"{path}: not a loadable ONNX model ({str(exc).splitlines()[0]})"
            ) from None
        self.input_name = self.session.get_inputs()[0].name

    ONNX_DTYPES: ClassVar[dict[str, str]] = {
        "tensor(float)": "float32",
        "tensor(int8)": "int8",
        "tensor(uint8)": "uint8",
    }

    def spec(self, tensor) -> tuple[list[int], str]:
        """(shape with -1 for symbolic dims, dtype name) of a session input or output."""
        shape = [d if isinstance(d, int) else -1 for d in tensor.shape]
        return shape, self.ONNX_DTYPES.get(tensor.type, tensor.type)

    def raw(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: x})[0]
