"""Where things are on a device (see edgefer/deploy/__init__.py), from its home directory. Paths
are absolute: SFTP and the SSH session's working directory are the account's home from the
password database, which need not be $HOME."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass


@dataclass(frozen=True)
class Layout:
    home: str

    @property
    def root(self) -> str:
        return posixpath.join(self.home, ".edgefer")

    @property
    def blobs(self) -> str:
        return posixpath.join(self.root, "blobs")

    @property
    def venvs(self) -> str:
        return posixpath.join(self.root, "venvs")

    @property
    def releases(self) -> str:
        return posixpath.join(self.root, "releases")

    @property
    def current(self) -> str:
        return posixpath.join(self.root, "current")

    @property
    def previous(self) -> str:
        return posixpath.join(self.root, "previous")

    @property
    def pidfile(self) -> str:
        """The daemon's process id under --service none."""
        return posixpath.join(self.root, "daemon.pid")

    def release(self, release_id: str) -> str:
        return posixpath.join(self.releases, release_id)

    def venv(self, key: str) -> str:
        return posixpath.join(self.venvs, key)

    def daemon_command(self) -> list[str]:
        """The daemon as every service mode starts it: always through `current`, so the unit
        stays the same from release to release and a restart is all a switch needs. The bundle
        is the release's, whatever the config says."""
        cur = self.current
        return [
            f"{cur}/venv/bin/edgefer",
            "daemon",
            "--config",
            f"{cur}/edgefer.toml",
            "--set",
            f"bundle={cur}/bundle",
        ]
