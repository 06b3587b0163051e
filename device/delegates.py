"""TFLite delegates: cpu (XNNPACK), Coral Edge TPU, GPU, or any external delegate library.

A delegate that cannot load is one clear error naming the library and how to install it; the
caller may fall back to the CPU instead (`--fallback cpu`)."""

from __future__ import annotations

import ctypes
import platform
from dataclasses import dataclass, field

from edgefer.errors import EdgeferError

EDGETPU_LIBRARY = {
    "Linux": "libedgetpu.so.1",
    "Darwin": "libedgetpu.1.dylib",
    "Windows": "edgetpu.dll",
}
GPU_LIBRARY = "libtensorflowlite_gpu_delegate.so"
INSTALL = {
    "edgetpu": "install the Edge TPU runtime (Debian/Raspberry Pi OS: apt-get install "
    "libedgetpu1-std from Coral's apt repository) and plug in the Coral device",
    "gpu": "build or install the TFLite GPU delegate shared library and pass its path with "
    "--delegate-library",
    "external": "check the path given with --delegate-library",
}


class DelegateError(EdgeferError):
    """A delegate library that cannot be loaded."""


@dataclass(frozen=True)
class DelegateSpec:
    kind: str = "cpu"  # cpu | edgetpu | gpu | external
    library: str | None = None
    options: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.kind not in ("cpu", "edgetpu", "gpu", "external"):
            raise EdgeferError(f"delegate '{self.kind}': expected cpu, edgetpu, gpu or external")
        if self.kind == "external" and not self.library:
            raise EdgeferError("delegate external: --delegate-library PATH is required")

    @property
    def library_path(self) -> str | None:
        if self.library:
            return self.library
        if self.kind == "edgetpu":
            return EDGETPU_LIBRARY.get(platform.system(), "libedgetpu.so.1")
        if self.kind == "gpu":
            return GPU_LIBRARY
        return None

    def load(self, module):
        """The loaded delegate object, or None for the CPU (XNNPACK is built into the runtime)."""
        if self.kind == "cpu":
            return None
        lib = self.library_path
        try:
            # Probe with ctypes first: a failed load_delegate leaves a half-built Delegate whose
            # destructor raises at exit.
            ctypes.CDLL(lib)
            return module.load_delegate(lib, {k: str(v) for k, v in self.options.items()})
        except (ValueError, OSError, RuntimeError) as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise DelegateError(
                f"{self.kind} delegate: cannot load {lib} ({reason}); {INSTALL[self.kind]}"
            ) from None


def parse_options(pairs: tuple[str, ...]) -> dict:
    """--delegate-option key=value pairs -> dict (e.g. device=usb:0 for the Edge TPU)."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise EdgeferError(f"--delegate-option '{pair}': expected key=value")
        out[key] = value
    return out
