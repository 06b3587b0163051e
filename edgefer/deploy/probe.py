"""What a device is, asked before anything is shipped: OS, architecture, Python, C library, free
disk and memory, Edge TPU, cameras, init system. One small script runs on the device's own
`python3` (the one the release's venv will be made from) and answers in JSON.

From that, `check_supported` says which TFLite runtime the device can install, or why none: a
32-bit ARM OS, a Python too old for edgefer or too new for the runtime's wheels, a C library
older than the wheels' manylinux tag. Each refusal says what to do.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, metadata

from edgefer.deploy.errors import HostError
from edgefer.deploy.ssh import Remote
from edgefer.errors import shown

# Runs on the device's python3, which may be older than edgefer's own: plain 3.6 syntax.
PROBE_SCRIPT = r"""
import glob, grp, json, os, platform, pwd, sys
def read(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except (OSError, UnicodeDecodeError):
        return ""
def meminfo(key):
    for line in read("/proc/meminfo").splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    return 0
release = dict(
    line.split("=", 1) for line in read("/etc/os-release").splitlines() if "=" in line
)
usb = sorted(set(
    read(d + "/idVendor") + ":" + read(d + "/idProduct")
    for d in glob.glob("/sys/bus/usb/devices/*") if os.path.exists(d + "/idVendor")
))
try:
    import ensurepip  # noqa: F401  (Debian ships venv's pip in python3-venv)
    venv = True
except ImportError:
    venv = False
home = os.path.expanduser("~")
disk = os.statvfs(home)
libc, libc_version = platform.libc_ver()
print(json.dumps({
    "home": home,
    "user": pwd.getpwuid(os.getuid()).pw_name,
    "group": grp.getgrgid(os.getgid()).gr_name,
    "os": release.get("PRETTY_NAME", platform.system()).strip('"'),
    "system": platform.system(),
    "machine": platform.machine(),
    "python": list(sys.version_info[:3]),
    "python_path": sys.executable,
    "venv": venv,
    "libc": libc,
    "libc_version": libc_version,
    "disk_free": disk.f_bavail * disk.f_frsize,
    "mem_total": meminfo("MemTotal"),
    "mem_available": meminfo("MemAvailable"),
    "usb": usb,
    "apex": os.path.exists("/dev/apex_0"),
    "libedgetpu": bool(glob.glob("/usr/lib/*/libedgetpu.so.1*") + glob.glob("/usr/lib/libedgetpu.so.1*")),
    "cameras": [
        [dev, read("/sys/class/video4linux/%s/name" % os.path.basename(dev))]
        for dev in sorted(glob.glob("/dev/video*"))
    ],
    "systemd": os.path.isdir("/run/systemd/system"),
}))
"""

EDGE_TPU_USB = ("1a6e:089a", "18d1:9302")  # Coral USB before / after its firmware is loaded
ARCHES = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}
# ai-edge-litert 2.3 (edgefer's TFLite runtime) has Linux wheels for these, tagged
# manylinux_2_27: CPython 3.10 to 3.14 on x86_64 and aarch64, nothing for 32-bit ARM.
RUNTIME = "ai-edge-litert"
RUNTIME_PYTHONS = ((3, 10), (3, 14))
RUNTIME_GLIBC = (2, 27)


@dataclass(frozen=True)
class Probe:
    home: str
    user: str
    group: str
    os: str
    system: str
    machine: str
    python: tuple[int, int, int]
    python_path: str
    venv: bool
    libc: str
    libc_version: str
    disk_free: int
    mem_total: int
    mem_available: int
    usb: tuple[str, ...]
    apex: bool
    libedgetpu: bool
    cameras: tuple[tuple[str, str], ...]
    systemd: bool

    @property
    def arch(self) -> str:
        return ARCHES.get(self.machine, self.machine)

    @property
    def py(self) -> str:
        return ".".join(map(str, self.python[:2]))

    @property
    def glibc(self) -> tuple[int, int] | None:
        if self.libc != "glibc":
            return None
        try:
            return tuple(int(p) for p in self.libc_version.split(".")[:2])
        except ValueError:
            return None

    @property
    def edge_tpu(self) -> str | None:
        """Where the Edge TPU is, or None."""
        if self.apex:
            return "PCIe /dev/apex_0"
        usb = [u for u in self.usb if u in EDGE_TPU_USB]
        return f"USB {usb[0]}" if usb else None

    def summary(self) -> str:
        mb = 1 << 20
        cams = ", ".join(dev for dev, _ in self.cameras) or "no camera"
        tpu = f"Edge TPU ({self.edge_tpu})" if self.edge_tpu else "no Edge TPU"
        return (
            f"{self.os}, {self.machine}, Python {'.'.join(map(str, self.python))}, "
            f"{self.disk_free // mb:,} MB disk free, {self.mem_available // mb:,} MB memory "
            f"free, {tpu}, {cams}"
        )


async def probe(remote: Remote) -> Probe:
    out = await remote.run("python3 -", input=PROBE_SCRIPT, check=False)
    try:
        doc = json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise HostError(
            "no working python3 on the device (install it: sudo apt install python3 python3-venv)"
        ) from None
    doc["python"] = tuple(doc["python"])
    doc["usb"] = tuple(doc["usb"])
    doc["cameras"] = tuple(tuple(c) for c in doc["cameras"])
    return Probe(**doc)


def edgefer_pythons() -> tuple[int, int]:
    """The oldest Python edgefer itself supports (its Requires-Python)."""
    try:
        spec = metadata("edgefer")["Requires-Python"] or ">=3.11"
    except PackageNotFoundError:
        spec = ">=3.11"
    major, minor = spec.strip().removeprefix(">=").split(".")[:2]
    return int(major), int(minor)


def check_supported(p: Probe) -> str:
    """The TFLite runtime the device can install (a pip requirement name), or a HostError that
    says why none and what to do."""
    if p.system != "Linux":
        raise HostError(f"{p.system} on {p.machine}: edgefer deploys to Linux devices only")
    if p.machine.startswith("armv") or p.machine in ("arm", "armhf", "i686", "i386"):
        raise HostError(
            f"{p.machine} (32-bit): {RUNTIME} has no wheel for it; install a 64-bit OS "
            f"(Raspberry Pi OS 64-bit, aarch64) on this device"
        )
    if p.arch not in ARCHES.values():
        raise HostError(f"architecture {shown(p.machine)}: {RUNTIME} has no wheel for it")
    oldest = max(edgefer_pythons(), RUNTIME_PYTHONS[0])
    if p.python[:2] < oldest:
        raise HostError(
            f"Python {p.py} on the device; edgefer needs {oldest[0]}.{oldest[1]} or newer "
            f"(Raspberry Pi OS Bookworm has 3.11): upgrade the OS or install a newer python3"
        )
    if p.python[:2] > RUNTIME_PYTHONS[1]:
        newest = ".".join(map(str, RUNTIME_PYTHONS[1]))
        raise HostError(
            f"Python {p.py} on the device; {RUNTIME} has wheels up to Python {newest}: "
            f"install python{newest} on the device"
        )
    if p.glibc is None or p.glibc < RUNTIME_GLIBC:
        raise HostError(
            f"C library {p.libc or 'unknown'} {p.libc_version}: {RUNTIME}'s wheels need glibc "
            f"{RUNTIME_GLIBC[0]}.{RUNTIME_GLIBC[1]} or newer (upgrade the OS)"
        )
    if not p.venv:
        raise HostError(
            f"Python {p.py} on the device cannot make a venv: sudo apt install python3-venv"
        )
    return RUNTIME
