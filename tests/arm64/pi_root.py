"""An emulated Raspberry Pi userland: Debian bookworm arm64 (what Pi OS Bookworm is built on:
Python 3.11.2, glibc 2.36) run through qemu-user under proot, with no privileges beyond what
debootstrap needs and no binfmt.

How it is built, and why:

- `debootstrap --foreign` downloads and unpacks the packages (half a minute). Its second stage,
  which runs every maintainer script under emulation, takes ~10 minutes on this machine and
  produces nothing Python needs; instead every downloaded .deb is unpacked here with dpkg-deb
  (seconds), /etc/passwd and /etc/group come from base-passwd's masters, and the emulated
  ldconfig writes ld.so.cache. The binaries are Debian's, byte for byte.
- The base runtime is installed as `edgefer deploy --offline` installs it: a venv made by the
  guest's own python3 -m venv, then the guest's pip installing the edgefer wheel with
  `--no-index --find-links` on a wheelhouse from edgefer.deploy.wheelhouse. So the guest's pip
  decides which wheels fit this glibc and Python, not this machine's.
- The CPU is a Pi's: `-cpu cortex-a72` (Pi 4) or `-cpu cortex-a76` (Pi 5), never qemu's default
  `max`, whose extra features run kernels no Pi has (ai-edge-litert's XNNPACK int8 kernels gave
  wrong scores under it).

Two emulator artifacts are worked around here, not in edgefer:

- qemu 7.2 (Debian bookworm's qemu-user-static) passes this machine's x86 /proc/cpuinfo through
  to the guest. ai-edge-litert 2.2 and 2.3, creating an Interpreter, read it (no ARM processor
  in it), then the cache topology under /sys, and dereference a null pointer (SIGSEGV at address
  0x8); 2.1.6 reads /proc/cpuinfo but not the cache topology, and runs. A real Pi, and qemu 10
  (bookworm-backports), show an ARM /proc/cpuinfo, where both run; so the guest gets the one
  qemu 10 shows for the same CPU model, bound over /proc/cpuinfo.
- proot 5.1 (Debian bookworm) does not know the faccessat2 system call, which qemu's glibc uses
  for the guest's access(): the call reaches this machine's file system untranslated, so
  os.access() answers for the host path of the same name (False for most guest files, which
  makes click refuse a readable bundle). The work directory is therefore bound at its own host
  path, where both answers agree.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tests.harness import HarnessError, run_step, which

REPO = Path(__file__).resolve().parents[2]
# Git-ignored. CI starts without it; local runs reuse the root and the venv in it.
CACHE = Path(os.environ.get("EDGEFER_ARM64_CACHE", REPO / ".cache" / "arm64"))
SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
PACKAGES = ("python3", "python3-venv")
ROOT_FORMAT = 1  # bump when the way the root is built changes
VENV = "/opt/edgefer/venv"  # inside the guest
# A newer qemu-aarch64 (e.g. from bookworm-backports) may be named here instead.
QEMU = os.environ.get("EDGEFER_QEMU_AARCH64", "qemu-aarch64-static")
TOOLS = {"debootstrap": "debootstrap", QEMU: "qemu-user-static", "proot": "proot"}


@dataclass(frozen=True)
class Cpu:
    """A Pi's core as qemu models it: the features it must report (checked in the guest) and the
    /proc/cpuinfo entry qemu 10 shows for it."""

    model: str
    board: str
    variant: int
    part: int
    revision: int
    features: tuple[str, ...]

    def cpuinfo(self, count: int) -> str:
        entry = (
            "processor\t: {n}\n"
            f"model name\t: ARMv8 Processor rev {self.revision} (v8l)\n"
            "BogoMIPS\t: 100.00\n"
            f"Features\t: {' '.join(self.features)}\n"
            "CPU implementer\t: 0x41\n"
            "CPU architecture: 8\n"
            f"CPU variant\t: {self.variant:#x}\n"
            f"CPU part\t: {self.part:#05x}\n"
            f"CPU revision\t: {self.revision}\n\n"
        )
        return "".join(entry.format(n=n) for n in range(count))


# qemu's models carry the crypto extension; the Pi 4's BCM2711 has none (no NN kernel uses it).
CPUS = {
    "cortex-a72": Cpu(
        "cortex-a72",
        "Raspberry Pi 4",
        0x0,
        0xD08,
        3,
        ("fp", "asimd", "aes", "pmull", "sha1", "sha2", "crc32", "cpuid"),
    ),
    "cortex-a76": Cpu(
        "cortex-a76",
        "Raspberry Pi 5",
        0x4,
        0xD0B,
        1,
        (
            "fp",
            "asimd",
            "aes",
            "pmull",
            "sha1",
            "sha2",
            "crc32",
            "atomics",
            "fphp",
            "asimdhp",
            "cpuid",
            "asimdrdm",
            "lrcpc",
            "dcpop",
            "asimddp",
        ),
    ),
}


def missing_tools() -> list[str]:
    """The Debian packages to install for the tools that are not here."""
    return sorted({pkg for tool, pkg in TOOLS.items() if not which(tool)})


def require_tools() -> None:
    missing = missing_tools()
    if missing:
        raise HarnessError(
            f"the emulated Pi needs {', '.join(missing)}: apt-get install {' '.join(missing)} "
            "(.ci/run installs them)"
        )
    if os.geteuid() != 0:
        raise HarnessError("debootstrap needs root (CI and the developers' machines run as root)")


def _run(cmd, what: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return run_step(cmd, what, timeout, HarnessError)


class PiRoot:
    """The guest root under `cache`: built on first use, reused while its recipe is unchanged."""

    def __init__(self, cache: Path = CACHE, log=print):
        self.cache = cache
        key = hashlib.sha256(repr((SUITE, MIRROR, PACKAGES, ROOT_FORMAT)).encode()).hexdigest()
        self.root = cache / f"rootfs-{SUITE}-arm64-{key[:12]}"
        self.log = log
        self.timings: dict[str, float] = {}

    # -- building -------------------------------------------------------------------------

    def ensure(self) -> PiRoot:
        require_tools()
        self.cache.mkdir(parents=True, exist_ok=True)
        for name, cpu in CPUS.items():
            (self.cache / f"cpuinfo.{name}").write_text(cpu.cpuinfo(os.cpu_count() or 1))
        if not (self.root / ".complete").is_file():
            t0 = time.monotonic()
            self._build()
            self.timings["rootfs"] = time.monotonic() - t0
        return self

    def _build(self) -> None:
        tmp = self.root.with_name(self.root.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        for old in self.cache.glob("rootfs-*"):
            shutil.rmtree(old, ignore_errors=True)  # an older recipe's root
        self.log(f"debootstrap {SUITE} arm64 (first stage) into {tmp}")
        _run(
            [
                which("debootstrap"),
                "--arch=arm64",
                "--foreign",
                "--variant=minbase",
                f"--include={','.join(PACKAGES)}",
                SUITE,
                str(tmp),
                MIRROR,
            ],
            "debootstrap",
        )
        debs = sorted((tmp / "var/cache/apt/archives").glob("*.deb"))
        self.log(f"unpacking {len(debs)} packages")
        for deb in debs:
            _run(["dpkg-deb", "-x", str(deb), str(tmp)], f"dpkg-deb -x {deb.name}")
            deb.unlink()
        proc = tmp / "proc"
        if proc.is_symlink():
            proc.unlink()
        proc.mkdir(exist_ok=True)
        for name in ("passwd", "group"):
            shutil.copy(tmp / f"usr/share/base-passwd/{name}.master", tmp / "etc" / name)
        self.root, built = tmp, self.root
        try:
            self.guest(["/sbin/ldconfig"], "cortex-a72", what="ldconfig")
        finally:
            self.root = built
        (tmp / ".complete").write_text(f"{SUITE} arm64 {','.join(PACKAGES)}\n")
        os.rename(tmp, self.root)

    def install(self, wheels: list[Path]) -> str:
        """The base runtime in the guest's venv, as `edgefer deploy --offline` installs it. The
        venv is kept while the dependency wheels are the same; the edgefer wheel is installed
        afresh every time. Returns what was done."""
        (ours,) = [w for w in wheels if w.name.startswith("edgefer-")]
        house = ours.parent
        deps = sorted(w.name for w in wheels if w is not ours)
        key = hashlib.sha256("\n".join(deps).encode()).hexdigest()
        marker = self.root / VENV.lstrip("/") / ".edgefer-deps"
        t0 = time.monotonic()
        binds = [house]
        pip = [f"{VENV}/bin/python", "-m", "pip", "install", "--disable-pip-version-check"]
        pip += ["--no-index", "--find-links", str(house), "--progress-bar", "off"]
        if marker.is_file() and marker.read_text() == key:
            self.guest([*pip, "--no-deps", "--force-reinstall", str(ours)], binds=binds, what="pip")
            done = "reused the venv; reinstalled the edgefer wheel"
        else:
            shutil.rmtree(self.root / VENV.lstrip("/"), ignore_errors=True)
            self.guest(["/usr/bin/python3", "-m", "venv", VENV], what="python3 -m venv")
            self.guest([*pip, str(ours)], binds=binds, what="pip install (offline)")
            marker.write_text(key)
            done = f"made the venv; installed {len(wheels)} wheels offline"
        self.timings["install"] = time.monotonic() - t0
        return done

    # -- running --------------------------------------------------------------------------

    def guest_command(self, argv: list[str], cpu: str, binds=()) -> list[str]:
        """proot + qemu as `cpu`; each bind appears at its own host path (see the module doc)."""
        if cpu not in CPUS:
            raise HarnessError(f"cpu '{cpu}': expected one of {', '.join(CPUS)}")
        env = ["env", "-i", "PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/root", "LANG=C.UTF-8"]
        cmd = [*env, which("proot"), "-0", "-q", f"{which(QEMU)} -cpu {cpu}", "-r", str(self.root)]
        cmd += ["-b", "/dev", "-b", "/proc", "-b", "/sys"]
        cmd += ["-b", f"{self.cache / f'cpuinfo.{cpu}'}:/proc/cpuinfo"]
        for b in binds:
            cmd += ["-b", str(Path(b).resolve())]
        return [*cmd, "-w", "/", *argv]

    def guest(
        self, argv: list[str], cpu: str = "cortex-a72", binds=(), what: str = "", timeout=900
    ) -> subprocess.CompletedProcess:
        """Run argv in the guest; HarnessError with its output's tail if it fails or crashes."""
        return _run(self.guest_command(argv, cpu, binds), what or argv[0], timeout=timeout)
