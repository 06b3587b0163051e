"""What a device must have for a config before anything is sent to it: systemd for a service,
the Edge TPU the config asks for, room on the disk, and somewhere the daemon may write. Each
verdict is one line that says what to do; a failure here costs seconds, where the same failure
found by the daemon at start cost an upload, a venv and the whole health timeout."""

from __future__ import annotations

import posixpath
from pathlib import PurePosixPath

from edgefer.deploy.errors import HostError
from edgefer.deploy.health import device_path
from edgefer.deploy.layout import Layout
from edgefer.deploy.probe import Probe
from edgefer.deploy.release import size_text
from edgefer.deploy.ssh import Remote
from edgefer.device.daemon.config import DaemonConfig

# Left free besides what a release needs, so the SD card never fills to the last byte.
RESERVE_BYTES = 100_000_000
# Where the system unit may write (device/daemon/edgefer.service): its StateDirectory=, which is also
# its only ReadWritePaths=, and its PrivateTmp= /tmp and /var/tmp; ProtectSystem=strict and
# ProtectHome=read-only make everything else read-only, the deploying user's home included.
SYSTEM_WRITABLE = ("/var/lib/edgefer", "/tmp", "/var/tmp")


def check_fit(p: Probe, config: DaemonConfig, service: str) -> None:
    """What the config asks of the device that the device does not have."""
    if service != "none" and not p.systemd:
        raise HostError(
            f"no systemd on the device for --service {service}: "
            "use --service none (the daemon then runs without supervision)"
        )
    if config.backend == "edgetpu":
        if p.edge_tpu is None:
            raise HostError(
                "config backend = edgetpu but no Edge TPU found (no /dev/apex_0, no USB "
                "1a6e:089a or 18d1:9302): plug it in or use backend = cpu"
            )
        if not p.libedgetpu:
            raise HostError(
                "Edge TPU present but libedgetpu is not installed: sudo apt install "
                "libedgetpu1-std (Coral's apt repository)"
            )


def missing_cameras(p: Probe, config: DaemonConfig) -> list[str]:
    """The V4L2 cameras the config names (/dev/videoN, or its index N) that the device lacks,
    as "NAME reads /dev/videoN": a warning, not a refusal (a USB camera may be plugged in later;
    the health check decides)."""
    present = {dev for dev, _ in p.cameras}
    missing = []
    for name, camera in config.cameras.items():
        uri = camera.source.uri
        device = f"/dev/video{uri}" if uri.isdigit() else uri
        if device.startswith("/dev/video") and device not in present:
            missing.append(f"camera {name} reads {device}")
    return missing


def check_disk(p: Probe, need: int, layout: Layout) -> None:
    if p.disk_free < need + RESERVE_BYTES:
        raise HostError(
            f"not enough disk space: this release needs about {size_text(need)} in "
            f"{layout.root} (and {size_text(RESERVE_BYTES)} to spare), the device has "
            f"{size_text(p.disk_free)} free; free some space or deploy with a smaller --keep"
        )


def written_folders(config: DaemonConfig) -> dict[str, str]:
    """The folders the daemon will create and write, by config key, as the device will see
    them (`~/...` for its home). Relative ones are left out: they are in the daemon's state
    directory, which each kind of service can write."""
    folders = {}
    if config.outputs.jsonl is not None:
        folders["outputs.jsonl.path"] = str(config.outputs.jsonl.path.parent)
    if config.outputs.mqtt is not None:
        folders["outputs.mqtt.spool_dir"] = str(config.outputs.mqtt.spool_dir)
    return {key: folder for key, folder in folders.items() if folder[:1] in ("/", "~")}


def _inside(folder: str, roots: tuple[str, ...]) -> bool:
    path = PurePosixPath(posixpath.normpath(folder))
    return any(path == PurePosixPath(r) or PurePosixPath(r) in path.parents for r in roots)


async def check_writable(remote: Remote, config: DaemonConfig, service: str, user: str) -> None:
    """Refuse a config whose events or spool the daemon could not write, before sending
    anything: such a daemon exits at start and systemd restarts it every few seconds (seen on
    the booted test machine: events under the user's home with --service system crash-looped
    with "Read-only file system"). A system unit may write only its sandbox's paths; any other
    daemon, what its account can create: the nearest folder that exists must be a writable
    folder (the daemon makes the rest)."""
    for key, folder in written_folders(config).items():
        if service == "system":
            if not _inside(folder, SYSTEM_WRITABLE):
                raise HostError(
                    f"{key} is in {folder}, which the system unit's sandbox keeps read-only "
                    "(ProtectSystem=strict, ProtectHome=read-only): use a relative path, kept "
                    "in the unit's state directory /var/lib/edgefer"
                )
            continue
        found = await remote.run(
            f"d={device_path(folder)}; "
            'while [ ! -e "$d" ] && [ "$d" != / ]; do d=$(dirname "$d"); done; '
            'if [ -d "$d" ] && [ -w "$d" ]; then echo ok; else echo "$d"; fi',
            check=False,
        )
        if found.strip() != "ok":
            raise HostError(
                f"{key} is in {folder}, but {user} cannot write {found.strip() or folder} on "
                "the device: use a relative path (kept in the daemon's state directory) or one "
                "under ~/"
            )
