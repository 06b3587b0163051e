"""`edgefer daemon`: cameras -> faces -> expressions -> tracks -> events -> outputs, unattended.

The bundle's model is opened once; each camera (device/daemon/camera.py) has its own capture
thread, detector, tracks and events on it. The frame loop takes the next frame of whichever
camera's turn it is (`next_frame`: fair between cameras, each camera's newest frame only, never
a backlog), runs it through that camera's pipeline and tracks, and hands what changes as events
to every configured output. SIGTERM/SIGINT stop it cleanly: captures stop, open tracks are
closed with their `face_left` events, every output is flushed and closed, exit 0. SIGHUP
re-reads the config; an invalid one is refused with a log line and the running one stays.

Privacy: frames and face crops are never written anywhere; only events (boxes and scores) leave.
The status page's camera preview (`server.preview = true`, off by default) is the one exception
to "frames never leave": each camera's newest annotated frame, JPEG-encoded in memory on request.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from pathlib import Path

from edgefer.bundled import bundle_name, resolve_bundle
from edgefer.device.daemon.camera import Camera
from edgefer.device.daemon.capture import next_frame
from edgefer.device.daemon.config import DaemonConfig, ServerConfig, load_config
from edgefer.device.daemon.events import new_run
from edgefer.device.daemon.outputs.homeassistant import Cameras
from edgefer.device.daemon.outputs.jsonl import JsonlSink
from edgefer.device.daemon.outputs.mqtt import MqttSink
from edgefer.device.daemon.outputs.webhook import WebhookSink
from edgefer.device.daemon.sd_notify import notify, watchdog_interval
from edgefer.device.daemon.status import Metrics, StatusServer
from edgefer.device.pipeline import Model, Pipeline
from edgefer.device.pipeline_config import PipelineConfig
from edgefer.errors import EdgeferError, shown

log = logging.getLogger("edgefer.daemon")


def open_model(config: DaemonConfig) -> Model:
    """The bundle's model on the configured runtime, once for all cameras."""
    return Model.open(resolve_bundle(config.bundle), config)


def build_pipeline(config: DaemonConfig, camera: str | None = None) -> Pipeline:
    """The same pipeline as `edgefer detect`'s on the same options, for one camera (by default
    the first): what the daemon runs on that camera's frames."""
    name = camera or next(iter(config.cameras))
    return open_model(config).pipeline(config.cameras[name].detector)


def model_settings(config: DaemonConfig) -> tuple:
    """What the model is opened from: a reload that leaves these alone keeps the model (the
    detector is each camera's own)."""
    keys = [k for k in PipelineConfig.model_fields if k != "detector"]
    return config.bundle, *(getattr(config, key) for key in keys)


def _real(config_path: str | Path | None) -> str | None:
    """The file a config path leads to when it is read: `edgefer deploy` tells from it which
    release runs (its path goes through the `current` link, which a deploy moves)."""
    return None if config_path is None else os.path.realpath(config_path)


SINKS = {"jsonl": JsonlSink, "mqtt": MqttSink, "webhook": WebhookSink}


