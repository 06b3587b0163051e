"""Item 4: the plug pulled (qemu SIGKILLed) at the worst moments: while a deploy ships, just
as it switches `current`, right after it says it is done, and while the daemon writes events.
After each, the machine boots by itself and must be sound: `current` a whole release, its
daemon healthy, no lock or leftover in the way of the next deploy, and nothing lost that had
been reported stored (the blobs; the MQTT spool's committed rows), with JSONL losing at most
its last second.
"""

from __future__ import annotations

import json
import re
import threading
import time

import pytest

from tests.field.checks import HEALTH_TIMEOUT, daemon_env, events, healthy_within, status
from tests.field.conftest import say, variant

pytestmark = pytest.mark.field

ROOT = "/home/pi/.edgefer"
# Every blob whose content is not what its name (its sha256) says, as root on the machine.
BAD_BLOBS = (
    f"sudo -n sh -c 'cd {ROOT}/blobs && for f in *; do "
    '[ "$(sha256sum < "$f" | cut -d" " -f1)" = "$f" ] || ls -l "$f"; done\''
)
# The spool's rows (ids and payloads), read as root with the daemon's own SQLite.
SPOOL_ROWS = (
    "sudo -n python3 -c 'import json, sqlite3, sys; "
    'db = sqlite3.connect("file:" + sys.argv[1] + "?mode=ro", uri=True); '
    'print(json.dumps([json.loads(p)["id"] for _, p in db.execute("select id, payload from items")]))\''
)


def cut_when(field_deployer, machine, pattern: str, *args, **kw):
    """A deploy whose machine loses power as soon as the deploy prints a line matching
    `pattern`; the seconds until SSH answered again."""
    hit = threading.Event()

    def on_line(line: str) -> None:
        if not hit.is_set() and re.search(pattern, line):
            hit.set()
            machine.pull_plug()

    proc = field_deployer.push(*args, on_line=on_line, **kw)
    out = proc.stdout + proc.stderr
    assert hit.is_set(), f"the deploy never said /{pattern}/:\n{out}"
    assert proc.returncode != 0, out
    assert "Traceback" not in out, out  # a connection lost is one line, not a traceback
    return machine.power_on()


def common_prefix(before: list[dict], after: list[dict]) -> int:
    """How many of the first events are the same (by id) in both lists."""
    n = 0
    while n < min(len(before), len(after)) and before[n]["id"] == after[n]["id"]:
        n += 1
    return n


def assert_sound(machine) -> str:
    """`current` is a whole release, every blob is what its name says, and the daemon is
    healthy on `current`; returns the release id."""
    current = machine.ssh("admin", f"sudo -n readlink {ROOT}/current").stdout.strip()
    assert current.startswith("releases/"), current
    meta = machine.ssh("admin", f"sudo -n cat {ROOT}/{current}/release.json").stdout
    assert json.loads(meta)["id"] == current.split("/", 1)[1], meta
    bad = machine.ssh("admin", BAD_BLOBS, check=False)
    assert bad.stdout == "" and bad.returncode == 0, bad.stdout + bad.stderr
    say(f"power back -> /healthz 200 {healthy_within(machine, 300):.1f} s after SSH answered")
    loaded = status(machine)["config_file"]
    assert loaded == f"{ROOT}/{current}/edgefer.toml", (loaded, current)
    return current.split("/", 1)[1]


def test_4_a_power_cut_while_a_deploy_ships_leaves_the_old_release_running(
    deployed, field_deployer, machine, config
):
    """edge-fast's model files are new to the device: the plug goes while they are sent."""
    fast = variant(config, "fast.toml", "summary_interval = 5", "summary_interval = 8")
    took = cut_when(
        field_deployer, machine, r"sending \S+", fast, "--health-timeout", HEALTH_TIMEOUT,
        bundle="edge-fast",
    )  # fmt: skip
    say(f"cut while sending -> SSH again in {took:.1f} s")
    assert_sound(machine)
    again = field_deployer.push(fast, "--health-timeout", HEALTH_TIMEOUT, bundle="edge-fast")
    assert again.returncode == 0, again.stdout + again.stderr
    assert status(machine)["bundle"] == "edge-fast"


