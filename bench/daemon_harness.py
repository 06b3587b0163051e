"""What the daemon benchmarks (daemon_soak.py, daemon_overhead.py) share: the face video, a config
with the outputs on, `edgefer daemon` as a child process, a real Mosquitto, and the daemon's
/metrics read back as numbers.

The daemon runs as `edgefer daemon` in a process of its own, as on a device, so the RSS measured
is the daemon's alone and the benchmark's own work (subscribing, scraping) is not in its
interpreter. The broker and the subscriber are the daemon tests' (tests/device/mqtt_broker.py),
so the benchmarks exercise the same setup the tests trust.
"""

from __future__ import annotations

import json
import math
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

# The daemon tests' helpers, for this module and the scripts (which import them from here).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from prometheus_client.parser import text_string_to_metric_families

from edgefer.errors import EdgeferError
from tests.device.daemons import events_of, get  # noqa: F401 (events_of: for the scripts)
from tests.device.mqtt_broker import Broker, Subscriber, free_port
from tests.polling import wait_for

# OpenCV's worker threads, off in the daemon (its `threads` key sets only the interpreter's) as in
# the benchmark's own process: one thread compared with one thread.
ONE_THREAD = {"OPENCV_FOR_THREADS_NUM": "1", "OMP_NUM_THREADS": "1"}
STARTUP_SECONDS = 120  # model load and first frame, on a loaded 2-core machine
STOP_SECONDS = 5.0  # SIGTERM to exit: the limit
DELIVERY_SECONDS = 10  # after the daemon exits, for its last events to reach their receivers
FACE_VIDEO = "edgefer.samples face video, 300 frames, 30 FPS"  # in results: the default video


def fresh_workdir(out: Path) -> Path:
    """`out`/run, emptied: the daemon appends to an event log and keeps its spool, so a previous
    run's would be counted as this one's. Kept after the run, for a look at what happened."""
    workdir = out / "run"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    return workdir


def face_video(workdir: Path, video: str | None) -> Path:
    """`video`, or 10 s of the moving-face video at 30 FPS (the daemon tests' video)."""
    if video:
        if not Path(video).is_file():
            raise EdgeferError(f"--video {video}: no such file")
        return Path(video)
    from edgefer.samples import write_face_video

    return write_face_video(workdir / "face.mp4", frames=300)


def start_broker(workdir: Path) -> Broker:
    broker = Broker(workdir)
    if not Path(broker.exe).is_file():
        raise EdgeferError("mosquitto not found (apt-get install mosquitto)")
    try:
        return broker.start()
    except RuntimeError as exc:  # it did not listen within 10 s
        raise EdgeferError(f"{exc} ({broker.conf})") from None


def write_config(
    workdir: Path,
    video: Path,
    broker_port: int,
    *,
    pace: bool,
    summary_interval: float,
    webhook_url: str | None = None,
) -> tuple[Path, int]:
    """A daemon config in `workdir` (its event log and spool there too) and its status port: one
    interpreter thread, the video looping, JSONL (never rotated: every event stays countable),
    MQTT to the broker and, given a URL, the webhook."""
    port = free_port()
    webhook = f"[outputs.webhook]\nurl = {json.dumps(webhook_url)}\n" if webhook_url else ""
    path = workdir / "edgefer.toml"
    path.write_text(
        "threads = 1\n"
        f"[source]\nuri = {json.dumps(str(video))}\nloop = true\n"
        f"pace = {json.dumps(pace)}\n"
        f"[events]\nsummary_interval = {summary_interval}\n"
        f"[outputs.jsonl]\npath = {json.dumps(str(workdir / 'events.jsonl'))}\n"
        "max_bytes = 1000000000\n"
        f'[outputs.mqtt]\nhost = "127.0.0.1"\nport = {broker_port}\n'
        f"spool_dir = {json.dumps(str(workdir / 'spool'))}\n"
        f"{webhook}"
        f"[server]\nport = {port}\n"
    )
    return path, port


@dataclass
class Snapshot:
    """One read of /metrics: counters and gauges, and the stage histograms' cumulative buckets."""

    t: float  # time.time() when read
    frames: float
    dropped: float
    spool: float
    events: dict[str, float]
    buckets: dict[str, list[tuple[float, float]]]  # stage -> [(upper bound ms, cumulative count)]
    sums: dict[str, float]  # stage -> total ms

    def stage(self, stage: str, since: Snapshot | None = None) -> dict[str, float | None]:
        """p50/p95/p99 (estimated from the buckets, as Prometheus's histogram_quantile does)
        and the exact mean, in ms, of the frames after `since` (all of them without)."""
        buckets = self.buckets.get(stage, [])
        total = self.sums.get(stage, 0.0)
        if since is not None:
            before = dict(since.buckets.get(stage, []))
            buckets = [(le, n - before.get(le, 0.0)) for le, n in buckets]
            total -= since.sums.get(stage, 0.0)
        count = buckets[-1][1] if buckets else 0.0
        out = {f"p{round(100 * q)}": quantile(buckets, q) for q in (0.5, 0.95, 0.99)}
        out["mean"] = total / count if count else None
        return {k: None if v is None else round(v, 2) for k, v in out.items()}


