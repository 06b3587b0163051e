"""An offline wheelhouse: every wheel the base install needs on another machine (a Raspberry Pi's
aarch64, Python 3.11, glibc 2.36), downloaded here, plus this checkout's edgefer wheel.

Why it is built this way:

- The requirement set is the installed edgefer's own metadata (its non-extra dependencies), with
  their environment markers evaluated for the *target* platform and Python, never for this
  machine: a dependency pinned per architecture (``; platform_machine == "aarch64"``) must resolve
  as the device's pip would resolve it.
- ``pip download --platform`` takes its tags literally and does not widen ``manylinux_2_36`` to
  the older glibc levels a newer glibc also runs, so every level from the oldest manylinux baseline
  of the architecture up to the device's glibc is passed (newest first, the order the device's own
  pip prefers), with the legacy aliases (manylinux2014, ...) that some wheels carry alone.
- ``--only-binary=:all:``: a device must never compile, and with ``--platform`` pip refuses
  sdists anyway.
- Every downloaded wheel is checked against the target's tags: a wheel the device's pip would
  refuse fails here, with its name, before anything is shipped.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.tags import Tag, compatible_tags, cpython_tags
from packaging.utils import InvalidWheelFilename, parse_wheel_filename

from edgefer.errors import EdgeferError

# Oldest glibc a manylinux wheel of each architecture targets, and the legacy (pre-PEP 600) names
# of some levels: a wheel tagged only "manylinux2014_aarch64" is invisible to a pip told only
# "manylinux_2_17_aarch64".
BASELINE_GLIBC_MINOR = {"x86_64": 5, "i686": 5}  # every other architecture: 17 (manylinux2014)
LEGACY_ALIASES = {
    5: "manylinux1",  # x86_64 and i686 only
    12: "manylinux2010",  # x86_64 and i686 only
    17: "manylinux2014",
}
ARCH = re.compile(r"^[a-z0-9_]+$")
PYTHON = re.compile(r"^3\.(\d+)(\.\d+)?$")


def _check_target(arch: str, python: str, glibc: tuple[int, int]) -> None:
    if not ARCH.match(arch):
        raise EdgeferError(f"architecture '{arch}': expected a `uname -m` name such as aarch64")
    if not PYTHON.match(python):
        raise EdgeferError(f"Python '{python}': expected a version such as 3.11")
    major, minor = glibc
    if major != 2 or minor < BASELINE_GLIBC_MINOR.get(arch, 17):
        raise EdgeferError(
            f"glibc {major}.{minor}: manylinux wheels for {arch} need glibc "
            f"2.{BASELINE_GLIBC_MINOR.get(arch, 17)} or newer"
        )


def platform_tags(arch: str = "aarch64", glibc: tuple[int, int] = (2, 36)) -> list[str]:
    """The platform tags a device with this glibc accepts, newest first: manylinux_2_<minor> for
    every level down to the architecture's baseline, each legacy alias after the level it names,
    then the plain linux_<arch> tag."""
    _check_target(arch, "3.11", glibc)
    first = BASELINE_GLIBC_MINOR.get(arch, 17)
    tags = []
    for minor in range(glibc[1], first - 1, -1):
        tags.append(f"manylinux_2_{minor}_{arch}")
        if minor in LEGACY_ALIASES:
            tags.append(f"{LEGACY_ALIASES[minor]}_{arch}")
    tags.append(f"linux_{arch}")
    return tags


def target_environment(arch: str = "aarch64", python: str = "3.11") -> dict[str, str]:
    """The PEP 508 marker environment of a Linux device running CPython `python` on `arch`.
    Only what a Linux CPython device is known to report; `platform_release` and
    `platform_version` (the kernel) are unknown here and left empty."""
    _check_target(arch, python, (2, 17))
    full = python if python.count(".") == 2 else f"{python}.0"
    return {
        "implementation_name": "cpython",
        "implementation_version": full,
        "os_name": "posix",
        "platform_machine": arch,
        "platform_python_implementation": "CPython",
        "platform_release": "",
        "platform_system": "Linux",
        "platform_version": "",
        "python_full_version": full,
        "python_version": ".".join(python.split(".")[:2]),
        "sys_platform": "linux",
        "extra": "",
    }


def target_requirements(
    requires: list[str], arch: str = "aarch64", python: str = "3.11"
) -> list[str]:
    """The requirements (as in a distribution's Requires-Dist) that the base install has on the
    target: those whose marker holds there with no extra requested, markers dropped."""
    env = target_environment(arch, python)
    out = []
    for line in requires:
        try:
            req = Requirement(line)
        except InvalidRequirement as exc:
            raise EdgeferError(f"requirement '{line}': {exc}") from None
        if req.marker is None or req.marker.evaluate(env):
            req.marker = None
            out.append(str(req))
    return out


def base_requirements(arch: str = "aarch64", python: str = "3.11") -> list[str]:
    """The installed edgefer's base dependencies as the target resolves them."""
    try:
        requires = importlib.metadata.requires("edgefer") or []
    except importlib.metadata.PackageNotFoundError:
        raise EdgeferError("edgefer's package metadata is missing: pip install -e .") from None
    return target_requirements(requires, arch, python)


def supported_tags(arch: str, python: str, glibc: tuple[int, int]) -> set[Tag]:
    """Every wheel tag CPython `python` accepts on that platform (what the device's pip checks)."""
    version = tuple(int(p) for p in python.split(".")[:2])
    platforms = platform_tags(arch, glibc)
    abi = f"cp{version[0]}{version[1]}"
    return {
        *cpython_tags(version, [abi], platforms),
        *compatible_tags(version, f"cp{version[0]}{version[1]}", platforms),
    }


def download_command(
    dest: Path,
    requirements: list[str],
    arch: str,
    python: str,
    glibc: tuple[int, int],
    find_links: list[Path] = (),
) -> list[str]:
    """The `pip download` that fetches the target's wheels (no sdist, every accepted tag); with
    `find_links`, from those folders alone (no index)."""
    _check_target(arch, python, glibc)
    major_minor = python.split(".")[:2]
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--disable-pip-version-check",
        "--progress-bar",
        "off",
        "--dest",
        str(dest),
        "--only-binary=:all:",
        "--implementation",
        "cp",
        "--python-version",
        ".".join(major_minor),
        "--abi",
        f"cp{''.join(major_minor)}",
    ]
    for tag in platform_tags(arch, glibc):
        cmd += ["--platform", tag]
    if find_links:
        cmd.append("--no-index")
        for folder in find_links:
            cmd += ["--find-links", str(folder)]
    return [*cmd, *requirements]


