"""Devices for `edgefer deploy` to deploy to: real OpenSSH servers on 127.0.0.1 (tests/deploy/
sshd.py), each with its own home. The "device" is this machine, so its venv is made with this
machine's `python3` and the daemon plays the test face video.

Two devices for the whole session, so each venv is made once and every later deploy reuses it:
`device` has a package index (a local wheel folder, as a Pi's pip.conf would name a mirror) and
`offline_device` has none at all, so only a shipped wheelhouse can install anything there. The
wheels for both come from the wheelhouse builder, cached in pytest's cache folder
(.pytest_cache, already git-ignored), so a rerun downloads nothing.
"""

from __future__ import annotations

import platform
from pathlib import Path

import pytest

from tests.deploy.devices import Deployer, daemon_config, known_hosts
from tests.deploy.sshd import Sshd, keygen

DEVICE_PYTHON = "3.11"  # /usr/bin/python3 of the Debian image the tests and CI run on


@pytest.fixture(scope="session")
def client_key(tmp_path_factory) -> Path:
    return keygen(tmp_path_factory.mktemp("client") / "id_ed25519")


@pytest.fixture(scope="session")
def wheelhouse(deploy_cache, device_wheel) -> list[Path]:
    """Every wheel the device's base install needs, for this machine's platform."""
    from edgefer.deploy.wheelhouse import build_wheelhouse

    glibc = tuple(int(p) for p in platform.libc_ver()[1].split(".")[:2])
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(deploy_cache))
        return build_wheelhouse(
            device_wheel, arch=platform.machine(), python=DEVICE_PYTHON, glibc=glibc
        )


@pytest.fixture(scope="session")
def package_index(wheelhouse, tmp_path_factory) -> Path:
    """The online device's package index: the dependencies, not edgefer (edgefer is not on any
    index; the deploy ships its wheel)."""
    index = tmp_path_factory.mktemp("index")
    for wheel in wheelhouse:
        if not wheel.name.startswith("edgefer-"):
            (index / wheel.name).symlink_to(wheel)
    return index


def start_device(root: Path, client_key: Path, env: dict) -> Sshd:
    # PIP_NO_INDEX: a test never reaches PyPI from a "device"; PIP_FIND_LINKS is its index.
    return Sshd(root, Path(f"{client_key}.pub"), {"PIP_NO_INDEX": "1", **env}).start()


@pytest.fixture(scope="session")
def device(tmp_path_factory, client_key, package_index):
    server = start_device(
        tmp_path_factory.mktemp("device"), client_key, {"PIP_FIND_LINKS": str(package_index)}
    )
    yield server
    server.stop()


@pytest.fixture(scope="session")
def offline_device(tmp_path_factory, client_key):
    server = start_device(tmp_path_factory.mktemp("offline-device"), client_key, {})
    yield server
    server.stop()


@pytest.fixture(scope="session")
def deployer(device, client_key, device_wheel, deploy_cache, tmp_path_factory):
    known = known_hosts(tmp_path_factory.mktemp("known") / "known_hosts", device)
    return Deployer(device, client_key, known, device_wheel, deploy_cache)


@pytest.fixture(scope="session")
def first_deploy(deployer, face_video):
    """The first deploy to the fresh `device`; every later test builds on it (and reuses its
    venv)."""
    assert not (deployer.server.home / ".edgefer").exists()
    config = daemon_config(deployer.server, face_video)
    result = deployer.push(config)
    assert result.exit_code == 0, result.output
    return result, config


@pytest.fixture(scope="session")
def offline_deployer(offline_device, client_key, device_wheel, deploy_cache, tmp_path_factory):
    known = known_hosts(tmp_path_factory.mktemp("known") / "known_hosts", offline_device)
    return Deployer(offline_device, client_key, known, device_wheel, deploy_cache)


@pytest.fixture(scope="session")
def offline_first_deploy(offline_deployer, face_video, wheelhouse):
    """The first deploy to `offline_device`, which has no package index: with --offline, from
    the wheelhouse built here. First, without --offline, pip on the device finds nothing: the
    proof that the wheelhouse is what installs it. Also returns the releases and venvs the
    device had right after each (later tests deploy more)."""
    root = offline_deployer.server.home / ".edgefer"

    def left() -> dict[str, list[str]]:
        return {d: sorted(p.name for p in (root / d).iterdir()) for d in ("releases", "venvs")}

    config = daemon_config(offline_deployer.server, face_video)
    online = offline_deployer.push(config)
    after_online = left()
    result = offline_deployer.push(config, "--offline")
    assert result.exit_code == 0, result.output
    return online, after_online, result, left()
