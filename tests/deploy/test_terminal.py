"""What `edgefer deploy` puts on the terminal when things go wrong around it: a dropped SSH
connection is one line naming the host, never a traceback; other libraries' warnings (asyncssh's
DSA notices under a current `cryptography`) stay off it unless --verbose."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli_helpers import run
from tests.deploy.devices import known_hosts
from tests.deploy.sshd import Sshd
from tests.device.mqtt_broker import free_port

# Stands in for a command the deploy runs on the device: drops the SSH connection it runs under
# (kills the nearest sshd process above it), as a device that loses power or network would.
DROP = """#!/bin/sh
p=$$
while [ "$p" -gt 1 ]; do
  p=$(cut -d' ' -f4 /proc/$p/stat)
  case "$(cat /proc/$p/comm)" in sshd*) kill -9 "$p"; exit 1;; esac
done
exit 1
"""


@pytest.fixture
def dropping_device(tmp_path, client_key):
    """A device whose `readlink` and `mkdir` cut the connection: `status` loses it while reading
    the release links, a deploy while taking the device's lock."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("readlink", "mkdir"):
        (bin_dir / name).write_text(DROP)
        (bin_dir / name).chmod(0o755)
    server = Sshd(
        tmp_path / "device", Path(f"{client_key}.pub"), {"PATH": f"{bin_dir}:/usr/bin:/bin"}
    )
    (server.home / ".edgefer").mkdir()
    yield server.start()
    server.stop()


@pytest.mark.parametrize("command", ["status", "push"])
def test_a_dropped_connection_is_one_line_naming_the_host(
    dropping_device, client_key, tmp_path, command
):
    server = dropping_device
    args = ["--identity", client_key, "--known-hosts", known_hosts(tmp_path / "kh", server)]
    if command == "push":
        config = tmp_path / "edgefer.toml"
        config.write_text(f"[server]\nport = {server.status_port}\n")
        wheel = tmp_path / "edgefer-0.1.0-py3-none-any.whl"
        wheel.write_bytes(b"PK never sent")
        args += ["--config", config, "--wheel", wheel, "--service", "none"]
        result = run("deploy", "edge", "--host", server.address, *args)
    else:
        result = run("deploy", "status", "--host", server.address, *args)
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    failed = [line for line in result.stderr.splitlines() if "FAILED:" in line]
    lost = f"[{server.address}] FAILED: lost the SSH connection to {server.address} ("
    assert len(failed) == 1 and failed[0].startswith(lost), result.output
    assert "Traceback" not in result.output


def test_other_libraries_warnings_stay_off_the_terminal_unless_verbose(tmp_path):
    """In a fresh interpreter, as on a terminal (pytest would catch the warnings itself)."""
    known = tmp_path / "known_hosts"
    known.write_text("")

    def deploy_status(*extra: str) -> subprocess.CompletedProcess:
        host = f"pi@127.0.0.1:{free_port()}"  # nothing listens: the run is quick
        return subprocess.run(
            [sys.executable, "-c", "from edgefer.cli import main; main()", "deploy", "status"]
            + ["--host", host, "--known-hosts", str(known), *extra],
            capture_output=True,
            text=True,
            check=False,
        )

    quiet = deploy_status()
    assert quiet.returncode == 1 and "unreachable (Connection refused)" in quiet.stdout
    assert quiet.stderr.splitlines()[-1] == "1 of 1 host(s) failed"
    assert "Warning" not in quiet.stderr, quiet.stderr
    # --verbose shows what importing asyncssh shows, whatever this cryptography says.
    plain = subprocess.run(
        [sys.executable, "-c", "import asyncssh"], capture_output=True, text=True, check=True
    )
    loud = deploy_status("--verbose")
    assert ("Warning" in loud.stderr) == ("Warning" in plain.stderr)
