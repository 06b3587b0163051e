"""Long TensorFlow jobs run with tcmalloc where it is installed.

With glibc's malloc, TensorFlow's CPU training maps, faults in and unmaps fresh pages for the
scratch buffers of every convolution (Eigen's contraction blocks, oneDNN's gemm packing, the
backprop temporaries): seed-fcn7 training here took ~190,000 page faults a second and spent half
its CPU time in the kernel. glibc's tunables (MALLOC_MMAP_THRESHOLD_, MALLOC_ARENA_MAX,
MALLOC_TRIM_THRESHOLD_) did not change that; tcmalloc keeps the buffers and reuses them
(`python bench/bench_train_allocator.py` measures both).

LD_PRELOAD only works if it is set when the process starts, so the `edgefer` command re-executes
itself once with it, for the commands that train or score for long (train, teach, sweep), before
TensorFlow is imported. EDGEFER_ALLOCATOR=system turns that off; the device commands never do it.
"""

from __future__ import annotations

import ctypes.util
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

LONG_COMMANDS = frozenset({"train", "teach", "sweep"})
MARKER = "EDGEFER_ALLOCATOR"  # "system": leave malloc alone; set by the re-exec, so it runs once


def tcmalloc_library() -> str | None:
    """tcmalloc's soname as the dynamic linker finds it (Debian: libtcmalloc-minimal4), or None."""
    return ctypes.util.find_library("tcmalloc_minimal") or ctypes.util.find_library("tcmalloc")


def command_of(args: Sequence[str]) -> str | None:
    """The subcommand of an `edgefer` argument list: the first argument that is not an option."""
    return next((a for a in args if not a.startswith("-")), None)


def preload_env(env: Mapping[str, str], library: str | None) -> dict[str, str] | None:
    """The environment to re-execute with, or None to run as we are."""
    if library is None or MARKER in env or "tcmalloc" in env.get("LD_PRELOAD", ""):
        return None
    preload = " ".join(p for p in (library, env.get("LD_PRELOAD", "")) if p)
    return {**env, "LD_PRELOAD": preload, MARKER: "tcmalloc"}


def reexec_with_tcmalloc(argv: Sequence[str]) -> None:
    """Replace this process by the same `edgefer` command under tcmalloc, where that applies;
    return (and run as we are) otherwise, including when the exec itself fails."""
    if not sys.platform.startswith("linux") or command_of(argv[1:]) not in LONG_COMMANDS:
        return
    env = preload_env(os.environ, tcmalloc_library())
    if env is None:
        return
    try:
        os.execve(sys.executable, [sys.executable, "-m", "edgefer", *argv[1:]], env)
    except OSError:
        return


def allocator_in_use() -> str:
    """ "tcmalloc" if it is loaded in this process, else "system": what the run log reports."""
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return "system"
    return "tcmalloc" if "libtcmalloc" in maps else "system"
