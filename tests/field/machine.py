"""A stand-in Raspberry Pi that boots like one: Debian bookworm with systemd, logind, sshd and a
real kernel, booted under qemu system emulation, for `edgefer deploy`'s default `--service user`
(a systemd user unit with lingering, `Type=notify`, the sd_notify watchdog, restarts, reboots).

How it is built, and why:

- `debootstrap` (native, so its second stage runs at full speed) makes the root once; users
  `pi` (group video, as on Raspberry Pi OS) and `admin` (passwordless sudo: the operator who
  reboots the machine and looks at it without logging `pi` in) get one generated SSH key.
  No polkit: a minimal Pi OS Lite has none, so `loginctl enable-linger` as `pi` is refused
  there just as here.
- The disk is an ext4 image made by `mkfs.ext4 -d ROOT` (no loop device, no mount). The kernel
  and initrd are the root's own, copied out of /boot and passed with -kernel/-initrd (no boot
  loader to install).
- All of it is cached under .cache/field (git-ignored) in a folder named by the recipe, and each
  test session boots a qcow2 overlay on top of it, so a test never changes the cache.
- x86_64 under TCG, not aarch64: the arm64 userland is already checked by tests/arm64 (qemu-user),
  and what is tested here is systemd, sshd and the deploy, which do not depend on the CPU. Nested
  KVM hangs at boot on CI's machines, so TCG (`-accel tcg,thread=multi`) it is.
- Network: qemu's user-mode network, `restrict=on` (the guest reaches nothing outside, hence
  `edgefer deploy --offline`), with the guest's port 22 forwarded from 127.0.0.1 only.
- Camera: the kernel's `vivid` virtual video driver, loaded at boot (modules-load.d), gives a
  real V4L2 /dev/video0 in group video.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from tests.harness import HarnessError, locked, run_step, which

REPO = Path(__file__).resolve().parents[2]
# Git-ignored. CI starts without it; local runs reuse the disk image in it.
CACHE = Path(os.environ.get("EDGEFER_FIELD_CACHE", REPO / ".cache" / "field"))
SUITE = "bookworm"
ARCH = "amd64"
MIRROR = os.environ.get("EDGEFER_FIELD_MIRROR", "http://deb.debian.org/debian")
PACKAGES = (
    "linux-image-amd64",
    "systemd",
    "systemd-sysv",
    "udev",
    "dbus",
    "libpam-systemd",  # SSH logins get a logind session and XDG_RUNTIME_DIR, as on a Pi
    "openssh-server",
    "python3",
    "python3-venv",
    "sudo",
    "kmod",
    "iproute2",
    "procps",
    # A broker on the machine, as a Home Assistant Pi has one: the daemon's MQTT output (spool,
    # retained source state) is checked through a camera unplug and a full disk.
    "mosquitto",
    "mosquitto-clients",
)
FORMAT = 1  # bump when the way the image is built changes
DISK_SIZE = "6G"  # sparse; a release with its venv takes ~450 MB
HOSTNAME = "fieldpi"
USERS = {"pi": "video", "admin": "sudo"}  # name: supplementary group
TOOLS = {
    "debootstrap": "debootstrap",
    "qemu-system-x86_64": "qemu-system-x86",
    "qemu-img": "qemu-utils",
    "mkfs.ext4": "e2fsprogs",
    "ssh": "openssh-client",
    "ssh-keygen": "openssh-client",
    "scp": "openssh-client",
}

# What the root gets besides its packages: file contents by path.
FILES = {
    "etc/hostname": f"{HOSTNAME}\n",
    "etc/hosts": f"127.0.0.1 localhost\n127.0.1.1 {HOSTNAME}\n",
    "etc/fstab": "/dev/vda / ext4 defaults,errors=remount-ro 0 1\n",
    # qemu's user network hands out 10.0.2.15 by DHCP.
    "etc/systemd/network/10-wired.network": "[Match]\nName=e*\n\n[Network]\nDHCP=yes\n",
    # The deploy's logs must survive a reboot, as on a Pi with a persistent journal.
    "etc/systemd/journald.conf.d/persistent.conf": "[Journal]\nStorage=persistent\n",
    "etc/modules-load.d/vivid.conf": "vivid\n",
    "etc/ssh/sshd_config.d/field.conf": "PasswordAuthentication no\nUseDNS no\n",
    "etc/sudoers.d/admin": "admin ALL=(ALL) NOPASSWD: ALL\n",
}


class MachineError(HarnessError):
    """The stand-in could not be built or booted (a missing tool, a failed download, no SSH)."""


def missing_tools() -> list[str]:
    """The Debian packages to install for the tools that are not here."""
    return sorted({pkg for tool, pkg in TOOLS.items() if not which(tool)})


def require_tools() -> None:
    missing = missing_tools()
    if missing:
        raise MachineError(
            f"the field machine needs {', '.join(missing)}: apt-get install {' '.join(missing)}"
        )
    if os.geteuid() != 0:
        raise MachineError("debootstrap and chroot need root (CI runs as root)")


def _run(cmd, what: str, timeout: float = 1800) -> subprocess.CompletedProcess:
    return run_step(cmd, what, timeout, MachineError)


class Image:
    """The cached disk image, kernel, initrd and keys: built on first use, reused while the
    recipe is unchanged."""

    def __init__(self, cache: Path = CACHE, log=print):
        recipe = repr((SUITE, ARCH, MIRROR, PACKAGES, FORMAT, DISK_SIZE, USERS, FILES))
        self.dir = cache / f"{SUITE}-{ARCH}-{hashlib.sha256(recipe.encode()).hexdigest()[:12]}"
        self.cache = cache
        self.log = log
        self.timings: dict[str, float] = {}

    disk = property(lambda self: self.dir / "disk.raw")
    kernel = property(lambda self: self.dir / "vmlinuz")
    initrd = property(lambda self: self.dir / "initrd.img")
    key = property(lambda self: self.dir / "id_ed25519")  # logs in as every user
    host_key = property(lambda self: self.dir / "ssh_host_ed25519_key.pub")

    def ensure(self) -> Image:
        require_tools()
        with locked(self.cache):
            if not (self.dir / ".complete").is_file():
                t0 = time.monotonic()
                self._build()
                self.timings["build"] = time.monotonic() - t0
        return self

    def _build(self) -> None:
        tmp = self.dir.with_name(self.dir.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        for old in self.cache.glob(f"{SUITE}-*"):
            shutil.rmtree(old, ignore_errors=True)  # an older recipe's image
        root = tmp / "root"
        tmp.mkdir(parents=True)
        self.log(f"debootstrap {SUITE} {ARCH} into {root}")
        t0 = time.monotonic()
        _run(
            [which("debootstrap"), f"--arch={ARCH}", "--variant=minbase"]
            + [f"--include={','.join(PACKAGES)}", SUITE, root, MIRROR],
            "debootstrap",
        )
        self.timings["debootstrap"] = time.monotonic() - t0
        self._configure(root, tmp)
        boot = root / "boot"
        (kernel,) = boot.glob("vmlinuz-*")
        (initrd,) = boot.glob("initrd.img-*")
        shutil.copy(kernel, tmp / self.kernel.name)
        shutil.copy(initrd, tmp / self.initrd.name)
        shutil.copy(root / "etc/ssh/ssh_host_ed25519_key.pub", tmp / self.host_key.name)
        for deb in (root / "var/cache/apt/archives").glob("*.deb"):
            deb.unlink()
        self.log(f"mkfs.ext4 -d {root} ({DISK_SIZE}, sparse)")
        _run(
            [which("mkfs.ext4"), "-q", "-L", "root", "-d", root, tmp / self.disk.name, DISK_SIZE],
            "mkfs.ext4",
        )
        shutil.rmtree(root)
        (tmp / ".complete").write_text(f"{SUITE} {ARCH} {','.join(PACKAGES)}\n")
        os.rename(tmp, self.dir)

    def _configure(self, root: Path, tmp: Path) -> None:
        """Users, key, network, journal, camera: what a Pi's imager and first boot would set."""
        for rel, text in FILES.items():
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        (root / "etc/sudoers.d/admin").chmod(0o440)

        def chroot(*argv):
            _run(["chroot", root, *argv], " ".join(argv))

        chroot("systemctl", "enable", "systemd-networkd")
        key = tmp / "id_ed25519"
        _run(
            [which("ssh-keygen"), "-q", "-t", "ed25519", "-N", "", "-C", "field", "-f", key],
            "ssh-keygen",
        )
        for user, group in USERS.items():
            chroot("useradd", "--create-home", "--shell", "/bin/bash", "--groups", group, user)
            ssh = root / "home" / user / ".ssh"
            ssh.mkdir(mode=0o700)
            (ssh / "authorized_keys").write_text(Path(f"{key}.pub").read_text())
            chroot("chown", "-R", f"{user}:{user}", f"/home/{user}/.ssh")
        # A fresh machine id on every boot would split the journal; one per image is enough.
        (root / "etc/machine-id").write_text(hashlib.md5(self.dir.name.encode()).hexdigest() + "\n")


