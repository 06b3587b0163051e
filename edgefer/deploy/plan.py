"""What a deploy will do to one device, given what the device already has: the files it lacks,
whether it needs a new venv, and the room both take. A dry run prints it and stops."""

from __future__ import annotations

from edgefer.deploy.layout import Layout
from edgefer.deploy.release import Release, size_text
from edgefer.deploy.ship import DeviceState

# What a new venv takes on the device (numpy, OpenCV, ai-edge-litert and the rest: 343 MB
# measured on x86_64).
VENV_BYTES = 400_000_000


class Plan:
    """What a deploy will do to one device, given what the device has."""

    def __init__(self, release: Release, state: DeviceState, layout: Layout):
        self.release, self.state, self.layout = release, state, layout
        self.new = {i.sha256: i for i in release.items if i.sha256 not in state.blobs}
        self.new_venv = release.venv_key not in state.venvs
        self.send = sum(i.size for i in self.new.values())
        self.need = self.send + (VENV_BYTES if self.new_venv else 0)

    @property
    def current_is_this(self) -> bool:
        """`current` holds this very content, its venv complete: a restart is all it can need
        (whether its daemon runs is another matter)."""
        meta = self.state.current_meta
        return (
            meta is not None and meta.get("content") == self.release.content and not self.new_venv
        )

    def summary(self) -> str:
        return (
            f"send {len(self.new)} of {len(self.release.items)} files "
            f"({size_text(self.send)}), " + ("new venv" if self.new_venv else "reuse venv")
        )

    def lines(self, health_timeout: float) -> list[str]:
        r, b = self.release, self.release.bundle
        source = "the shipped wheelhouse" if r.offline else "the device's package index"
        return [
            (
                f"release {r.id}: bundle {b.manifest.arch} (manifest sha256 {b.sha256[:12]}), "
                f"config {r.config_name}"
            ),
            (
                f"send {len(self.new)} of {len(r.items)} files ({size_text(self.send)}) to "
                f"{self.layout.blobs}; the rest are there already"
            ),
            f"make venv {r.venv_key} from {source}"
            if self.new_venv
            else f"reuse venv {r.venv_key}",
            f"switch {self.layout.current}: {self.state.current or 'none'} -> {r.id}",
            (
                f"start the daemon ({r.service} service), wait for /healthz (up to "
                f"{health_timeout:g} s), roll back to {self.state.current or 'nothing'} on failure"
            ),
        ]
