"""`edgefer deploy` with its defaults (`--service user`: a systemd user unit, `Type=notify`,
the sd_notify watchdog, lingering) on a machine that boots like a Pi (tests/field/machine.py),
and what systemd then does with the daemon: restart it after `kill -9`, kill and restart it
when it hangs (`kill -STOP`), start it at boot with nobody logged in.

The tests build on each other in file order (one deploy, then the kills, then the reboot).
The machine is the sole judge: the daemon's state is read from systemd and /healthz on it,
as `admin` where `pi` must not log in. Each test prints what it measured (pytest -s).
About 4 minutes on a warm cache, plus the image build (see machine.py) on a cold one.
"""

from __future__ import annotations

import re
import time

import pytest

from tests.field.checks import (
    HEALTH_TIMEOUT,
    WATCHDOG_SEC,
    daemon_env,
    events,
    healthy_within,
    journal,
    unit,
    wait_restarted,
)
from tests.field.conftest import say, variant

pytestmark = pytest.mark.field


def test_1_without_lingering_the_default_deploy_stops_before_sending_and_says_why(refused, machine):
    """It used to send 122 MB, make the venv (6 minutes under TCG) and only then fail, with
    "mkdir: Could not enable linger: Access denied"."""
    out = refused.stdout + refused.stderr
    assert refused.returncode == 1, out
    assert "may not turn it on (Could not enable linger: Access denied" in out, out
    assert "sudo loginctl enable-linger pi" in out, out
    assert "sending" not in out and "making the venv" not in out, out
    assert refused.seconds < 60, f"{refused.seconds:.0f} s"


def test_1_the_default_deploy_runs_a_user_unit_with_lingering(deployed, machine):
    out = deployed.stdout + deployed.stderr
    assert deployed.returncode == 0, out
    assert "turned on lingering" in out, out
    state = unit(machine, "ActiveState", "UnitFileState", "Type", "WatchdogUSec", "Restart")
    assert state == {
        "ActiveState": "active",
        "UnitFileState": "enabled",
        "Type": "notify",
        "WatchdogUSec": f"{WATCHDOG_SEC}s",
        "Restart": "on-failure",
    }, journal(machine)
    linger = machine.ssh("admin", "test -e /var/lib/systemd/linger/pi", check=False)
    assert linger.returncode == 0, "lingering is off: the daemon would not start at boot"
    healthy_within(machine, 60)
    say(f"default deploy: {deployed.seconds:.0f} s")


def status_fields(field_deployer) -> tuple[dict[str, str], str]:
    """`deploy status`'s row for the machine, by column, and its whole output."""
    status = field_deployer("status")  # exit 1 while the daemon is not healthy
    lines = status.stdout.splitlines()
    header = next(line.split() for line in lines if "HEALTH" in line)
    row = next(line.split() for line in lines if "127.0.0.1" in line)
    # BUNDLE is two words (name, sha) and DETAIL may be more: read up to FPS from the start.
    fields = dict(zip(header[:3], row[:3]))
    fields["BUNDLE"] = " ".join(row[2:4])
    fields.update(zip(header[3:], [" ".join(row[4:6]), *row[6:]]))
    return fields, status.stdout


def test_7_status_reads_fps_and_model_from_the_device_and_logs_the_journal(
    deployed, field_deployer
):
    # Under TCG the daemon sees well under 1 FPS, and FPS is over the last 5 s: ask until
    # a frame has landed in that window.
    t0 = time.monotonic()
    while True:
        fields, out = status_fields(field_deployer)
        moving = re.fullmatch(r"\d+\.\d", fields["FPS"]) and float(fields["FPS"]) > 0
        if (fields["HEALTH"] == "ok" and moving) or time.monotonic() - t0 > 120:
            break
        time.sleep(5)
    assert fields["HEALTH"] == "ok" and fields["SERVICE"] == "user running", out
    assert fields["BUNDLE"].startswith("edge "), out  # from the device's release.json
    assert re.fullmatch(r"\d+\.\d", fields["FPS"]) and float(fields["FPS"]) > 0, out
    say(f"status: FPS {fields['FPS']}, bundle {fields['BUNDLE']}")
    logs = field_deployer("logs", "-n", "50")
    assert logs.returncode == 0, logs.stdout + logs.stderr
    # The daemon's own lines, from the user journal (not a log file in the release).
    assert "edgefer daemon" in logs.stdout, logs.stdout


