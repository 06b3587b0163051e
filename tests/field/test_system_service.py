"""Item 5: `edgefer deploy --service system` by a user with passwordless sudo (`admin`): the
hardened unit (device/daemon/edgefer.service: ProtectSystem=strict, ProtectHome=read-only,
NoNewPrivileges, seccomp filters, ...) runs the daemon as that user, its events go to the
unit's state directory /var/lib/edgefer, `systemd-analyze security` scores the unit, and a
config that would write where the sandbox forbids is refused before anything is sent.

Runs last: pi's user daemon is stopped first (two daemons would halve each other's CPU under
TCG).
"""

from __future__ import annotations

import re

import pytest

from tests.field.checks import (
    HEALTH_TIMEOUT,
    USER_SYSTEMCTL,
    as_pi_unseen,
    events,
    healthy_within,
    journal,
    source,
)
from tests.field.conftest import say, variant

pytestmark = pytest.mark.field

PORT = 8766
SYSTEMCTL = "sudo -n systemctl"


def system_unit(machine, *props: str) -> dict[str, str]:
    out = machine.ssh("admin", f"{SYSTEMCTL} show edgefer.service -p {','.join(props)}").stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


@pytest.fixture(scope="module")
def admin(field_deployer, machine, small_video):
    machine.ssh("admin", as_pi_unseen(f"{USER_SYSTEMCTL} disable --now edgefer.service"))
    machine.put("admin", small_video, "face.mp4")
    return field_deployer.as_user("admin")


@pytest.fixture(scope="module")
def system_config(config) -> str:
    text = config.read_text().replace("/home/pi/face.mp4", "/home/admin/face.mp4")
    path = config.with_name("system.toml")
    path.write_text(text.replace("port = 8765", f"port = {PORT}"))
    return path


def test_5_a_config_the_sandbox_cannot_write_is_refused_before_sending(admin, system_config):
    home = variant(
        system_config, "home.toml", 'path = "events.jsonl"', 'path = "~/edgefer/events.jsonl"'
    )
    proc = admin.push(home, "--service", "system", "--health-timeout", HEALTH_TIMEOUT)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "outputs.jsonl.path is in ~/edgefer, which the system unit's sandbox keeps" in out
    assert "sending" not in out, out


@pytest.fixture(scope="module")
def system_deployed(admin, system_config, machine):
    proc = admin.push(system_config, "--service", "system", "--health-timeout", HEALTH_TIMEOUT)
    assert proc.returncode == 0, proc.stdout + proc.stderr + journal(machine)
    say(f"--service system deploy (a new venv for admin): {proc.seconds:.0f} s")
    return proc


def test_5_the_hardened_system_unit_runs_the_daemon_as_the_deploying_user(system_deployed, machine):
    unit = system_unit(
        machine, "ActiveState", "User", "ProtectSystem", "ProtectHome", "NoNewPrivileges",
        "StateDirectory", "Type", "WatchdogUSec",
    )  # fmt: skip
    assert unit == {
        "ActiveState": "active",
        "User": "admin",
        "ProtectSystem": "strict",
        "ProtectHome": "read-only",
        "NoNewPrivileges": "yes",
        "StateDirectory": "edgefer",
        "Type": "notify",
        "WatchdogUSec": "30s",
    }, journal(machine)
    healthy_within(machine, 120, PORT)
    assert source(machine, PORT)["state"] == "streaming"
    kinds = {e["type"] for e in events(machine, "/var/lib/edgefer/events.jsonl")}
    assert "summary" in kinds, kinds


def test_5_systemd_analyze_scores_the_unit(system_deployed, machine):
    out = machine.ssh("admin", "sudo -n systemd-analyze security edgefer.service", check=False)
    score = re.search(r"Overall exposure level for edgefer.service: ([\d.]+) (\w+)", out.stdout)
    assert score, out.stdout + out.stderr
    say(f"systemd-analyze security: {score.group(1)} {score.group(2)} (0 safest, 10 unsafe)")
    # An unhardened unit scores 9.6 UNSAFE; what device/daemon/edgefer.service sets must show.
    assert float(score.group(1)) <= 5.5, out.stdout
