"""The deploy's view of the daemon's config: paths are the device's, read by the device's shell."""

import os
import subprocess

import pytest

from edgefer.deploy.config import parse_config
from edgefer.deploy.health import device_path


def test_a_token_file_under_home_is_the_device_users_not_this_machines(tmp_path):
    config = parse_config('[server]\nbind = "0.0.0.0"\nport = 8765\ntoken_file = "~/tok"\n', "x")
    assert str(config.server.token_file) == "~/tok"  # not expanded here, on the workstation
    (tmp_path / "tok").write_text("s3cret\n")
    env = {**os.environ, "HOME": str(tmp_path)}
    command = f"cat {device_path(config.server.token_file)}"
    shell = subprocess.run(["sh", "-c", command], env=env, capture_output=True, check=True)
    assert shell.stdout == b"s3cret\n"


@pytest.mark.parametrize(
    "path, shell", [("/etc/edgefer/token", "/etc/edgefer/token"), ("/a b", "'/a b'")]
)
def test_other_device_paths_are_quoted(path, shell):
    assert device_path(path) == shell


def test_a_relative_file_the_daemon_reads_is_still_refused_for_a_device():
    """A relative path the daemon writes is its state directory's (test_preflight.py); one it
    reads would be the release directory's, which a later deploy prunes."""
    from edgefer.errors import EdgeferError

    with pytest.raises(EdgeferError, match="key server.token_file: .*absolute path"):
        parse_config('[server]\nport = 8765\ntoken_file = "tok"\n', "x")