def cameras_of(config: DaemonConfig, model: Model) -> Cameras:
    """What Home Assistant discovery announces: the configured cameras and what they tell."""
    bundle = bundle_name(resolve_bundle(config.bundle))
    return Cameras(tuple(config.cameras), tuple(model.manifest.labels), bundle)


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
            if old and old[0] == built_from:
                sinks[name] = old
                continue
            sinks[name] = built_from, kind(*built_from)
            if old:
                sinks[name][1].succeed(old[1])
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
        self.run_id = new_run()  # this process's events; its cameras share it
        self.wake = threading.Event()  # set by every camera's capture at each frame
        self.config = config
        self.config_file = _real(config_path)
        self.model = open_model(config)
        self.bundle = bundle_name(resolve_bundle(config.bundle))
        self.metrics = Metrics(self.outputs, lambda: self.cameras)
        self.metrics.describe(self.bundle, self.model.manifest.arch, config.backend)
        self.cameras = {
            name: self._camera(name, camera, self.model, self.model.pipeline(camera.detector))
            for name, camera in config.cameras.items()
        }
        self.sinks = build_sinks(config, cameras=cameras_of(config, self.model))
        try:
            self.server = self._new_server(config.server)
        except EdgeferError:
            self._close_sinks(self.sinks.values())
            raise

    def _camera(self, name: str, config, model: Model, pipeline: Pipeline) -> Camera:
        return Camera(
            name, config, model, self.config.events, self.run_id, self.wake, self.metrics, pipeline
        )

    def outputs(self) -> list:
        """The running sinks, for /metrics."""
        return [sink for _, sink in self.sinks.values()]

    def health(self) -> tuple[int, str]:
        """What /healthz answers. 200 only while every camera gives frames; 503 when one or more
        has none, the body saying which: "degraded: no frames from door" while others work,
        "no frames" when none does. A camera without frames is an outage that someone has to
        fix (a plug, a cable, a network camera), so a monitor that alerts on anything but 200
        must hear of it, and a deploy whose release leaves a camera dark is not a healthy one;
        /status and the body tell a partial outage from a full one."""
        down = [name for name, camera in self.cameras.items() if not camera.healthy()]
        if not down:
            return 200, "ok"
        if len(down) == len(self.cameras):
            return 503, "no frames"
        return 503, f"degraded: no frames from {', '.join(down)}"

    def preview(self, camera: str | None) -> bytes | None:
        """A camera's newest frame with its boxes, as JPEG (server thread, preview on only);
        without a name, the first camera's. KeyError for a camera that is not there."""
        cameras = self.cameras
        return cameras[camera or next(iter(cameras))].preview()

    def fps(self) -> float:
        """Frames processed per second, all cameras together."""
        return round(sum(camera.fps() for camera in self.cameras.values()), 2)

    def status(self) -> dict:
        code, health = self.health()
        return {
            "uptime_seconds": round(time.monotonic() - self.started, 1),
            "healthy": code == 200,
            "health": health,
            "fps": self.fps(),
            "run": self.run_id,
            "config_file": self.config_file,
            "bundle": self.bundle,
            "model": self.model.manifest.arch,
            "backend": self.config.backend,
            "labels": list(self.model.manifest.labels),
            "cameras": {name: camera.status() for name, camera in self.cameras.items()},
            "outputs": {name: sink.status() for name, (_, sink) in self.sinks.items()},
        }

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, lambda *_: self.stop_requested.set())
        signal.signal(signal.SIGINT, lambda *_: self.stop_requested.set())
        signal.signal(signal.SIGHUP, lambda *_: self.reload_requested.set())

    def run(self) -> int:
        log.info(
            "edgefer daemon: %s, model %s (%s), run %s",
            ", ".join(f"camera {name} on {c.uri}" for name, c in self.cameras.items()),
            self.bundle,
            self.model.manifest.arch,
            self.run_id,
        )
        for _, sink in self.sinks.values():
            sink.start()
        for camera in self.cameras.values():
            camera.start()
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
        """One frame of one camera (or, with none in time, the passage of time: tracks can still
        close); the other cameras see time pass."""
        cameras = list(self.cameras.values())
        got = next_frame([c.capture for c in cameras], self.wake, 0.5)
        for camera in cameras:  # first: source_up comes before the faces of its first frame
            self._emit(camera, camera.watch_source())
        now = time.monotonic()
        for camera in cameras:
            if got is not None and camera.capture is got[0]:
                self._emit(camera, camera.process(got[1], self.config.server.preview))
            elif camera.capture.due_in() is None:
                # No frame waiting: time passes for its tracks. One waiting for its turn, or held
                # back by max_fps, is not an absence: its faces are still there.
                self._emit(camera, camera.idle(now))

    def _emit(self, camera: Camera, events: list[dict]) -> None:
        camera.recent_events.extend(events)
        for event in events:
            self.metrics.events.labels(camera.name, event["type"]).inc()
            for sink in self.outputs():
                sink.send(event)

    def _reload(self) -> None:
        """Apply a changed config without a gap: every new part is built (and the server's new
        port bound) before any running part is touched, so a config that cannot work (a port in
        use, an unwritable path, a bundle that does not fit) leaves the running daemon as it
        was. Parts whose settings did not change stay as they are: the model, each camera's
        capture, detector, tracks and events, the outputs' connections and queues."""
        self.reload_requested.clear()
        try:
            config = load_config(self.config_path, self.overrides)
            same_model = model_settings(config) == model_settings(self.config)
            model = self.model if same_model else open_model(config)
            pipelines = self._pipelines(config, model)
            sinks = build_sinks(config, self.sinks, cameras_of(config, model))
        except Exception as exc:  # noqa: BLE001 - a reload must never stop the daemon
            log.error("SIGHUP: config refused, the running one stays: %s", shown(exc, 300))
            return
        try:
            server = self._server_for(config.server)
        except EdgeferError as exc:
            self._close_sinks(self._new(sinks))
            log.error("SIGHUP: config refused, the running one stays: %s", exc)
            return
        self._switch(config, model, pipelines, sinks, server)
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

    def _pipelines(self, config: DaemonConfig, model: Model) -> dict[str, Pipeline]:
        """The pipelines a reload needs, by camera: a new camera's, and those whose model or
        detector changed. Built here, before anything running is touched: a detector that cannot
        be built (a cascade file that is not there) refuses the reload."""
        pipelines = {}
        for name, camera in config.cameras.items():
            running = self.cameras.get(name)
            if (
                running is None
                or model is not running.model
                or (camera.detector != running.config.detector)
            ):
                pipelines[name] = model.pipeline(camera.detector)
        return pipelines

    def _new_server(self, config: ServerConfig) -> StatusServer:
        return StatusServer(config, self.metrics, self.status, self.health, self.preview)

    def _switch(
        self, config: DaemonConfig, model: Model, pipelines: dict, sinks: dict, server
    ) -> None:
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
        if model is not self.model:
            self.model = model
            self.bundle = bundle_name(resolve_bundle(config.bundle))
            self.metrics.describe(self.bundle, model.manifest.arch, config.backend)
        self.config = config
        # Removed cameras first: their tracks end, and a device they read is free for a new one.
        for name in self.cameras.keys() - config.cameras.keys():
            self._emit(self.cameras[name], self.cameras[name].remove())
        cameras = {}
        for name, camera_config in config.cameras.items():
            camera, pipeline = self.cameras.get(name), pipelines.get(name)
            if camera is None:
                camera = self._camera(name, camera_config, model, pipeline).start()
            else:
                closed = camera.reconfigure(camera_config, model, config.events, pipeline)
                self._emit(camera, closed)
            cameras[name] = camera
        self.cameras = cameras

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
        """Stop the cameras, close open tracks with their face_left events, flush every
        output."""
        self.server.stop()
        for camera in self.cameras.values():  # all at once: each may take a read timeout
            camera.capture.request_stop()
        for camera in self.cameras.values():
            self._emit(camera, camera.stop())
        self._close_sinks(self.outputs())
        self.sinks = {}
        frames = sum(camera.frames for camera in self.cameras.values())
        log.info(
            "edgefer daemon: stopped after %.0f s, %d frames",
            time.monotonic() - self.started,
            frames,
        )
