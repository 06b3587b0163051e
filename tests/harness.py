"""What the test machines share (the emulated Pi root in tests/arm64, the booted machine in
tests/field): finding Debian's tools, running a build step with its output's tail on failure,
and one builder of a cache at a time."""

from __future__ import annotations

import contextlib
import fcntl
import shutil
import subprocess
from pathlib import Path

SBIN = "/usr/local/sbin:/usr/sbin:/sbin"


class HarnessError(RuntimeError):
    """A test machine could not be built or run (a missing tool, a failed download)."""


def which(tool: str) -> str | None:
    return shutil.which(tool) or shutil.which(tool, path=SBIN)


def run_step(cmd, what: str, timeout: float = 900, error=HarnessError):
    """Run a build step; `error` with the tail of its output if it fails or times out."""
    try:
        proc = subprocess.run(
            [str(c) for c in cmd], capture_output=True, text=True, check=False, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        raise error(f"{what} took longer than {timeout:.0f} s") from None
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise error(f"{what} failed (exit {proc.returncode}):\n{tail}")
    return proc


@contextlib.contextmanager
def locked(cache: Path):
    """One builder of `cache` at a time (two test runs would build into the same folder)."""
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / "lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
