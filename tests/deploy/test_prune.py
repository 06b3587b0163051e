"""`prune` on a device (edgefer/deploy/ship.py), run over a real SSH connection against a
hand-made ~/.edgefer: which releases it keeps, and what it removes with them."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

import pytest

from edgefer.deploy.hosts import Target
from edgefer.deploy.layout import Layout
from edgefer.deploy.ship import prune
from edgefer.deploy.ssh import Trust, connect
from tests.deploy.devices import known_hosts
from tests.deploy.sshd import Sshd

RELEASES = [f"2026010{n}T000000Z-0000000{n}" for n in range(1, 7)]  # oldest first


@pytest.fixture(scope="module")
def bare_device(tmp_path_factory, client_key):
    """A device with nothing on it but what each test puts in its home."""
    server = Sshd(tmp_path_factory.mktemp("bare-device"), Path(f"{client_key}.pub")).start()
    yield server
    server.stop()


def make_releases(root: Path) -> None:
    """Six releases, each with a blob only it links and a venv only it uses."""
    for d in ("blobs", "releases", "venvs"):
        (root / d).mkdir(parents=True)
    for n, release in enumerate(RELEASES, 1):
        folder = root / "releases" / release
        folder.mkdir()
        (root / "blobs" / f"blob{n}").write_text(release)
        os.link(root / "blobs" / f"blob{n}", folder / "edgefer.toml")
        (root / "venvs" / f"venv{n}").mkdir()
        (folder / "venv").symlink_to(f"../../venvs/venv{n}")


def prune_on(server: Sshd, key: Path, known: Path, keep: int) -> list[str]:
    target = Target(server.address, "127.0.0.1", server.port, server.user, identity=key)

    async def run() -> list[str]:
        async with connect(target, Trust(known)) as remote:
            return await prune(remote, Layout(str(server.home)), keep)

    return asyncio.run(run())


@pytest.mark.parametrize("cur, prev", [(1, 0), (0, 1), (5, 0)])
def test_prune_keeps_the_newest_and_never_removes_current_or_previous(
    bare_device, client_key, tmp_path, cur, prev
):
    """keep=2 of six releases, with `current` and `previous` pointing at old ones (after a
    rollback, or a rollback and a deploy): both stay, with their blobs and venvs."""
    root = bare_device.home / ".edgefer"
    make_releases(root)
    (root / "current").symlink_to(f"releases/{RELEASES[cur]}")
    (root / "previous").symlink_to(f"releases/{RELEASES[prev]}")
    try:
        removed = prune_on(bare_device, client_key, known_hosts(tmp_path / "kh", bare_device), 2)
        kept = {RELEASES[-1], RELEASES[-2], RELEASES[cur], RELEASES[prev]}
        assert sorted(p.name for p in (root / "releases").iterdir()) == sorted(kept)
        assert sorted(removed) == sorted(set(RELEASES) - kept)
        numbers = sorted(RELEASES.index(r) + 1 for r in kept)
        assert sorted(p.name for p in (root / "blobs").iterdir()) == [f"blob{n}" for n in numbers]
        assert sorted(p.name for p in (root / "venvs").iterdir()) == [f"venv{n}" for n in numbers]
    finally:
        shutil.rmtree(root)
