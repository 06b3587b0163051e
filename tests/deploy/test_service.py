"""The systemd unit `edgefer deploy` installs: rendered from edgefer's own hardened unit, checked
by systemd's own `systemd-analyze verify` in both service modes."""

from __future__ import annotations

import os
import subprocess

import pytest

from edgefer.deploy.layout import Layout
from edgefer.deploy.unit import SYSTEM_ONLY, unit_text


def keys(text: str) -> dict[str, str]:
    return dict(
        line.split("=", 1) for line in text.splitlines() if "=" in line and line[0] not in "#;"
    )


@pytest.fixture
def home(tmp_path):
    """A device home whose current release has an executable daemon (verify checks ExecStart)."""
    exe = tmp_path / "home/.edgefer/current/venv/bin/edgefer"
    exe.parent.mkdir(parents=True)
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    return tmp_path / "home"


def verify(unit, mode: str, tmp_path) -> subprocess.CompletedProcess:
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700, exist_ok=True)  # a user manager's, for --user
    return subprocess.run(
        ["systemd-analyze", *(["--user"] if mode == "user" else []), "verify", str(unit)],
        capture_output=True,
        text=True,
        env={**os.environ, "XDG_RUNTIME_DIR": str(runtime)},
        check=False,
    )


def test_a_system_unit_runs_the_current_release_as_the_deploying_account(home, tmp_path):
    text = unit_text("system", Layout(str(home)), "pi", "video")
    unit = keys(text)
    assert unit["ExecStart"] == (
        f"{home}/.edgefer/current/venv/bin/edgefer daemon --config "
        f"{home}/.edgefer/current/edgefer.toml --set bundle={home}/.edgefer/current/bundle"
    )
    assert unit["User"] == "pi" and unit["Group"] == "video"
    assert unit["ProtectHome"] == "read-only"  # the release is in that home
    for kept in ("Type", "WatchdogSec", "Restart", "NoNewPrivileges", "ProtectSystem"):
        assert kept in unit, kept
    assert unit["UMask"] == "0077"  # what the daemon writes is the account's alone
    assert unit["Type"] == "notify" and unit["WantedBy"] == "multi-user.target"
    path = tmp_path / "edgefer.service"
    path.write_text(text)
    proc = verify(path, "system", tmp_path)
    assert proc.returncode == 0 and proc.stderr.strip() == "", proc.stderr


def test_a_user_unit_leaves_out_what_only_a_system_manager_can_do(home, tmp_path):
    text = unit_text("user", Layout(str(home)), "pi", "pi")
    unit = keys(text)
    assert not SYSTEM_ONLY & set(unit)
    assert unit["WantedBy"] == "default.target" and unit["NoNewPrivileges"] == "yes"
    assert unit["UMask"] == "0077"
    assert unit["ExecStart"].startswith(f"{home}/.edgefer/current/venv/bin/edgefer daemon")
    path = tmp_path / "edgefer.service"
    path.write_text(text)
    proc = verify(path, "user", tmp_path)
    assert proc.returncode == 0 and proc.stderr.strip() == "", proc.stderr


def test_a_home_with_a_space_is_quoted_for_systemd(tmp_path):
    unit = keys(unit_text("user", Layout("/home/pi pi"), "pi", "pi"))
    assert unit["ExecStart"].startswith('"/home/pi pi/.edgefer/current/venv/bin/edgefer" daemon')


def test_the_shipped_unit_keeps_what_the_daemon_writes_private():
    """device/daemon/edgefer.service, as installed by hand: events and the MQTT spool 0600 in a 0700
    state directory."""
    from importlib import resources

    unit = keys((resources.files("edgefer.device.daemon") / "edgefer.service").read_text())
    assert unit["UMask"] == "0077" and unit["StateDirectoryMode"] == "0700"
