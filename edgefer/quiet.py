"""Keep native libraries' chatter off the user's terminal.

TensorFlow's C++ start-up lines (absl's pre-init warning, CUDA probes, CPU feature notes) and the
MLIR converter's notes are written straight to file descriptor 2, where Python's logging and
warnings filters cannot reach them. edgefer points fd 2 at /dev/null around those calls only;
errors still surface, as the exceptions those calls raise. `edgefer --verbose` (or
EDGEFER_VERBOSE=1) shows everything.
"""

from __future__ import annotations

import contextlib
import os
import sys


def verbose() -> bool:
    return os.environ.get("EDGEFER_VERBOSE", "") not in ("", "0")


@contextlib.contextmanager
def native_stderr_silenced():
    if verbose():
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
