"""One camera of the daemon: its capture thread, its pipeline (its own detector, on the model
that all cameras share), its face tracks, its events, and what /status, /metrics and the status
page show of it.

The frame loop's thread is the only one that calls `process`, `idle` and `watch_source`; the
status server's thread reads `status()` and `preview()`, whose data the loop replaces whole
(never edits in place), so a request never sees a frame half-applied.
"""

from __future__ import annotations

import threading
import time
from collections import deque

import numpy as np

from edgefer.device.daemon.capture import Capture, CapturedFrame
from edgefer.device.daemon.config import CameraConfig, EventsConfig, redact_uri
from edgefer.device.daemon.events import EventBuilder
from edgefer.device.daemon.status import Metrics
from edgefer.device.daemon.timeline import Timeline
from edgefer.device.daemon.tracks import Tracker
from edgefer.device.draw import annotated_jpeg
from edgefer.device.pipeline import Model, Pipeline

RECENT_EVENTS = 10  # the newest events /status shows per camera
FPS_WINDOW = 5.0  # seconds of frames behind the FPS that /status shows


class Camera:
    def __init__(
        self,
        name: str,
        config: CameraConfig,
        model: Model,
        events: EventsConfig,
        run: str,
        wake: threading.Event,
        metrics: Metrics,
        pipeline: Pipeline,
    ):
        """`pipeline`: `model` behind this camera's detector, built by the caller beforehand (a
        reload builds every new part before it touches a running one)."""
        self.name, self.config, self.model, self.metrics = name, config, model, metrics
        self.pipeline = pipeline
        self.tracker = Tracker(config.tracking)
        self.events = EventBuilder(
            self.pipeline.labels, events.min_hold, events.summary_interval, camera=name, run=run
        )
        self.capture = Capture(config.source, wake=wake)
        self.timeline = Timeline(self.pipeline.labels)
        self.frames = 0
        self.frame_times: deque[float] = deque(maxlen=30)  # when the newest frames were done
        self.recent_events: deque[dict] = deque(maxlen=RECENT_EVENTS)
        self.newest: tuple[np.ndarray, list] | None = None  # frame and detections, for preview
        self.open_tracks: list[dict] = []
        self.source_up: bool | None = None  # None until frames flowed or stall_seconds passed

    @property
    def uri(self) -> str:
        """The source as logs and /status may show it (no password, no query)."""
        return redact_uri(self.config.source.uri)

    def start(self) -> Camera:
        self.capture.start()
        return self

    def stop(self) -> list[dict]:
        """Stop reading, close the open tracks: their face_left events. A capture asked to stop
        beforehand (`capture.request_stop()`, as the daemon does for all cameras at once) is
        only waited for."""
        self.capture.stop()
        return self._close_tracks()

    def remove(self) -> list[dict]:
        """Stop for good (a reload dropped this camera): its face_left events, and a
        source_down, so the retained source state and Home Assistant stop saying it is up."""
        events = self.stop()
        if self.source_up:
            cause = "the camera was removed from the config"
            events.append(self.events.source(time.monotonic(), False, self.uri, cause))
        return events

    def _close_tracks(self) -> list[dict]:
        return [self.events.face_left(tr, tr.last_seen) for tr in self.tracker.close_all()]

    def reconfigure(
        self, config: CameraConfig, model: Model, events: EventsConfig, pipeline: Pipeline | None
    ) -> list[dict]:
        """Apply a reloaded config; what did not change keeps running (the capture, the tracks,
        the detector and its ROI search). `pipeline`: a new one (another model or detector),
        built beforehand, or None. Returns the events it makes: a model with other labels ends
        the open tracks (their scores are the old labels')."""
        closed = []
        if (config.source.uri, config.source.loop, config.source.pace) != (
            self.config.source.uri,
            self.config.source.loop,
            self.config.source.pace,
        ):
            self.capture = self._new_capture(config)
        else:  # rates and timeouts: read by the running capture as it goes
            self.capture.config = config.source
        if pipeline is not None:
            if pipeline.labels != self.pipeline.labels:
                closed = self._close_tracks()
                self.events.labels = pipeline.labels
                self.timeline = Timeline(pipeline.labels)
            self.model, self.pipeline = model, pipeline
        self.tracker.config = config.tracking
        self.events.min_hold = events.min_hold
        self.events.summary_interval = events.summary_interval
        self.config = config
        return closed

    def _new_capture(self, config: CameraConfig) -> Capture:
        """Another source: the old capture stops first (a device has one reader). The new one
        takes over the time of the last frame, so that /healthz and the source events see a
        source switched, not one that went dark, unless it gives no frame for stall_seconds."""
        old = self.capture
        old.stop()
        new = Capture(config.source, wake=old.wake)
        new.last_frame_at = old.last_frame_at
        return new.start()

    def watch_source(self) -> list[dict]:
        """source_up when frames flow (after the start, or after an outage); source_down when
        none came for stall_seconds, also when none ever came since the capture started: what
        /healthz says, as events, so consumers hear that a camera went offline."""
        up = not self.capture.stalled()
        if up == self.source_up:
            return []
        if not up and not self.capture.waited_long_enough():
            return []  # no frame yet since this capture started: no news before stall_seconds
        self.source_up = up
        stall = f"no frame for {self.config.source.stall_seconds:g} s"
        cause = None if up else self.capture.error or stall
        return [self.events.source(time.monotonic(), up, self.uri, cause)]

    def process(self, frame: CapturedFrame, preview: bool) -> list[dict]:
        """One frame through the pipeline and the tracks: the events it makes."""
        result = self.pipeline(frame.image)
        labels = self.pipeline.labels
        detections = [(d.box, np.array([d.scores[c] for c in labels])) for d in result.detections]
        self.frames += 1
        self.frame_times.append(time.monotonic())
        self.newest = (frame.image, result.detections) if preview else None
        update = self.tracker.update(frame.t, detections)
        self.timeline.add([tr.label_index() for tr in update.seen])
        m, cam = self.metrics, self.name
        m.frames.labels(cam).inc()
        m.faces.labels(cam).inc(len(detections))
        for stage, ms in result.timings.items():
            m.stage.labels(cam, stage).observe(ms)
        events = self.events.on_frame(frame.t, update)
        self._snapshot_tracks()
        return events

    def idle(self, t: float) -> list[dict]:
        """Time passing without a frame of this camera: tracks can still close, summaries fall
        due."""
        events = self.events.on_frame(t, self.tracker.update(t, []), processed=False)
        self._snapshot_tracks()
        return events

    def _snapshot_tracks(self) -> None:
        """The open tracks as /status shows them, built here in the loop's thread: the server
        thread must not read tracks mid-update."""
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

    def healthy(self) -> bool:
        """Frames flow."""
        return not self.capture.stalled()

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

    def preview(self) -> bytes | None:
        """The newest frame with its boxes, as JPEG (server thread, only with preview on)."""
        newest = self.newest
        return None if newest is None else annotated_jpeg(*newest)

    def status(self) -> dict:
        cap = self.capture
        age = None if cap.last_frame_at is None else round(time.monotonic() - cap.last_frame_at, 3)
        return {
            "healthy": self.healthy(),
            "fps": self.fps(),
            "detector": self.pipeline.detector_kind,
            "source": {
                "uri": self.uri,
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
            "timeline": self.timeline.snapshot(),
            "preview": self.newest is not None,  # /preview.jpg?camera=NAME has a frame to show
        }
