"""A real OpenSSH server standing in for a device: on a free 127.0.0.1 port, run as the user who
runs the tests, with its own temporary host key, one authorized key, and a temporary home (its
sessions' $HOME) for `edgefer deploy` to deploy into."""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import subprocess
from pathlib import Path

from tests.device.mqtt_broker import free_port
from tests.polling import accepts, wait_for


def keygen(path: Path) -> Path:
    """An unencrypted ed25519 key pair at path / path.pub."""
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", path.name, "-f", str(path)],
        check=True,
    )
    return path


def sshd_path() -> str:
    return shutil.which("sshd") or "/usr/sbin/sshd"


class Sshd:
    def __init__(self, root: Path, authorized_key: Path, env: dict[str, str] | None = None):
        self.root = root
        self.home = root / "home"
        self.home.mkdir(parents=True)
        self.host_key = keygen(root / "host_key")
        self.port = free_port()
        self.status_port = free_port()  # for its daemon: devices on one machine need their own
        self.user = getpass.getuser()
        self.log = root / "sshd.log"
        (root / "authorized_keys").write_text(authorized_key.read_text())
        setenv = " ".join(f"{k}={v}" for k, v in {"HOME": self.home, **(env or {})}.items())
        self.config = root / "sshd_config"
        self.config.write_text(
            f"Port {self.port}\n"
            "ListenAddress 127.0.0.1\n"
            f"HostKey {self.host_key}\n"
            f"AuthorizedKeysFile {root / 'authorized_keys'}\n"
            f"PidFile {root / 'sshd.pid'}\n"
            "StrictModes no\n"
            "UsePAM no\n"
            "PasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\n"
            "PermitRootLogin prohibit-password\n"
            "AllowTcpForwarding local\n"
            "Subsystem sftp internal-sftp\n"
            f"SetEnv {setenv}\n"
        )
        self.proc: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        return f"{self.user}@127.0.0.1:{self.port}"

    def known_hosts_line(self) -> str:
        kind, blob = Path(f"{self.host_key}.pub").read_text().split()[:2]
        return f"[127.0.0.1]:{self.port} {kind} {blob}\n"

    def start(self) -> Sshd:
        if os.geteuid() == 0:
            # Run as root, sshd insists on its privilege-separation directory, which systemd
            # would make at boot.
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        self.proc = subprocess.Popen(
            [sshd_path(), "-D", "-e", "-f", str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=self.log.open("ab"),
        )
        wait_for(lambda: accepts(self.port) or self.proc.poll() is not None, 10)
        if self.proc.poll() is None and accepts(self.port):
            return self
        raise RuntimeError(f"sshd did not start: {self.log.read_text()[-500:]}")

    def stop(self) -> None:
        """Stop sshd and every process still running from its home (the daemons deployed with
        --service none, and any a failed test left behind)."""
        for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
            try:
                if str(self.home).encode() in cmdline.read_bytes():
                    os.kill(int(cmdline.parent.name), signal.SIGTERM)
            except (OSError, ValueError):
                pass  # gone meanwhile
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
