"""systemd's watchdog restarts a daemon whose frame loop hangs, even while its server thread lives.

`edgefer daemon` sends WATCHDOG=1 from its frame loop, so a loop that blocks stops the pings and
systemd (WatchdogSec) kills and restarts it. The hang here is one that happens in the field: the
JSONL event log is a named pipe whose reader stops reading (a log shipper that stalls), and the
sink writes from the loop's own thread, so the loop blocks once the pipe is full. The status
server's thread is not blocked and still answers /healthz: an HTTP liveness check alone would
not notice the hang.
"""

from __future__ import annotations

import fcntl
import itertools
import json
import os
import re
import select
import socket
import subprocess
import sys
import threading
import time

from tests.device.daemons import get
from tests.polling import wait_for

INTERVAL = 0.5  # seconds between pings: half of WATCHDOG_USEC
SILENCE = 4 * INTERVAL  # no ping for this long: systemd would have restarted the daemon


class Pings:
    """Receives what the daemon sends to $NOTIFY_SOCKET, as systemd would, with arrival times."""

    def __init__(self, path: str):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.1)
        self.received: list[tuple[float, str]] = []
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._receive, daemon=True)
        self.thread.start()

    def _receive(self) -> None:
        while not self.done.is_set():
            try:
                message = self.sock.recv(256).decode()
            except TimeoutError:
                continue
            self.received.append((time.monotonic(), message))

    def times(self, since: float = 0.0) -> list[float]:
        return [t for t, m in list(self.received) if m == "WATCHDOG=1" and t >= since]

    def silent_for(self) -> float:
        """Seconds since the last WATCHDOG=1."""
        times = self.times()
        return time.monotonic() - times[-1] if times else float("inf")

    def close(self) -> None:
        self.done.set()
        self.thread.join(5)
        self.sock.close()


class PipeReader:
    """The reading end of a FIFO with a one-page buffer, read by a thread while `reading` is set."""

    def __init__(self, path: str):
        os.mkfifo(path)
        # Open for reading first, without blocking (no writer yet), so that the daemon's open for
        # writing does not block; then back to blocking reads, guarded by select.
        self.fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        flags = fcntl.fcntl(self.fd, fcntl.F_GETFL)
        fcntl.fcntl(self.fd, fcntl.F_SETFL, flags & ~os.O_NONBLOCK)
        # The kernel rounds up to its minimum, one page: a few lines fill it.
        self.size = fcntl.fcntl(self.fd, fcntl.F_SETPIPE_SZ, 1032)
        self.data = bytearray()
        self.reading = threading.Event()
        self.reading.set()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        while not self.done.is_set():
            if not self.reading.is_set():
                time.sleep(0.05)
                continue
            ready, _, _ = select.select([self.fd], [], [], 0.1)
            if not ready:
                continue
            chunk = os.read(self.fd, 65536)
            if chunk:
                self.data.extend(chunk)
            else:  # no writer (not yet, or no more)
                time.sleep(0.05)

    def lines(self) -> list[dict]:
        return [json.loads(line) for line in bytes(self.data).split(b"\n")[:-1]]

    def close(self) -> None:
        self.done.set()
        self.thread.join(5)
        os.close(self.fd)


def status_port(log_path) -> int | None:
    found = re.search(r"status server on http://127\.0\.0\.1:(\d+)/", log_path.read_text())
    return int(found.group(1)) if found else None


def test_a_hung_frame_loop_stops_the_watchdog_pings_while_the_status_server_answers(
    tmp_path, slow_face_video
):
    pings = Pings(str(tmp_path / "notify.sock"))
    events = PipeReader(str(tmp_path / "events.jsonl"))
    config = tmp_path / "edgefer.toml"
    config.write_text(
        f'[source]\nuri = "{slow_face_video}"\nloop = true\nmax_fps = 15\n'
        f'[outputs.jsonl]\npath = "{tmp_path / "events.jsonl"}"\n'
        "[events]\nsummary_interval = 0.1\n[server]\nport = 0\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EDGEFER_", "WATCHDOG_"))}
    env |= {"NOTIFY_SOCKET": str(tmp_path / "notify.sock"), "WATCHDOG_USEC": "1000000"}
    log = tmp_path / "daemon.log"
    with open(log, "w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "edgefer", "daemon", "--config", str(config)],
            stderr=stderr,
            env=env,
        )
    try:
        assert wait_for(lambda: len(pings.times()) >= 4, 30), log.read_text()
        assert "READY=1" in [m for _, m in pings.received]
        assert status_port(log), log.read_text()
        base = f"http://127.0.0.1:{status_port(log)}"
        assert wait_for(lambda: {"face_appeared", "summary"} <= {e["type"] for e in events.lines()})

        # Read: the loop runs and pings every INTERVAL.
        start = time.monotonic()
        time.sleep(6 * INTERVAL)
        steady = pings.times(since=start)
        assert len(steady) >= 4 and max(b - a for a, b in itertools.pairwise(steady)) < 3 * INTERVAL

        # Stop reading: the pipe fills, the loop blocks in its write, the pings stop...
        events.reading.clear()
        stopped = time.monotonic()
        assert wait_for(lambda: pings.silent_for() >= SILENCE, 10), (
            f"pings went on for {time.monotonic() - stopped:.1f} s after the event reader "
            f"stopped: {[round(t - stopped, 2) for t in pings.times(since=stopped)]}"
        )
        hung = time.monotonic()
        # ... while the status server still answers, healthy even (the camera thread reads on).
        assert get(base + "/healthz")[0] == 200
        code, body = get(base + "/status")
        assert (
            code == 200 and json.loads(body)["cameras"]["default"]["source"]["state"] == "streaming"
        )
        assert pings.times(since=hung - SILENCE) == []  # still silent after those answers

        # Read again: the loop was blocked, not dead, and pings again.
        events.reading.set()
        resumed = time.monotonic()
        assert wait_for(lambda: len(pings.times(since=resumed)) >= 3, 5)
        seqs = [e["seq"] for e in events.lines()]  # the loop waited: no event was dropped
        assert seqs == list(range(1, len(seqs) + 1))
    finally:
        proc.kill()
        proc.wait(10)
        events.close()
        pings.close()