def quantile(buckets: list[tuple[float, float]], q: float) -> float | None:
    """The q-quantile of a histogram's cumulative buckets (the last one +Inf), linear within a
    bucket; None if empty, the highest finite bound if it falls in +Inf."""
    if not buckets or buckets[-1][1] == 0:
        return None
    rank = q * buckets[-1][1]
    low, below = 0.0, 0.0
    for le, count in buckets:
        if count >= rank:
            return low if math.isinf(le) else low + (le - low) * (rank - below) / (count - below)
        low, below = le, count


def _scrape(url: str) -> Snapshot:
    code, text = get(f"{url}/metrics")
    if code != 200:
        raise EdgeferError(f"{url}/metrics answered {code}")
    # Every camera's samples summed: the daemon's totals, however many cameras it has.
    values, events, buckets, sums = Counter(), Counter(), {}, Counter()
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "edgefer_stage_ms_bucket":
                stage = buckets.setdefault(s.labels["stage"], Counter())
                stage[float(s.labels["le"])] += s.value
            elif s.name == "edgefer_stage_ms_sum":
                sums[s.labels["stage"]] += s.value
            elif s.name == "edgefer_events_total":
                events[s.labels["type"]] += s.value
            else:
                values[s.name] += s.value
    return Snapshot(
        time.time(),
        values["edgefer_frames_total"],
        values["edgefer_frames_dropped"],
        values["edgefer_spool_depth"],
        dict(events),
        {stage: sorted(b.items()) for stage, b in buckets.items()},
        dict(sums),
    )


class DaemonProcess:
    """`edgefer daemon --config FILE` as a child process with one OpenCV thread, its log in
    `log`; `url` is its status server."""

    def __init__(self, config: Path, port: int, log: Path):
        self.log, self.url = log, f"http://127.0.0.1:{port}"
        with open(log, "w") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "edgefer", "daemon", "--config", str(config)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, **ONE_THREAD},
            )

    def healthz(self) -> int:
        """/healthz's status code (0: no answer)."""
        try:
            return get(f"{self.url}/healthz")[0]
        except OSError:
            return 0

    def wait_ready(self) -> None:
        """Until /healthz says frames flow; a daemon that exits or never gets there is an error
        that names its log."""
        if not wait_for(
            lambda: self.proc.poll() is not None or self.healthz() == 200, STARTUP_SECONDS, 0.2
        ):
            self.kill()
            raise EdgeferError(f"the daemon had no frames after {STARTUP_SECONDS} s ({self.log})")
        if self.proc.poll() is not None:
            raise self._exited()

    def _exited(self) -> EdgeferError:
        lines = self.log.read_text().strip().splitlines() or ["(no output)"]
        return EdgeferError(
            f"the daemon exited with {self.proc.returncode}: {lines[-1]} ({self.log})"
        )

    def metrics(self) -> Snapshot:
        """/metrics now; a daemon that has exited is an error that names its log."""
        if self.proc.poll() is not None:
            raise self._exited()
        return _scrape(self.url)

    def rss_mb(self) -> float:
        """Resident memory now, from /proc (Linux, as on the devices)."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise EdgeferError(f"/proc/{self.proc.pid}/status has no VmRSS")

    def cpu_seconds(self) -> float:
        """CPU time it has used so far, all threads, user and system (from /proc)."""
        stat = Path(f"/proc/{self.proc.pid}/stat").read_text()
        utime, stime = stat.rsplit(")", 1)[1].split()[11:13]  # fields 14 and 15 of proc(5)
        return (int(utime) + int(stime)) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> tuple[int | None, float]:
        """SIGTERM; (exit code, seconds to exit), the code None if it outlived STOP_SECONDS (then
        it is killed)."""
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            code = None
        return code, round(time.monotonic() - started, 2)

    def kill(self) -> None:
        """For cleanup after an error: gone, whatever state it is in."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def delivered_ids(subscriber: Subscriber) -> set[str]:
    """The ids of the events a subscriber got, each once (QoS 1 may deliver one twice)."""
    return {e["id"] for e in subscriber.events()}


def machine() -> dict:
    """What a reader needs to judge the timings: when, the CPU, its cores and how busy it was."""
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }
