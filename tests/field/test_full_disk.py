"""Item 8: the SD card fills up under the daemon. The filesystem that holds its events and
spool (the root, as on a Pi) is filled to the last block pi may use; root's reserved blocks
keep sshd and the journal going, as they do on a Pi. The daemon must keep running, drop and
count what it cannot store, say so in /status and /metrics, and write again, by itself, once
there is room."""

from __future__ import annotations

import re
import time

import pytest

from tests.field.checks import as_pi_unseen, daemon_env, events, fetch, status, unit
from tests.field.conftest import say

pytestmark = pytest.mark.field

FILLER = "/home/pi/filler"
# All the room pi may use: fallocate takes nearly all of it (and fails for the last blocks,
# which the file's own extent tree needs, keeping what it got), dd the rest.
FILL = as_pi_unseen(
    f"fallocate -l $(df --output=avail -B1 /home/pi | tail -1) {FILLER}; "
    f"dd if=/dev/zero of={FILLER}.rest bs=4k 2>/dev/null; true"
)


def dropped(machine) -> dict[str, float]:
    """edgefer_events_dropped_total by output, from /metrics."""
    code, text = fetch(machine, "/metrics")
    assert code == 200, text[:300]
    found = re.findall(
        r'^edgefer_events_dropped_total\{output="(\w+)"\} (\S+)$', text, re.MULTILINE
    )
    return {name: float(value) for name, value in found}


def test_8_a_full_disk_costs_events_not_the_daemon_and_writing_resumes(deployed, machine):
    state = daemon_env(machine, "STATE_DIRECTORY")
    journal_file = f"{state}/events.jsonl"
    pid = unit(machine, "MainPID")["MainPID"]
    before = dropped(machine)
    try:
        machine.ssh("admin", FILL)
        free = machine.ssh("admin", "df --output=avail -B1 /home/pi | tail -1").stdout.strip()
        assert free == "0", f"{free} bytes still free for pi"
        t0 = time.monotonic()
        # The spool at its next event; the event log once its last block is full (a 4 kB block
        # holds about a minute of this config's events).
        while not all(dropped(machine).get(o, 0) > before.get(o, 0) for o in ("jsonl", "mqtt")):
            assert time.monotonic() - t0 < 150, f"dropped: {before} -> {dropped(machine)}"
            time.sleep(3)
        outputs = status(machine)["outputs"]
        assert "No space left" in (outputs["jsonl"]["error"] or ""), outputs
        assert outputs["mqtt"]["state"] == "disk_full", outputs
        say(f"disk full: dropped {dropped(machine)} after {time.monotonic() - t0:.0f} s")
        assert unit(machine, "MainPID", "ActiveState") == {"MainPID": pid, "ActiveState": "active"}
    finally:
        machine.ssh("admin", f"sudo -n rm -f {FILLER} {FILLER}.rest")
    written = len(events(machine, journal_file))
    t1 = time.monotonic()
    while len(events(machine, journal_file)) <= written:
        assert time.monotonic() - t1 < 60, "no event written after the disk had room again"
        time.sleep(3)
    say(f"room again -> events written again within {time.monotonic() - t1:.0f} s")
    outputs = status(machine)["outputs"]
    assert outputs["jsonl"]["error"] is None and outputs["mqtt"]["state"] != "disk_full", outputs
    assert unit(machine, "MainPID")["MainPID"] == pid  # never restarted
