"""Helpers for the deploy tests: a device's daemon config, `edgefer deploy` run against it, and
reading what the deploy left on it (the device's home is on this machine)."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from edgefer.bundled import default_bundle
from tests.cli_helpers import run
from tests.deploy.sshd import Sshd


def known_hosts(path: Path, *servers: Sshd) -> Path:
    path.write_text("".join(s.known_hosts_line() for s in servers))
    return path


def daemon_config(server: Sshd, video: Path, name: str = "edgefer.toml", extra: str = "") -> Path:
    """A daemon config for `server`: the face video on a loop (at 5 FPS: the daemons of the
    session run side by side on a small CI machine), events into its home, the status
    server on a port of its own (two devices on one machine must not share one). `extra` goes
    first: top-level keys, or tables of their own."""
    path = server.root / name
    path.write_text(
        f'{extra}[source]\nuri = "{video}"\nloop = true\nmax_fps = 5\n'
        f'[outputs.jsonl]\npath = "{server.home / "events.jsonl"}"\n'
        f"[events]\nsummary_interval = 1\n"
        f"[server]\nport = {server.status_port}\n"
    )
    return path


@dataclass(frozen=True)
class Deployer:
    """`edgefer deploy ...` in-process against one device, with the test's key and known_hosts."""

    server: Sshd
    key: Path
    known: Path
    wheel: Path
    cache: Path

    def using(self, **changes) -> Deployer:
        """The same with another key or known_hosts."""
        return replace(self, **changes)

    def ssh_args(self, hosts: tuple[str, ...] | None = None) -> list[str]:
        """--host for each of `hosts` (default: this device; () for none), key, known_hosts."""
        args = []
        for host in (self.server.address,) if hosts is None else hosts:
            args += ["--host", host]
        return [*args, "--identity", str(self.key), "--known-hosts", str(self.known)]

    def push(self, config: Path, *args, bundle: Path | str | None = None, hosts=None):
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("XDG_CACHE_HOME", str(self.cache))  # the offline wheelhouse's cache
            return run(
                "deploy",
                bundle or default_bundle(),
                *self.ssh_args(hosts),
                "--config",
                config,
                "--service",
                "none",
                "--wheel",
                self.wheel,
                "--health-timeout",
                "60",
                *args,
            )

    def __call__(self, command: str, *args):
        """status, logs or rollback."""
        return run("deploy", command, *self.ssh_args(), *args)


def tree(root: Path) -> dict[str, str]:
    """Every path under root: a link's target, or 'file'/'dir' (to see that nothing changed)."""
    out = {}
    for path in sorted(root.rglob("*")):
        if "venvs" in path.relative_to(root).parts[:1]:
            continue
        rel = str(path.relative_to(root))
        out[rel] = str(path.readlink()) if path.is_symlink() else "dir" if path.is_dir() else "file"
    return out


def copy_bundle(dest: Path, bundle: Path | None = None) -> Path:
    shutil.copytree(bundle or default_bundle(), dest)
    return dest


def current(server) -> str:
    return (server.home / ".edgefer/current").readlink().name


def previous(server) -> str:
    return (server.home / ".edgefer/previous").readlink().name


def daemon_pid(server) -> int:
    return int((server.home / ".edgefer/daemon.pid").read_text())


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def status_row(result, server) -> list[str]:
    return next(line.split() for line in result.stdout.splitlines() if server.address in line)
