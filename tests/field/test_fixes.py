"""The deploy fixes the field machine led to, checked without it (no qemu, seconds): what systemd
and logind answer is replayed by a fake remote, in the words the machine used.
tests/field/test_booted.py checks the same on the booted machine."""

from __future__ import annotations

import asyncio
import platform

import pytest

from edgefer.deploy.errors import HostError
from edgefer.deploy.layout import Layout
from edgefer.deploy.service import SystemdService


class FakeRemote:
    """Answers each command with the first canned output whose key it contains."""

    def __init__(self, answers: dict[str, str]):
        self.answers = answers
        self.commands: list[str] = []

    async def run(self, command: str, *, input=None, check=True) -> str:
        self.commands.append(command)
        return next((out for key, out in self.answers.items() if key in command), "")


def show(**props) -> dict[str, str]:
    return {"systemctl --user show": "".join(f"{k}={v}\n" for k, v in props.items())}


def down(**props) -> str | None:
    service = SystemdService("user", Layout("/home/pi"))
    return asyncio.run(service.down(FakeRemote(show(**props))))


def test_a_unit_that_runs_or_starts_is_not_down():
    assert down(ActiveState="active", SubState="running") is None
    assert down(ActiveState="activating", SubState="start") is None
    assert down(ActiveState="reloading", SubState="reload") is None


def test_a_unit_waiting_to_be_restarted_is_down_with_how_it_ended():
    """`is-active` says "activating" here, which the health wait took for a slow start."""
    why = down(ActiveState="activating", SubState="auto-restart", ExecMainCode=1, ExecMainStatus=2)
    assert why == (
        "the daemon exited (exit status 2, unit activating/auto-restart); systemd is restarting it"
    )
    why = down(ActiveState="failed", SubState="failed", ExecMainCode=2, ExecMainStatus=9)
    assert why == "the daemon exited (signal 9, unit failed/failed)"
    assert down() == "the daemon's unit is not loaded"


def linger(answers: dict[str, str], dry_run=False):
    remote = FakeRemote({**answers, "id -un": "pi\n"})  # every command mentions id -un
    service = SystemdService("user", Layout("/home/pi"))
    return asyncio.run(service.ensure_linger(remote, dry_run)), remote


def test_lingering_already_on_needs_nothing():
    assert linger({"test -e /var/lib/systemd/linger": "yes\n"})[0] is None


def test_lingering_is_turned_on_by_loginctl_or_sudo():
    said, remote = linger({"enable-linger": "LINGER-ON\n"})
    assert said == "turned on lingering, so the daemon starts at boot without a login"
    assert 'sudo -n loginctl enable-linger "$(id -un)"' in remote.commands[-1]


def test_a_dry_run_does_not_turn_lingering_on():
    said, remote = linger({}, dry_run=True)
    assert "will turn it on" in said
    assert not any("enable-linger" in c for c in remote.commands)


def test_lingering_that_cannot_be_turned_on_is_refused_with_what_to_run():
    refusal = "Could not enable linger: Access denied\nsudo: a password is required\n"
    with pytest.raises(HostError) as exc:
        linger({"enable-linger": refusal})
    assert str(exc.value) == (
        "--service user needs lingering (the daemon must start at boot with nobody logged in), "
        "and pi may not turn it on (Could not enable linger: Access denied / sudo: a password is "
        "required): run `sudo loginctl enable-linger pi` once on the device, then deploy again "
        "(or use --service system)"
    )


def test_the_system_service_needs_no_lingering():
    remote = FakeRemote({})
    assert asyncio.run(SystemdService("system", Layout("/home/pi")).ensure_linger(remote)) is None
    assert remote.commands == []


def test_an_offline_wheelhouse_is_built_again_from_the_cache_with_no_index(
    tmp_path, monkeypatch, request
):
    """`--offline` downloaded the whole wheelhouse on every deploy, so it needed an index every
    time. Built once (online), it must build again with every index unreachable."""
    from edgefer.deploy.wheel import edgefer_wheel
    from edgefer.deploy.wheelhouse import build_wheelhouse

    provider = getattr(request.config, "cache", None)  # None under -p no:cacheprovider
    cache = provider.mkdir("edgefer-deploy") if provider else tmp_path
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    wheel = edgefer_wheel()
    glibc = tuple(int(p) for p in platform.libc_ver()[1].split(".")[:2])
    target = {"arch": platform.machine(), "python": "3.11", "glibc": glibc}
    first = build_wheelhouse(wheel, **target)
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")  # nothing listens there
    monkeypatch.setenv("PIP_RETRIES", "0")
    said: list[str] = []
    again = build_wheelhouse(wheel, progress=said.append, reuse=True, **target)
    assert [w.name for w in again] == [w.name for w in first]
    assert said[-1] == "the cached wheels satisfy x86_64, Python 3.11: nothing downloaded"
