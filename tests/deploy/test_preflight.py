"""Where the daemon will write, checked before a deploy sends anything: the system unit's
sandbox by rule, any other account by asking the device's own shell (here: this machine's
sh, as the deploy's SSH session would run it)."""

from __future__ import annotations

import asyncio
import os

import pytest

from edgefer.deploy.errors import HostError
from edgefer.deploy.preflight import check_writable, written_folders
from edgefer.device.daemon.config import DaemonConfig


class LocalShell:
    """Remote.run's contract, run by sh here with `home` as $HOME."""

    def __init__(self, home):
        self.home = str(home)
        self.commands: list[str] = []

    async def run(self, command: str, *, check: bool = True, input=None) -> str:
        self.commands.append(command)
        env = {**os.environ, "HOME": self.home}
        proc = await asyncio.create_subprocess_exec(
            "sh", "-c", command, env=env, stdout=asyncio.subprocess.PIPE
        )
        out, _ = await proc.communicate()
        assert proc.returncode == 0 or not check, command
        return out.decode()


def config(jsonl: str, spool: str | None = None) -> DaemonConfig:
    outputs = {"jsonl": {"path": jsonl}}
    if spool is not None:
        outputs["mqtt"] = {"host": "broker", "spool_dir": spool}
    return DaemonConfig.model_validate({"outputs": outputs}, context={"device": True})


def check(cfg: DaemonConfig, service: str, shell: LocalShell) -> None:
    asyncio.run(check_writable(shell, cfg, service, "pi"))


def test_relative_paths_are_the_state_directory_and_need_no_check(tmp_path):
    cfg = config("events.jsonl", "spool")
    assert written_folders(cfg) == {}
    shell = LocalShell(tmp_path)
    for service in ("system", "user", "none"):
        check(cfg, service, shell)
    assert shell.commands == []


@pytest.mark.parametrize(
    "path",
    ["~/edgefer/events.jsonl", "/home/pi/events.jsonl", "/var/lib/edgefer-old/events.jsonl"],
)
def test_the_system_unit_may_write_only_its_sandbox(tmp_path, path):
    with pytest.raises(HostError, match=r"outputs.jsonl.path is in .*sandbox keeps read-only"):
        check(config(path), "system", LocalShell(tmp_path))


def test_the_system_unit_writes_its_state_directory_and_private_tmp(tmp_path):
    shell = LocalShell(tmp_path)
    check(config("/var/lib/edgefer/events.jsonl", "/var/lib/edgefer/spool"), "system", shell)
    check(config("/tmp/events.jsonl"), "system", shell)
    assert shell.commands == []  # the rule decides; the folder does not exist before the unit


def test_a_user_service_writes_what_its_account_can_create(tmp_path):
    shell = LocalShell(tmp_path)
    check(config("~/edgefer/deeper/events.jsonl", str(tmp_path / "new" / "spool")), "user", shell)
    assert len(shell.commands) == 2


@pytest.mark.parametrize("service", ["user", "none"])
def test_a_folder_that_cannot_be_made_is_refused_with_what_stands_in_the_way(tmp_path, service):
    (tmp_path / "notes").write_text("a file, not a folder")
    with pytest.raises(HostError) as caught:
        check(config("~/notes/edgefer/events.jsonl"), service, LocalShell(tmp_path))
    assert str(caught.value) == (
        f"outputs.jsonl.path is in ~/notes/edgefer, but pi cannot write {tmp_path}/notes on "
        "the device: use a relative path (kept in the daemon's state directory) or one under ~/"
    )
