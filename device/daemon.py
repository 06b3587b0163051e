"""`edgefer daemon`: camera -> faces -> expressions -> tracks -> events -> outputs, unattended.

The main loop takes the newest frame from the capture thread (never a backlog), runs the same
`Pipeline` as `edgefer detect`, follows faces with `Tracker` and turns what changes into events
for every configured output. SIGTERM/SIGINT stop it cleanly: capture stops, open tracks are closed
with their `face_left` events, every output is flushed and closed, exit 0. SIGHUP re-reads the
config; an invalid one is refused with a log line and the running one stays.

Privacy: frames and face crops are never written anywhere; only events (boxes and scores) leave.
The status page's camera preview (`server.preview = true`, off by default) is the one exception
to "frames never leave": the newest annotated frame, JPEG-encoded in memory on request.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections import deque
from pathlib import Path

import numpy as np

from edgefer.device.capture import Capture
from edgefer.device.daemon_config import DaemonConfig, load_config, redact_uri
from edgefer.device.draw import annotated_jpeg
from edgefer.device.events import EventBuilder
from edgefer.device.outputs.jsonl import JsonlSink
from edgefer.device.outputs.mqtt import MqttSink
from edgefer.device.outputs.webhook import WebhookSink
from edgefer.device.pipeline import BlazeFaceConfig, Pipeline
from edgefer.device.sd_notify import notify, watchdog_interval
from edgefer.device.status_server import Metrics, StatusServer
from edgefer.device.tracks import Tracker, TrackerConfig
from edgefer.errors import EdgeferError

log = logging.getLogger("edgefer.daemon")
RECENT_EVENTS = 10  # the newest events /status shows
FPS_WINDOW = 5.0  # seconds of frames behind the FPS that /status shows


def build_pipeline(config: DaemonConfig) -> Pipeline:
    from edgefer.bundled import resolve_bundle

    detector = config.detector
    blazeface = (
        BlazeFaceConfig(detector.blazeface_range, detector.threshold)
        if detector.kind == "blazeface"
        else None
    )
    return Pipeline.from_bundle(
        resolve_bundle(config.bundle),
        config.backend,
        config.threads,
        margin=config.margin,
        blazeface=blazeface,
    )


def build_sinks(config: DaemonConfig) -> list:
    outputs = config.outputs
    sinks = [JsonlSink(outputs.jsonl)] if outputs.jsonl is not None else []
    if outputs.mqtt is not None:
        sinks.append(MqttSink(outputs.mqtt))
    if outputs.webhook is not None:
        sinks.append(WebhookSink(outputs.webhook))
    return sinks


class Daemon:
    def __init__(
        self, config: DaemonConfig, config_path: str | Path | None = None, overrides: list[str] = ()
    ):
        self.config_path, self.overrides = config_path, list(overrides)
        self.stop_requested = threading.Event()
        self.reload_requested = threading.Event()
        self.started = time.monotonic()
        self.frames = 0
        self.recent_events: deque[dict] = deque(maxlen=RECENT_EVENTS)
        self.frame_times: deque[float] = deque(maxlen=30)  # when the newest frames were done
        self._apply(config, build_pipeline(config), start_seq=0)

    def _apply(self, config: DaemonConfig, pipeline: Pipeline, start_seq: int) -> None:
        """Build every part from a validated config (at start and on a good SIGHUP); event
        sequence numbers go on from `start_seq`."""
        self.config = config
        self.pipeline = pipeline
        self.sinks = build_sinks(config)
        self.capture = Capture(config.source)
        self.tracker = Tracker(TrackerConfig(**config.tracking.model_dump()))
        self.events = EventBuilder(
            self.pipeline.labels,
            config.events.min_hold,
            config.events.summary_interval,
            start_seq=start_seq,
        )
        self.metrics = Metrics(self.pipeline.manifest.arch, config.backend)
        # Read when /metrics is scraped, so they stay true while no frame comes (camera down).
        m = self.metrics
        m.tracks.set_function(lambda: len(self.tracker.tracks))
        m.dropped.set_function(lambda: self.capture.frames_dropped)
        m.reconnects.set_function(lambda: self.capture.reconnects)
        m.spool.set_function(lambda: sum(s.depth() for s in self.sinks if hasattr(s, "depth")))
        self.newest: tuple[np.ndarray, list] | None = None  # frame and detections, for preview
        self.open_tracks: list[dict] = []
        self.server = StatusServer(
            config.server, self.metrics, self.status, self.healthy, self.preview
        )

    def healthy(self) -> bool:
        """Frames flow: what /healthz answers."""
        return not self.capture.stalled()

    def preview(self) -> bytes | None:
        """The newest frame with its boxes, as JPEG (server thread, only with preview on)."""
        newest = self.newest
        return None if newest is None else annotated_jpeg(*newest)

    def fps(self) -> float:
        """Frames processed per second over the last FPS_WINDOW seconds (0 once frames stop)."""
        now = time.monotonic()
        recent = [t for t in list(self.frame_times) if now - t <= FPS_WINDOW]
        if len(recent) < 2:
            return 0.0
        return round((len(recent) - 1) / (recent[-1] - recent[0]), 1)

    def status(self) -> dict:
        cap = self.capture
        now = time.monotonic()
        age = None if cap.last_frame_at is None else round(now - cap.last_frame_at, 3)
        return {
            "uptime_seconds": round(now - self.started, 1),
            "healthy": self.healthy(),
            "fps": self.fps(),
            "model": self.pipeline.manifest.arch,
            "backend": self.config.backend,
            "detector": self.config.detector.kind,
            "source": {
                "uri": redact_uri(self.config.source.uri),
                "state": cap.state,
                "frames_read": cap.frames_read,
                "frames_dropped": cap.frames_dropped,
                "reconnects": cap.reconnects,
                "last_frame_age_seconds": age,
            },
            "frames_processed": self.frames,
            "tracks": self.open_tracks,  # seen now or within tracking.lost_after
            "events": dict(self.events.counts),
            "recent_events": list(self.recent_events),  # newest last
            "preview": self.newest is not None,  # /preview.jpg has a frame to show
        }

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, lambda *_: self.stop_requested.set())
        signal.signal(signal.SIGINT, lambda *_: self.stop_requested.set())
        signal.signal(signal.SIGHUP, lambda *_: self.reload_requested.set())

    def run(self) -> int:
        log.info(
            "edgefer daemon: source %s, model %s",
            redact_uri(self.config.source.uri),
            self.pipeline.manifest.arch,
        )
        self.capture.start()
        self.server.start()
        log.info("status server on http://%s:%d/", self.config.server.bind, self.server.port)
        notify("READY=1")
        ping_every, last_ping = watchdog_interval(), 0.0
        try:
            while not self.stop_requested.is_set():
                if ping_every and time.monotonic() - last_ping >= ping_every:
                    notify("WATCHDOG=1")  # the loop is alive (frames or not: /healthz tells)
                    last_ping = time.monotonic()
                if self.reload_requested.is_set():
                    notify("RELOADING=1")
                    self._reload()
                    notify("READY=1")
                self.step()
        finally:
            notify("STOPPING=1")
            self.shutdown()
        return 0

    def step(self) -> None:
        """One frame (or, with none in time, the passage of time: tracks can still close)."""
        frame = self.capture.latest(timeout=0.5)
        if frame is None:
            t = time.monotonic()
            self._emit(self.events.on_frame(t, self.tracker.update(t, []), processed=False))
        else:
            self._process(frame)
        # Built here, in the loop's thread: the server thread must not read tracks mid-update.
        labels = self.pipeline.labels
        self.open_tracks = [
            {
                "track": tr.id,
                "box": list(tr.box),
                "label": labels[tr.label_index()],
                "scores": {c: round(float(s), 4) for c, s in zip(labels, tr.scores)},
            }
            for tr in self.tracker.tracks
        ]

    def _process(self, frame) -> None:
        result = self.pipeline(frame.image)
        detections = [
            (d.box, np.array([d.scores[c] for c in self.pipeline.labels]))
            for d in result.detections
        ]
        self.frames += 1
        self.frame_times.append(time.monotonic())
        if self.config.server.preview:
            self.newest = (frame.image, result.detections)
        update = self.tracker.update(frame.t, detections)
        self._emit(self.events.on_frame(frame.t, update))
        m = self.metrics
        m.frames.inc()
        m.faces.inc(len(detections))
        for stage, ms in result.timings.items():
            m.stage.labels(stage).observe(ms)

    def _emit(self, events: list[dict]) -> None:
        for event in events:
            self.recent_events.append(event)
            self.metrics.events.labels(event["type"]).inc()
            if event["type"] == "summary" and event["fps"] is not None:
                self.metrics.fps.set(event["fps"])
            for sink in self.sinks:
                sink.send(event)

    def _reload(self) -> None:
        self.reload_requested.clear()
        try:
            config = load_config(self.config_path, self.overrides)
            pipeline = build_pipeline(config)  # a bundle that does not fit is refused too
        except EdgeferError as exc:
            log.error("SIGHUP: config refused, the running one stays: %s", exc)
            return
        self.shutdown()
        self._apply(config, pipeline, start_seq=self.events.seq)
        self.capture.start()
        self.server.start()
        log.info("SIGHUP: config reloaded")

    def shutdown(self) -> None:
        """Stop capture, close open tracks with their face_left events, flush every output."""
        self.capture.stop()
        self.server.stop()
        t = time.monotonic()
        self._emit([self.events.face_left(tr, tr.last_seen) for tr in self.tracker.close_all()])
        for sink in self.sinks:
            sink.close()
        self.sinks = []
        log.info("edgefer daemon: stopped after %.0f s, %d frames", t - self.started, self.frames)
