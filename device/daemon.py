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
import os
import signal
import threading
import time
from collections import deque
from pathlib import Path

import numpy as np

from edgefer.bundled import bundle_name, resolve_bundle
from edgefer.device.capture import Capture
from edgefer.device.daemon_config import DaemonConfig, ServerConfig, load_config, redact_uri
from edgefer.device.draw import annotated_jpeg
from edgefer.device.events import EventBuilder
from edgefer.device.outputs.homeassistant import DEFAULT_CAMERA, Cameras
from edgefer.device.outputs.jsonl import JsonlSink
from edgefer.device.outputs.mqtt import MqttSink
from edgefer.device.outputs.webhook import WebhookSink
from edgefer.device.pipeline import Pipeline
from edgefer.device.pipeline_config import PipelineConfig
from edgefer.device.sd_notify import notify, watchdog_interval
from edgefer.device.status_server import Metrics, StatusServer
from edgefer.device.tracks import FaceTrackConfig, Tracker
from edgefer.errors import EdgeferError, shown

log = logging.getLogger("edgefer.daemon")
RECENT_EVENTS = 10  # the newest events /status shows
FPS_WINDOW = 5.0  # seconds of frames behind the FPS that /status shows


def build_pipeline(config: DaemonConfig) -> Pipeline:
    """The same pipeline as `edgefer detect`'s: the daemon's config is a PipelineConfig."""
    return Pipeline.from_bundle(resolve_bundle(config.bundle), config)


def pipeline_settings(config: DaemonConfig) -> tuple:
    """What the pipeline is built from: a reload that leaves these alone keeps the pipeline."""
    return config.bundle, *(getattr(config, key) for key in PipelineConfig.model_fields)


def _real(config_path: str | Path | None) -> str | None:
    """The file a config path leads to when it is read: `edgefer deploy` tells from it which
    release runs (its path goes through the `current` link, which a deploy moves)."""
    return None if config_path is None else os.path.realpath(config_path)


SINKS = {"jsonl": JsonlSink, "mqtt": MqttSink, "webhook": WebhookSink}


def cameras_of(config: DaemonConfig, pipeline: Pipeline) -> Cameras:
    """What Home Assistant discovery announces: one camera today, the [source]."""
    bundle = bundle_name(resolve_bundle(config.bundle))
    return Cameras((DEFAULT_CAMERA,), tuple(pipeline.labels), bundle)


def build_sinks(
    config: DaemonConfig, running: dict[str, tuple] | None = None, cameras: Cameras | None = None
) -> dict[str, tuple]:
    """{output name: (what it was built from, its sink)}, none started yet. A sink in `running`
    built from the same is kept as it is, connection and queue included. That is its config
    section, and for MQTT with Home Assistant discovery `cameras` too: a reload that changes
    them (another bundle, other labels) rebuilds it, and its start retracts the entities that
    went. If one cannot be built, the new ones built so far are closed and the error goes on:
    nothing half-made."""
    running = running or {}
    sinks: dict[str, tuple] = {}
    try:
        for name, kind in SINKS.items():
            section = getattr(config.outputs, name)
            if section is None:
                continue
            announces = name == "mqtt" and section.homeassistant
            built_from = (section, cameras) if announces else (section,)
            old = running.get(name)
            sinks[name] = old if old and old[0] == built_from else (built_from, kind(*built_from))
    except BaseException:
        for name, (_, sink) in sinks.items():
            if running.get(name, (None, None))[1] is not sink:
                sink.close()
        raise
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
        self.newest: tuple[np.ndarray, list] | None = None  # frame and detections, for preview
        self.open_tracks: list[dict] = []
        self.source_up: bool | None = None  # None until frames flowed or stall_seconds passed
        self.config = config
        self.config_file = _real(config_path)
        self.pipeline = build_pipeline(config)
        self.bundle = bundle_name(resolve_bundle(config.bundle))
        self.tracker = Tracker(FaceTrackConfig(**config.tracking.model_dump()))
        self.events = EventBuilder(
            self.pipeline.labels, config.events.min_hold, config.events.summary_interval
        )
        self.capture = Capture(config.source)
        self.metrics = Metrics(self.outputs)
        self.metrics.describe(self.bundle, self.pipeline.manifest.arch, config.backend)
        # Read when /metrics is scraped, so they stay true while no frame comes (camera down).
        m = self.metrics
        m.fps.set_function(self.fps)
        m.tracks.set_function(lambda: len(self.tracker.tracks))
        m.dropped.set_function(lambda: self.capture.frames_dropped)
        m.reconnects.set_function(lambda: self.capture.reconnects)
        self.sinks = build_sinks(config, cameras=cameras_of(config, self.pipeline))
        try:
            self.server = self._new_server(config.server)
        except EdgeferError:
            self._close_sinks(self.sinks.values())
            raise

    def outputs(self) -> list:
        """The running sinks, for /metrics."""
        return [sink for _, sink in self.sinks.values()]

    def healthy(self) -> bool:
        """Frames flow: what /healthz answers."""
        return not self.capture.stalled()

    def preview(self) -> bytes | None:
        """The newest frame with its boxes, as JPEG (server thread, only with preview on)."""
        newest = self.newest
        return None if newest is None else annotated_jpeg(*newest)

    def fps(self) -> float:
        """Frames processed per second over the last FPS_WINDOW seconds, or, at rates too slow
        for two frames in that window (a Pi under load, a slow camera), over the last two
        frames; 0 once frames stop (none for stall_seconds)."""
        times = list(self.frame_times)
        now = time.monotonic()
        if len(times) < 2 or now - times[-1] > self.config.source.stall_seconds:
            return 0.0
        recent = [t for t in times if now - t <= FPS_WINDOW]
        span = recent if len(recent) >= 2 else times[-2:]
        return round((len(span) - 1) / (span[-1] - span[0]), 2)

    def status(self) -> dict:
        cap = self.capture
        now = time.monotonic()
        age = None if cap.last_frame_at is None else round(now - cap.last_frame_at, 3)
        return {
            "uptime_seconds": round(now - self.started, 1),
            "healthy": self.healthy(),
            "fps": self.fps(),
            "run": self.events.run,
            "config_file": self.config_file,
            "bundle": self.bundle,
            "model": self.pipeline.manifest.arch,
            "backend": self.config.backend,
            "detector": self.config.detector.kind,
            "source": {
                "uri": redact_uri(self.config.source.uri),
                "state": cap.state,
                "error": cap.error,
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
            "outputs": {name: sink.status() for name, (_, sink) in self.sinks.items()},
        }

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, lambda *_: self.stop_requested.set())
        signal.signal(signal.SIGINT, lambda *_: self.stop_requested.set())
        signal.signal(signal.SIGHUP, lambda *_: self.reload_requested.set())

    def run(self) -> int:
        log.info(
            "edgefer daemon: source %s, model %s (%s), run %s",
            redact_uri(self.config.source.uri),
            self.bundle,
            self.pipeline.manifest.arch,
            self.events.run,
        )
        for _, sink in self.sinks.values():
            sink.start()
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
        self._watch_source()  # first: source_up comes before the faces of its first frame
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

    def _watch_source(self) -> None:
        """source_up when frames flow (after the start, or after an outage); source_down when
        none came for stall_seconds, also when none ever came since the capture started: what
        /healthz says, as events, so consumers hear that a camera went offline."""
        up = not self.capture.stalled()
        if up == self.source_up:
            return
        if not up and self.source_up is None and not self.capture.waited_long_enough():
            return
        self.source_up = up
        uri = redact_uri(self.config.source.uri)
        stall = f"no frame for {self.config.source.stall_seconds:g} s"
        cause = None if up else self.capture.error or stall
        self._emit([self.events.source(time.monotonic(), up, uri, cause)])

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
            for sink in self.outputs():
                sink.send(event)

    def _reload(self) -> None:
        """Apply a changed config without a gap: every new part is built (and the server's new
        port bound) before any running part is touched, so a config that cannot work (a port in
        use, an unwritable path, a bundle that does not fit) leaves the running daemon as it
        was. Parts whose settings did not change stay as they are: the pipeline, the tracks and
        their events, the outputs' connections and queues."""
        self.reload_requested.clear()
        try:
            config = load_config(self.config_path, self.overrides)
            same_pipeline = pipeline_settings(config) == pipeline_settings(self.config)
            pipeline = self.pipeline if same_pipeline else build_pipeline(config)
            sinks = build_sinks(config, self.sinks, cameras_of(config, pipeline))
        except Exception as exc:  # noqa: BLE001 - a reload must never stop the daemon
            log.error("SIGHUP: config refused, the running one stays: %s", shown(exc, 300))
            return
        try:
            server = self._server_for(config.server)
        except EdgeferError as exc:
            self._close_sinks(self._new(sinks))
            log.error("SIGHUP: config refused, the running one stays: %s", exc)
            return
        self._switch(config, pipeline, sinks, server)
        self.config_file = _real(self.config_path)
        log.info("SIGHUP: config reloaded")

    def _server_for(self, config: ServerConfig) -> StatusServer:
        """The running server if `config` keeps its socket; else a new one, bound. The same
        port on another address (127.0.0.1 to 0.0.0.0) cannot be bound while the old server
        holds it: the old one lets go first, and takes the port back if the new one fails."""
        if self.server.listens_as(config):
            return self.server
        same_port = config.port and config.port == self.server.config.port
        if same_port:
            self.server.stop()
        try:
            return self._new_server(config)
        except EdgeferError:
            if same_port:
                self.server = self._new_server(self.server.config).start()
            raise

    def _new_server(self, config: ServerConfig) -> StatusServer:
        return StatusServer(config, self.metrics, self.status, self.healthy, self.preview)

    def _switch(self, config: DaemonConfig, pipeline: Pipeline, sinks: dict, server) -> None:
        """Put the parts built by `_reload` in place, closing only what they replace."""
        kept = {id(s) for _, s in sinks.values()}
        self._close_sinks(s for _, s in self.sinks.values() if id(s) not in kept)
        for sink in self._new(sinks):
            sink.start()
        self.sinks = sinks
        if server is self.server:
            server.reconfigure(config.server)
        else:
            self.server.stop()
            self.server = server.start()
            log.info("status server on http://%s:%d/", config.server.bind, server.port)
        if config.source != self.config.source:
            self.capture.stop()
            self.capture = Capture(config.source).start()
        if pipeline is not self.pipeline:
            self.pipeline = pipeline
            self.bundle = bundle_name(resolve_bundle(config.bundle))
            self.metrics.describe(self.bundle, pipeline.manifest.arch, config.backend)
        self.tracker.config = FaceTrackConfig(**config.tracking.model_dump())
        self.events.min_hold = config.events.min_hold
        self.events.summary_interval = config.events.summary_interval
        self.config = config

    def _new(self, sinks: dict) -> list:
        """The sinks in `sinks` that are not running yet."""
        running = {id(s) for s in self.outputs()}
        return [s for _, s in sinks.values() if id(s) not in running]

    def _close_sinks(self, sinks) -> None:
        """Close each, whatever the others do: one output's failure must not cost another its
        last events."""
        for sink in sinks:
            try:
                sink.close()
            except Exception as exc:  # noqa: BLE001 - shutdown goes on to the next output
                log.error("output %s: could not close cleanly: %s", sink.name, shown(exc, 200))

    def shutdown(self) -> None:
        """Stop capture, close open tracks with their face_left events, flush every output."""
        self.capture.stop()
        self.server.stop()
        t = time.monotonic()
        self._emit([self.events.face_left(tr, tr.last_seen) for tr in self.tracker.close_all()])
        self._close_sinks(self.outputs())
        self.sinks = {}
        log.info("edgefer daemon: stopped after %.0f s, %d frames", t - self.started, self.frames)