class Machine:
    """One boot of the image: a qcow2 overlay in `work` (the cache stays clean), qemu in the
    background, its serial console in work/console.log. Reached only through 127.0.0.1."""

    def __init__(self, image: Image, work: Path, cpus: int = 2, memory_mb: int = 2048, log=print):
        self.image = image
        self.work = work
        self.cpus = cpus
        self.memory_mb = memory_mb
        self.log = log
        self.overlay = work / "overlay.qcow2"
        self.console = work / "console.log"
        self.known_hosts = work / "known_hosts"
        self.proc: subprocess.Popen | None = None
        self.port = 0
        self.timings: dict[str, float] = {}

    def address(self, user: str = "pi") -> str:
        """The --host for `edgefer deploy`."""
        return f"{user}@127.0.0.1:{self.port}"

    def start(self, timeout: float = 600) -> Machine:
        from tests.device.mqtt_broker import free_port

        self.work.mkdir(parents=True, exist_ok=True)
        _run(
            [which("qemu-img"), "create", "-q", "-f", "qcow2", "-F", "raw"]
            + ["-b", self.image.disk, self.overlay],
            "qemu-img create",
        )
        self.port = free_port()
        kind, blob = self.image.host_key.read_text().split()[:2]
        self.known_hosts.write_text(f"[127.0.0.1]:{self.port} {kind} {blob}\n")
        t0 = time.monotonic()
        self._launch()
        self.wait_ssh(timeout)
        self.timings["boot"] = time.monotonic() - t0
        return self

    def _launch(self) -> None:
        """qemu on the overlay as it is (a fresh one, or what a power cut left)."""
        cmd = [
            which("qemu-system-x86_64"),
            "-accel", "tcg,thread=multi",
            "-cpu", "max",
            "-smp", str(self.cpus),
            "-m", str(self.memory_mb),
            "-kernel", self.image.kernel,
            "-initrd", self.image.initrd,
            "-append", "root=/dev/vda rw console=ttyS0 net.ifnames=0",
            "-drive", f"file={self.overlay},if=virtio,format=qcow2",
            "-nic", f"user,model=virtio-net-pci,restrict=on,hostfwd=tcp:127.0.0.1:{self.port}-:22",
            "-display", "none",
            "-monitor", "none",
            "-serial", f"file:{self.console}",
        ]  # fmt: skip
        self.log(
            f"booting {self.image.dir.name}: {self.cpus} vCPUs, {self.memory_mb} MB, ssh port {self.port}"
        )
        self.proc = subprocess.Popen(
            [str(c) for c in cmd],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=(self.work / "qemu.log").open("ab"),
        )

    def ssh_command(self, user: str, command: str) -> list[str]:
        return [
            which("ssh"),
            "-i", str(self.image.key),
            "-p", str(self.port),
            "-o", "BatchMode=yes",
            "-o", f"UserKnownHostsFile={self.known_hosts}",
            "-o", "StrictHostKeyChecking=yes",
            "-o", "ConnectTimeout=15",
            "-o", "LogLevel=ERROR",
            f"{user}@127.0.0.1",
            command,
        ]  # fmt: skip

    def ssh(self, user: str, command: str, check=True, timeout: float = 120):
        """Run a shell command as `user`; its CompletedProcess (text)."""
        proc = subprocess.run(
            self.ssh_command(user, command),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and proc.returncode != 0:
            raise MachineError(
                f"{user}$ {command}: exit {proc.returncode}\n{proc.stdout}{proc.stderr}"
            )
        return proc

    def put(self, user: str, local: Path, remote: str) -> None:
        """Copy a file to the machine as `user` (scp, the machine's host key checked)."""
        cmd = [which("scp"), "-i", str(self.image.key), "-P", str(self.port)]
        cmd += ["-o", f"UserKnownHostsFile={self.known_hosts}", "-o", "BatchMode=yes"]
        _run([*cmd, str(local), f"{user}@127.0.0.1:{remote}"], f"scp {local.name}", 300)

    def boot_id(self) -> str | None:
        """This boot's id, or None while SSH does not answer."""
        try:
            proc = self.ssh("admin", "cat /proc/sys/kernel/random/boot_id", check=False, timeout=30)
        except subprocess.TimeoutExpired:
            return None
        return proc.stdout.strip() if proc.returncode == 0 else None

    def wait_ssh(self, timeout: float, other_than: str | None = None) -> str:
        """Wait until `admin` can log in (on a boot other than `other_than`); the boot id."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise MachineError(f"qemu exited ({self.proc.returncode}): {self.tail()}")
            boot = self.boot_id()
            if boot and boot != other_than:
                return boot
            time.sleep(1)
        raise MachineError(f"no SSH within {timeout:.0f} s; the console said:\n{self.tail()}")

    def reboot(self, timeout: float = 600) -> float:
        """`sudo reboot` as admin; the seconds until SSH answers on the new boot."""
        before = self.boot_id()
        t0 = time.monotonic()
        self.ssh("admin", "sudo -n systemctl reboot", check=False, timeout=30)
        self.wait_ssh(timeout, other_than=before)
        return time.monotonic() - t0

    def pull_plug(self) -> None:
        """qemu killed: what the guest's kernel had not yet written to its disk (dirty pages,
        the uncommitted journal) is lost, as in a power cut; what it had written reached qemu
        and stays in this machine's page cache."""
        self.proc.kill()
        self.proc.wait()

    def power_on(self, timeout: float = 600) -> float:
        """Boot what the overlay holds now; the seconds until SSH answers."""
        t0 = time.monotonic()
        self._launch()
        self.wait_ssh(timeout)
        return time.monotonic() - t0

    def power_cut(self, timeout: float = 600) -> float:
        """The plug pulled and put back; the seconds until SSH answers."""
        self.pull_plug()
        return self.power_on(timeout)

    def tail(self, lines: int = 30) -> str:
        try:
            text = self.console.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)  # qemu quits at once; the overlay is thrown away
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
