import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import edgefer.device.daemon
from edgefer.device.daemon.sd_notify import notify, watchdog_interval

UNIT = Path(edgefer.device.daemon.__file__).parent / "edgefer.service"


def test_notify_sends_one_datagram_to_notify_socket(tmp_path, monkeypatch):
    path = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(path)
        monkeypatch.setenv("NOTIFY_SOCKET", path)
        assert notify("READY=1")
        assert server.recv(64) == b"READY=1"
    monkeypatch.delenv("NOTIFY_SOCKET")
    assert notify("READY=1") is False  # not under systemd: a no-op


def test_watchdog_interval_is_half_of_watchdog_sec(monkeypatch):
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert watchdog_interval() == 15.0
    monkeypatch.setenv("WATCHDOG_PID", "1")  # meant for another process
    assert watchdog_interval() is None


def test_unit_is_hardened_and_verifies(tmp_path):
    text = UNIT.read_text()
    for line in (
        "Type=notify",
        "WatchdogSec=",
        "Restart=on-failure",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ReadWritePaths=/var/lib/edgefer",
        "SupplementaryGroups=video",
        "User=edgefer",
        "SystemCallFilter=@system-service",
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK",
    ):
        assert line in text, line
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze not installed")
    unit = tmp_path / "edgefer.service"
    # The console script of the Python running the tests (the venv's bin/ may not be on PATH).
    edgefer = str(Path(sys.executable).with_name("edgefer"))
    unit.write_text(text.replace("/opt/edgefer/venv/bin/edgefer", edgefer))
    proc = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0 and proc.stderr.strip() == "", proc.stderr
