"""The one place edgefer imports TensorFlow and Keras: quietly, or with a pointer to the extra."""

from __future__ import annotations

import os

from edgefer.errors import require
from edgefer.quiet import native_stderr_silenced, verbose

# TensorFlow's C++ start-up chatter (CUDA probes, CPU feature notes) buries edgefer's own output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if verbose() else "3")
with native_stderr_silenced():
    tf = require("tensorflow", "train")
    keras = require("keras", "train")
tf.get_logger().setLevel("ERROR")
