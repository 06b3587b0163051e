"""The wheels a device installs: the edgefer wheel, built here from this source checkout since the
device runs exactly the edgefer that deploys to it (and edgefer is not on the devices' package
index), and with --offline a wheelhouse of its dependencies too (wheelhouse.py).

The edgefer wheel is built from a clean copy of what setuptools packages (pyproject.toml's package-dir folders), never
in the checkout itself: an in-tree build/ keeps deleted files and would ship them. Cached by the
sources' hash, so deploying twice from the same code ships the same wheel, byte for byte, and the
devices reuse the venv made for it.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

import edgefer
from edgefer.deploy.errors import HostError
from edgefer.deploy.fleet import Say
from edgefer.deploy.probe import Probe
from edgefer.errors import EdgeferError

IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")


def source_root() -> Path:
    """The checkout edgefer runs from (an editable or source install)."""
    root = Path(edgefer.__file__).resolve().parents[1]
    if not (root / "pyproject.toml").is_file():
        raise EdgeferError(
            f"edgefer runs from {root}, not a source checkout: pass --wheel with the edgefer "
            f"wheel to install on the devices (pip wheel --no-deps edgefer)"
        )
    return root


def _packaged(root: Path) -> list[str]:
    """The top-level files and folders a wheel is built from, as pyproject.toml says."""
    project = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    dirs = project["tool"]["setuptools"]["package-dir"].values()
    readme = project["project"].get("readme", "README.md")
    return sorted({"pyproject.toml", readme, *dirs})


def _source_hash(root: Path, names: list[str]) -> str:
    h = hashlib.sha256()
    for name in names:
        top = root / name
        files = [top] if top.is_file() else sorted(p for p in top.rglob("*") if p.is_file())
        for path in files:
            if "__pycache__" in path.parts or path.suffix == ".pyc":
                continue
            h.update(str(path.relative_to(root)).encode() + b"\0")
            h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "edgefer" / "deploy"


def edgefer_wheel(log=lambda message: None) -> Path:
    """This checkout's edgefer wheel, built once per state of its sources."""
    root = source_root()
    names = _packaged(root)
    out = cache_dir() / "edgefer-wheel" / _source_hash(root, names)[:16]
    built = sorted(out.glob("edgefer-*.whl"))
    if built:
        return built[0]
    log(f"building the edgefer wheel from {root}")
    with tempfile.TemporaryDirectory(prefix="edgefer-wheel-") as tmp:
        src = Path(tmp) / "src"
        src.mkdir()
        for name in names:
            if (root / name).is_dir():
                shutil.copytree(root / name, src / name, ignore=IGNORE)
            else:
                shutil.copy2(root / name, src / name)
        dist = Path(tmp) / "dist"
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "wheel",
                "--no-deps",
                "--no-build-isolation",
                "-q",
                "-w",
                str(dist),
                str(src),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        wheels = sorted(dist.glob("edgefer-*.whl"))
        if proc.returncode != 0 or not wheels:
            last = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no wheel"]
            raise EdgeferError(f"building the edgefer wheel failed: {last[0]}")
        out.mkdir(parents=True, exist_ok=True)
        shutil.copy2(wheels[0], out / f".{wheels[0].name}.tmp")
        os.replace(out / f".{wheels[0].name}.tmp", out / wheels[0].name)
        return out / wheels[0].name


class Wheels:
    """The wheels a device installs: the edgefer wheel alone (its dependencies come from the
    device's package index), or with --offline a wheelhouse for the device's platform and Python,
    built here once per platform and run."""

    def __init__(self, edgefer_wheel: Path, offline: bool, say: Say):
        self.edgefer_wheel = edgefer_wheel
        self.offline = offline
        self.say = say
        self._built: dict[tuple, list[Path] | HostError] = {}
        self._lock = asyncio.Lock()

    async def __call__(self, p: Probe) -> list[Path]:
        if not self.offline:
            return [self.edgefer_wheel]
        platform = (p.arch, p.py, p.glibc)
        async with self._lock:  # hosts of one platform share one build, or its failure
            if platform not in self._built:
                try:
                    self._built[platform] = await asyncio.to_thread(self._build, *platform)
                except EdgeferError as exc:
                    self._built[platform] = HostError(str(exc))
        built = self._built[platform]
        if isinstance(built, HostError):
            raise built
        return built

    def _build(self, arch: str, python: str, glibc: tuple[int, int]) -> list[Path]:
        from edgefer.deploy.wheelhouse import build_wheelhouse

        where = f"wheelhouse {arch}-cp{python}-glibc{glibc[0]}.{glibc[1]}"
        self.say("*", f"building the {where}")
        return build_wheelhouse(
            self.edgefer_wheel,
            arch=arch,
            python=python,
            glibc=glibc,
            progress=lambda message: self.say(where, message),
            reuse=True,  # the wheels of an earlier deploy, with no index, when they do
        )