def check_wheels(wheels: list[Path], arch: str, python: str, glibc: tuple[int, int]) -> None:
    """Refuse a wheel the target's pip would not install (wrong architecture, Python or glibc)."""
    accepted = supported_tags(arch, python, glibc)
    for wheel in wheels:
        try:
            tags = parse_wheel_filename(wheel.name)[3]
        except InvalidWheelFilename:
            raise EdgeferError(f"{wheel}: not a wheel file name") from None
        if not tags & accepted:
            raise EdgeferError(
                f"{wheel.name}: does not install on {arch}, Python {python}, glibc "
                f"{glibc[0]}.{glibc[1]}"
            )


def _download(
    dest: Path,
    requirements: list[str],
    arch: str,
    python: str,
    glibc: tuple[int, int],
    progress: Callable[[str], None],
    find_links: list[Path] = (),
) -> None:
    cmd = download_command(dest, requirements, arch, python, glibc, find_links=find_links)
    errors: list[str] = []
    with subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    ) as proc:
        for line in proc.stdout:
            line = line.rstrip()
            if line.startswith(("Collecting", "Saved", "File was already downloaded")):
                progress(line)
            elif line.startswith("ERROR"):
                errors.append(line)
    if proc.returncode != 0:
        why = errors[0] if errors else f"pip exited with {proc.returncode}"
        raise EdgeferError(
            f"pip download for {arch}, Python {python}, glibc {glibc[0]}.{glibc[1]} failed: {why}"
        )


def _default_dest(arch: str, python: str, glibc: tuple[int, int]) -> Path:
    from edgefer.deploy.wheel import cache_dir

    return cache_dir() / "wheelhouse" / f"{arch}-cp{python}-glibc{glibc[0]}.{glibc[1]}"


def _content_key(wheels: list[Path]) -> str:
    h = hashlib.sha256()
    for w in sorted(wheels):
        h.update(w.name.encode() + b"\0" + hashlib.sha256(w.read_bytes()).digest())
    return h.hexdigest()[:16]


