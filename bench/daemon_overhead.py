"""Overhead benchmark: the daemon with every output on keeps >= 90% of the bare pipeline's FPS on
the same video, one thread (the camera-daemon issue).

- bare: the daemon's own pipeline (`build_pipeline` of device/daemon/loop.py, on the same config) over
  the video's frames decoded in advance, back to back: detection, crop and expression model.
- daemon: `edgefer daemon` on that config with the video unpaced (`source.pace = false`: every
  frame, as fast as it processes them), face tracks and events, JSONL, MQTT to a real Mosquitto, the
  webhook to an HTTP endpoint here, and /metrics and /status scraped every second; its FPS comes
  from its edgefer_frames counter.

Each is timed for --seconds after --warmup seconds, and they alternate --runs times, so the load
on a machine falls on both alike; the result is the median of the runs' daemon/bare ratios. The
daemon also decodes the video (in its capture thread, beside the loop) where the bare loop decodes
nothing: the strict comparison. CPU milliseconds per frame (the bare loop's process, the whole
daemon process) are shown too: on a shared machine they move less with the load than FPS does.

    python bench/daemon_overhead.py [--runs 3] [--seconds 20] [--video VIDEO] [--out DIR]

Writes results.json to --out (default bench/out/daemon_overhead) and keeps the last daemon run's
config, log, event log and spool in its run/; prints a table; exit 1 below --min-ratio, 2 if it
cannot run.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import statistics
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Self

import cv2
from daemon_harness import (
    DELIVERY_SECONDS,
    FACE_VIDEO,
    DaemonProcess,
    Subscriber,
    delivered_ids,
    events_of,
    face_video,
    fresh_workdir,
    get,
    machine,
    start_broker,
    wait_for,
    write_config,
)
from tqdm import tqdm

from edgefer.cli.common import format_table
from edgefer.device.daemon.config import DaemonConfig, load_config
from edgefer.device.daemon.loop import build_pipeline
from edgefer.device.sources import open_source
from edgefer.errors import EdgeferError


class WebhookReceiver:
    """An endpoint on a free loopback port that answers the daemon's webhook POSTs with 204 and
    notes the event ids."""

    def __init__(self):
        self.ids: set[str] = set()
        ids = self.ids

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                ids.add(json.loads(body)["id"])
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):  # one line per POST would bury the progress
                pass

        self.httpd = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/events"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def bare_run(config: DaemonConfig, frames: list, warmup: float, seconds: float) -> dict:
    """The daemon's pipeline alone, cycling through decoded frames: frames a second, and CPU
    milliseconds a frame (this process's, all threads)."""
    pipe = build_pipeline(config)
    cycle = itertools.cycle(frames)

    def run(for_seconds: float) -> tuple[int, float, float]:
        n, started, cpu = 0, time.perf_counter(), time.process_time()
        while (elapsed := time.perf_counter() - started) < for_seconds:
            pipe(next(cycle))
            n += 1
        return n, elapsed, time.process_time() - cpu

    run(warmup)
    n, elapsed, cpu = run(seconds)
    return {"fps": n / elapsed, "cpu_ms": 1000 * cpu / n}


def scraped(daemon: DaemonProcess, seconds: float):
    """/metrics and /status read once a second for `seconds`, as a monitoring system would (more
    often than Prometheus's usual 15 s); the last /metrics read."""
    end = time.monotonic() + seconds
    while True:
        snapshot = daemon.metrics()
        get(f"{daemon.url}/status")
        if time.monotonic() >= end:
            return snapshot
        time.sleep(min(1.0, end - time.monotonic()))


def daemon_run(
    config: Path, port: int, workdir: Path, broker_port: int, hook: WebhookReceiver, args
) -> dict:
    """The daemon on `config`, scraped: frames a second and CPU milliseconds a frame (the whole
    process) over --seconds after --warmup, and what reached each output."""
    with contextlib.ExitStack() as stack:
        subscriber = Subscriber(broker_port, "edgefer/+/events/#")
        stack.callback(subscriber.stop)
        daemon = DaemonProcess(config, port, workdir / "daemon.log")
        stack.callback(daemon.kill)
        daemon.wait_ready()
        scraped(daemon, args.warmup)
        first, first_cpu = daemon.metrics(), daemon.cpu_seconds()
        last = scraped(daemon, args.seconds)
        cpu = daemon.cpu_seconds() - first_cpu
        exit_code, _ = daemon.stop()
        ids = {e["id"] for e in events_of(workdir / "events.jsonl")}
        wait_for(lambda: ids <= delivered_ids(subscriber) and ids <= hook.ids, DELIVERY_SECONDS)
        return {
            "fps": round((last.frames - first.frames) / (last.t - first.t), 2),
            "cpu_ms": round(1000 * cpu / (last.frames - first.frames), 2),
            "frames_dropped": int(last.dropped),
            "events": len(ids),
            "mqtt_delivered": len(ids & delivered_ids(subscriber)),
            "webhook_delivered": len(ids & hook.ids),
            "exit_code": exit_code,
        }


def overhead(args, stack: contextlib.ExitStack) -> dict:
    args.out.mkdir(parents=True, exist_ok=True)
    video = face_video(args.out, args.video)
    frames = [f.image for f in open_source(str(video)) if not f.error]
    broker = start_broker(args.out)
    stack.callback(broker.kill)
    load_before = machine()
    runs = []
    for _ in tqdm(range(args.runs), desc="bare, daemon pairs"):
        workdir = fresh_workdir(args.out)
        with WebhookReceiver() as hook:
            config, port = write_config(
                workdir,
                video,
                broker.port,
                pace=False,
                summary_interval=args.summary_interval,
                webhook_url=hook.url,
            )
            bare = bare_run(load_config(config, environ={}), frames, args.warmup, args.seconds)
            run = daemon_run(config, port, workdir, broker.port, hook, args)
        runs.append(
            {
                "bare_fps": round(bare["fps"], 2),
                "bare_cpu_ms": round(bare["cpu_ms"], 2),
                **run,
                "ratio": round(run["fps"] / bare["fps"], 4),
            }
        )
    median = {
        key: statistics.median(r[key] for r in runs)
        for key in ("bare_fps", "fps", "ratio", "bare_cpu_ms", "cpu_ms")
    }
    return {
        "machine": {**load_before, "load_avg_1m_end": machine()["load_avg_1m"]},
        "video": str(video) if args.video else FACE_VIDEO,
        "frames_in_video": len(frames),
        "warmup_s": args.warmup,
        "seconds": args.seconds,
        "runs": runs,
        "median": median,
        "target": f"median daemon/bare FPS >= {args.min_ratio}",
        "pass": median["ratio"] >= args.min_ratio,
    }


def report(r: dict) -> None:
    m = r["machine"]
    print(
        f"\n{r['frames_in_video']}-frame video, {r['seconds']} s timed per run after "
        f"{r['warmup_s']} s, on {m['cpu']} ({m['cores']} cores, load {m['load_avg_1m']} -> "
        f"{m['load_avg_1m_end']})"
    )
    rows = [
        [
            i + 1,
            f"{run['bare_fps']:.1f}",
            f"{run['fps']:.1f}",
            f"{100 * run['ratio']:.1f}%",
            f"{run['bare_cpu_ms']:.2f}",
            f"{run['cpu_ms']:.2f}",
            run["frames_dropped"],
            f"{run['mqtt_delivered']} / {run['webhook_delivered']} / {run['events']}",
            run["exit_code"],
        ]
        for i, run in enumerate(r["runs"])
    ]
    med = r["median"]
    rows.append(
        [
            "median",
            f"{med['bare_fps']:.1f}",
            f"{med['fps']:.1f}",
            f"{100 * med['ratio']:.1f}%",
            f"{med['bare_cpu_ms']:.2f}",
            f"{med['cpu_ms']:.2f}",
            *[""] * 3,
        ]
    )
    headers = ["run", "bare FPS", "daemon FPS", "daemon/bare", "bare CPU ms/frame"]
    headers += ["daemon CPU ms/frame", "dropped", "MQTT / webhook / events", "exit"]
    print(format_table(headers, rows))
    print(f"target {r['target']}: {'met' if r['pass'] else 'MISSED'}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3, help="bare/daemon pairs")
    ap.add_argument("--seconds", type=float, default=20.0, help="timed per run")
    ap.add_argument("--warmup", type=float, default=5.0, help="seconds run before timing")
    ap.add_argument("--summary-interval", type=float, default=10.0, help="the daemon's summaries")
    ap.add_argument("--min-ratio", type=float, default=0.9)
    ap.add_argument("--video", help="a video file (default: the moving-face video, made here)")
    ap.add_argument("--out", type=Path, default=Path("bench/out/daemon_overhead"))
    args = ap.parse_args()
    cv2.setNumThreads(1)  # the daemon gets the same through ONE_THREAD
    try:
        with contextlib.ExitStack() as stack:
            results = overhead(args, stack)
    except EdgeferError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    (args.out / "results.json").write_text(json.dumps(results, indent=1))
    report(results)
    print(f"\n{args.out / 'results.json'}")
    return 0 if results["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