def test_2a_kill_9_and_systemd_restarts_the_daemon(deployed, machine):
    before = unit(machine, "MainPID", "NRestarts")
    machine.ssh("admin", f"sudo -n kill -9 {before['MainPID']}")
    took = wait_restarted(machine, before["MainPID"], 180)
    after = unit(machine, "NRestarts")
    assert int(after["NRestarts"]) == int(before["NRestarts"]) + 1
    say(f"kill -9 -> healthy again in {took:.1f} s (RestartSec=5)")


def test_2b_kill_stop_and_the_watchdog_restarts_the_daemon(deployed, machine):
    before = unit(machine, "MainPID", "NRestarts")
    since = machine.ssh("admin", "date +%s").stdout.strip()
    machine.ssh("admin", f"sudo -n kill -STOP {before['MainPID']}")
    took = wait_restarted(machine, before["MainPID"], 4 * WATCHDOG_SEC)
    journal = machine.ssh("admin", f"sudo -n journalctl --since @{since} --no-pager").stdout
    assert "watchdog timeout" in journal.lower(), journal
    say(
        f"kill -STOP -> watchdog restart, healthy again in {took:.1f} s (WatchdogSec={WATCHDOG_SEC})"
    )
    assert took < 2 * WATCHDOG_SEC + 15, f"{took:.0f} s"


def test_events_where_the_service_cannot_write_are_refused_before_sending(
    deployed, field_deployer, config
):
    """A user unit cannot write /var/lib: its daemon used to exit at start and crash-loop."""
    bad = variant(
        config, "var-lib.toml", 'path = "events.jsonl"', 'path = "/var/lib/edgefer/events.jsonl"'
    )
    proc = field_deployer.push(bad, "--health-timeout", HEALTH_TIMEOUT)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "outputs.jsonl.path is in /var/lib/edgefer, but pi cannot write /var/lib" in out, out
    assert "sending" not in out and "starting" not in out, out


def test_a_crash_looping_daemon_fails_the_deploy_at_once_with_its_cause(
    deployed, field_deployer, config
):
    """A token file that is not on the device: the daemon exits at start (exit 2) and systemd
    restarts it every RestartSec. The deploy must say so at the first exit, with the daemon's
    own line, and roll back; it used to take the unit's "activating" for a slow start until
    --health-timeout."""
    bad = variant(
        config, "no-token.toml", "[server]\n", '[server]\ntoken_file = "~/no-such-token"\n'
    )
    proc = field_deployer.push(bad, "--health-timeout", 600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "the daemon exited (exit status 2" in out, out
    assert "no-such-token" in out.split("health check failed", 1)[1], out  # the journal's cause
    assert "which is healthy again" in out, out
    assert proc.seconds < 200, f"{proc.seconds:.0f} s: waited for the health timeout"


def test_relative_events_go_to_the_user_units_state_directory(deployed, machine):
    """The default for events and the spool: systemd's StateDirectory= of the unit."""
    state = daemon_env(machine, "STATE_DIRECTORY")
    say(f"the user unit's state directory: {state}")
    assert state.startswith("/home/pi/"), state
    kinds = {e["type"] for e in events(machine, f"{state}/events.jsonl")}
    assert "summary" in kinds, kinds
    listing = machine.ssh("admin", f"sudo -n ls {state}/spool").stdout
    assert "mqtt.sqlite" in listing, listing


def test_a_damaged_blob_is_sent_again_not_trusted(deployed, field_deployer, machine, config):
    """A power cut right after a deploy left 0-byte files under their full names in
    ~/.edgefer/blobs. The next deploy must check what it links, not trust the names."""
    machine.ssh(
        "pi",
        "cd ~/.edgefer && sha=$(sha256sum current/bundle/manifest.json | cut -d' ' -f1) && "
        ": > blobs/.cut && mv blobs/.cut blobs/$sha",
    )
    changed = variant(config, "changed.toml", "summary_interval = 5", "summary_interval = 6")
    proc = field_deployer.push(changed, "--health-timeout", HEALTH_TIMEOUT)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "1 stored file(s) on the device were damaged; sending them again" in out, out
    empty = machine.ssh("pi", "find ~/.edgefer/blobs -type f -empty").stdout
    assert empty == "", empty


def test_3_after_a_reboot_the_daemon_runs_with_nobody_logged_in(deployed, machine):
    took = machine.reboot()
    say(f"reboot -> SSH again in {took:.1f} s")
    say(f"reboot -> /healthz 200 {healthy_within(machine, 300):.1f} s after SSH answered")
    sessions = machine.ssh("admin", "loginctl list-sessions --no-legend").stdout
    assert not [s for s in sessions.splitlines() if " pi " in f" {s} "], sessions
    assert unit(machine, "ActiveState")["ActiveState"] == "active"