def build_wheelhouse(
    edgefer_wheel: Path | None = None,
    *,
    dest: Path | None = None,
    arch: str = "aarch64",
    python: str = "3.11",
    glibc: tuple[int, int] = (2, 36),
    requirements: list[str] | None = None,
    progress: Callable[[str], None] = lambda message: None,
    reuse: bool = False,
) -> list[Path]:
    """Download the target's wheels for `requirements` (default: edgefer's base dependencies as
    the target resolves them) and add the edgefer wheel (default: built from this checkout).
    Returns every wheel of the wheelhouse, sorted; `pip install --no-index --find-links DIR
    edgefer-*.whl` on the target installs from them alone.

    `dest` must be empty or absent: a stale wheel left there (an older edgefer, another version of
    a dependency) could be the one the device's pip picks. Without `dest`, the wheelhouse goes to
    edgefer's cache, one directory per content, so a deploy shipping from it is never changed
    under its feet, and an unchanged resolution yields the same files (the device reuses its
    venv). With `reuse` (what `edgefer deploy --offline` asks for), the wheels cached by earlier
    builds are tried first, with no index, and pip downloads only when they do not satisfy the
    requirements."""
    _check_target(arch, python, glibc)
    if requirements is None:
        requirements = base_requirements(arch, python)
    if edgefer_wheel is None:
        from edgefer.deploy.wheel import edgefer_wheel as build_edgefer_wheel

        edgefer_wheel = build_edgefer_wheel(progress)
    edgefer_wheel = Path(edgefer_wheel)
    if not edgefer_wheel.is_file() or edgefer_wheel.suffix != ".whl":
        raise EdgeferError(f"{edgefer_wheel}: not a wheel file")
    if dest is not None:
        dest = Path(dest)
        if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
            raise EdgeferError(
                f"{dest}: not an empty directory; a wheelhouse is built into an empty one so "
                "that no stale wheel is installed"
            )
        dest.mkdir(parents=True, exist_ok=True)
        _fill(dest, requirements, edgefer_wheel, arch, python, glibc, progress)
        return sorted(dest.glob("*.whl"))
    parent = _default_dest(arch, python, glibc)
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=parent))
    try:
        wheels = None
        if reuse:
            wheels = _reuse(tmp, parent, requirements, edgefer_wheel, arch, python, glibc, progress)
        if wheels is None:
            wheels = _fill(tmp, requirements, edgefer_wheel, arch, python, glibc, progress)
        final = parent / _content_key(wheels)
        if not final.is_dir():
            try:
                os.rename(tmp, final)
            except OSError:  # another build of the same content got there first
                if not final.is_dir():
                    raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return sorted(final.glob("*.whl"))


def _reuse(
    dest: Path,
    parent: Path,
    requirements: list[str],
    edgefer_wheel: Path,
    arch: str,
    python: str,
    glibc: tuple[int, int],
    progress: Callable[[str], None],
) -> list[Path] | None:
    """The wheelhouse from the wheels cached for this platform by earlier builds, resolved by
    pip with no index at all; None when they do not satisfy the requirements (a new
    dependency, a raised minimum), and the caller downloads. Without this, every `--offline`
    deploy downloaded the whole wheelhouse again, and a machine that could build one yesterday
    could not deploy today without an index."""
    cached = sorted(d for d in parent.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not cached:
        return None
    try:
        wheels = _fill(dest, requirements, edgefer_wheel, arch, python, glibc, progress, cached)
    except EdgeferError:
        for leftover in dest.iterdir():
            leftover.unlink()
        return None
    progress(f"the cached wheels satisfy {arch}, Python {python}: nothing downloaded")
    return wheels


def _fill(
    dest: Path,
    requirements: list[str],
    edgefer_wheel: Path,
    arch: str,
    python: str,
    glibc: tuple[int, int],
    progress: Callable[[str], None],
    find_links: list[Path] = (),
) -> list[Path]:
    what = f"{len(requirements)} requirements for {arch}, Python {python}"
    if find_links:
        progress(f"resolving {what} from the cached wheels")
        _download(dest, requirements, arch, python, glibc, progress, find_links=find_links)
    else:
        progress(f"downloading {what}")
        _download(dest, requirements, arch, python, glibc, progress)
    other = sorted(p.name for p in dest.iterdir() if p.suffix != ".whl")
    if other:
        raise EdgeferError(f"pip download left non-wheel files in {dest}: {', '.join(other)}")
    stale = sorted(p.name for p in dest.glob("edgefer-*.whl"))
    if stale:
        raise EdgeferError(f"the requirements pulled in an edgefer wheel: {', '.join(stale)}")
    shutil.copy2(edgefer_wheel, dest / edgefer_wheel.name)
    wheels = sorted(dest.glob("*.whl"))
    check_wheels(wheels, arch, python, glibc)
    return wheels