def test_4_a_power_cut_during_the_switch_leaves_a_whole_release_running(
    deployed, field_deployer, machine, config
):
    """The plug goes the moment `current` was switched (the next step starts the daemon)."""
    changed = variant(config, "switch.toml", "summary_interval = 5", "summary_interval = 9")
    took = cut_when(
        field_deployer, machine, r"starting \S+, waiting for /healthz", changed,
        "--health-timeout", HEALTH_TIMEOUT,
    )  # fmt: skip
    say(f"cut during the switch -> SSH again in {took:.1f} s")
    running = assert_sound(machine)
    say(f"after the cut, current is {running}")
    again = field_deployer.push(changed, "--health-timeout", HEALTH_TIMEOUT)
    out = again.stdout + again.stderr
    assert again.returncode == 0, out
    assert "another deploy" not in out, out


def test_4_a_power_cut_right_after_a_deploy_keeps_what_it_deployed(
    deployed, field_deployer, machine, config
):
    """The plug pulled as soon as a deploy says it is done (its new config was written seconds
    before): that release must be the one that runs after the power comes back."""
    changed = variant(config, "power.toml", "summary_interval = 5", "summary_interval = 7")
    proc = field_deployer.push(changed, "--health-timeout", HEALTH_TIMEOUT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    release = re.search(r"deployed\s+(\S+)", proc.stdout)
    took = machine.power_cut()
    say(f"power cut after a deploy -> SSH again in {took:.1f} s")
    running = assert_sound(machine)
    assert release and running == release.group(1), (running, proc.stdout)


def test_4_a_power_cut_while_the_daemon_writes_events_loses_no_stored_event(deployed, machine):
    """The broker stopped (and kept off at boot), so events pile up in the MQTT spool, whose
    rows are committed (WAL, synchronous=FULL) before send() returns: every row there before the
    cut must be there after it. JSONL lines are synced every second: what the file held
    before the cut is still there after it, but for at most its last second, and once the
    daemon is back every line is a whole event (a cut can leave a torn line or NUL bytes where
    the unsynced end was; the daemon cuts them off when it opens the file)."""
    machine.ssh("admin", "sudo -n systemctl disable --now mosquitto")
    try:
        state = daemon_env(machine, "STATE_DIRECTORY")
        spool = f"{state}/spool/mqtt.sqlite"
        jsonl = f"{state}/events.jsonl"
        healthy_within(machine, 120)
        before_rows, t0 = set(), time.monotonic()
        while len(before_rows) < 3:  # a summary every 5-9 s
            assert time.monotonic() - t0 < 120, f"the spool holds {len(before_rows)} rows"
            time.sleep(2)
            before_rows = set(json.loads(machine.ssh("admin", f"{SPOOL_ROWS} {spool}").stdout))
        before_lines = events(machine, jsonl)
        machine.pull_plug()
        took = machine.power_on()
        say(f"cut while writing events -> SSH again in {took:.1f} s")
        after_rows = set(json.loads(machine.ssh("admin", f"{SPOOL_ROWS} {spool}").stdout))
        lost_rows = before_rows - after_rows
        healthy_within(machine, 300)  # the daemon is back: it has repaired the file at its open
        after_lines = events(machine, jsonl)  # every line parses: none torn, no NUL bytes
        kept = common_prefix(before_lines, after_lines)
        # What follows the kept lines was written after the boot, by a new run of the daemon:
        # no line of the old run reappears out of order, none is torn.
        old_runs = {e["run"] for e in before_lines}
        assert not [e for e in after_lines[kept:] if e["run"] in old_runs], after_lines[kept:]
        lost = before_lines[kept:]
        say(
            f"spool: {len(before_rows)} rows before the cut, {len(lost_rows)} lost; "
            f"JSONL: {len(before_lines)} lines before, {len(lost)} lost"
        )
        assert not lost_rows
        if lost:
            span = before_lines[-1]["monotonic"] - lost[0]["monotonic"]
            assert span <= 1.5, f"JSONL lost {len(lost)} lines over {span:.1f} s"
    finally:
        machine.ssh("admin", "sudo -n systemctl enable --now mosquitto")
    assert_sound(machine)
