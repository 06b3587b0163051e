"""The one place edgefer imports TensorFlow and Keras: quietly, or with a pointer to the extra.

Keras runs on the backend KERAS_BACKEND names (TensorFlow by default). Training also runs on
JAX, e.g. on a GPU box with no TensorFlow, so TensorFlow itself is imported only when something
asks for `tf` (conversion, tf.distribute).
"""

from __future__ import annotations

import os

from edgefer.errors import require
from edgefer.quiet import native_stderr_silenced, verbose

# TensorFlow's C++ start-up chatter (CUDA probes, CPU feature notes) buries edgefer's own output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if verbose() else "3")
with native_stderr_silenced():
    if os.environ.get("KERAS_BACKEND", "tensorflow") == "tensorflow":
        require("tensorflow", "train")  # Keras' default backend: name what is really missing
    keras = require("keras", "train")


def __getattr__(name: str):
    if name != "tf":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    with native_stderr_silenced():
        tf = require("tensorflow", "train")
    tf.get_logger().setLevel("ERROR")
    globals()["tf"] = tf
    return tf


def backend() -> str:
    """Keras' backend for this process: "tensorflow", "jax", ..."""
    return keras.backend.backend()
