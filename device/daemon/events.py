"""Events from tracks: what the rest of a user's system hears from a camera.

    face_appeared       a new track
    expression_changed  a track's smoothed label changed and held for `min_hold` seconds
    face_left           a track closed: how long it was seen, and its share of time per expression
    summary             every `summary_interval` seconds: counts and mean FPS
    source_up           frames flow: after the start, and after the source was down
    source_down         no frame for `stall_seconds` (camera unplugged, stream gone), and why

Each event has a unique id (consumers deduplicate on it after a redelivery), its camera, the id
of the run that made it and a sequence number that starts at 1 for each camera in each run and
grows by exactly 1 (so a consumer of one camera, or of all of them, sees order, and a gap in
(run, camera, seq) is a lost event; a new run id is a restart), wall-clock and
monotonic timestamps, and, for track events, the track id, box and smoothed scores. Tracks do
not outlive a run: a run that ended without its face_left events (killed, power cut) left its
tracks closed at its last event.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

from edgefer.device.daemon.tracks import Track, TrackUpdate

# The source's state as each source event says it: what MQTT's retained source topics carry.
SOURCE_STATE = {"source_up": "online", "source_down": "offline"}


def new_run() -> str:
    """The id of this process's events, told apart from the last run's; its cameras share it."""
    return uuid.uuid4().hex[:12]


@dataclass
class _Reported:
    """What has been said about a track, and the label waiting to be confirmed."""

    label: int
    since: float  # when `label` was last accounted up to
    pending: int | None = None
    pending_since: float = 0.0
    seconds: Counter = field(default_factory=Counter)  # label index -> seconds shown


class EventBuilder:
    def __init__(
        self,
        labels: list[str],
        min_hold: float = 1.0,
        summary_interval: float = 60.0,
        wall_clock=time.time,
        camera: str = "default",
        run: str | None = None,
    ):
        self.labels, self.min_hold, self.summary_interval = labels, min_hold, summary_interval
        self.wall_clock, self.camera = wall_clock, camera
        self.run = run or new_run()
        self.seq = 0
        self.reported: dict[int, _Reported] = {}
        self.counts: Counter = Counter()
        self.frames = 0
        self.last_summary: float | None = None

    def on_frame(self, t: float, update: TrackUpdate, processed: bool = True) -> list[dict]:
        """Events at monotonic time `t`: for a processed frame, or (processed=False) for time
        passing without one, when tracks can still close and summaries fall due."""
        self.frames += processed
        if self.last_summary is None:
            self.last_summary = t
        events = []
        for track in update.new:
            label = track.label_index()
            self.reported[track.id] = _Reported(label, t)
            events.append(self._event("face_appeared", t, track, label=self.labels[label]))
        new_ids = {tr.id for tr in update.new}
        for track in update.seen:
            if track.id not in new_ids:
                events.extend(self._follow(t, track))
        for track in update.lost:
            events.append(self.face_left(track, track.last_seen))
        if t - self.last_summary >= self.summary_interval:
            events.append(self._summary(t))
        return events

    def face_left(self, track: Track, t: float) -> dict:
        rep = self.reported.pop(track.id)
        rep.seconds[rep.label] += max(0.0, t - rep.since)
        duration = max(0.0, track.last_seen - track.first_seen)
        total = sum(rep.seconds.values()) or 1.0
        share = {self.labels[i]: round(s / total, 4) for i, s in rep.seconds.items() if s > 0}
        return self._event(
            "face_left",
            t,
            track,
            duration=round(duration, 3),
            share=share,
            label=self.labels[rep.label],
        )

    def _follow(self, t: float, track: Track) -> list[dict]:
        """expression_changed once a new smoothed label has held for `min_hold` seconds."""
        rep = self.reported[track.id]
        label = track.label_index()
        if label == rep.label:
            rep.pending = None
            return []
        if label != rep.pending:
            rep.pending, rep.pending_since = label, t
        if t - rep.pending_since < self.min_hold:
            return []
        # The old label lasted until the new one started to show.
        rep.seconds[rep.label] += max(0.0, rep.pending_since - rep.since)
        previous = rep.label
        rep.label, rep.since, rep.pending = label, rep.pending_since, None
        return [
            self._event(
                "expression_changed",
                t,
                track,
                label=self.labels[label],
                previous=self.labels[previous],
            )
        ]

    def source(self, t: float, up: bool, uri: str, cause: str | None = None) -> dict:
        """source_up, or source_down with its cause: "tell me when the camera is offline"."""
        event = self._base("source_up" if up else "source_down", t)
        event["source"] = uri
        if not up:
            event["cause"] = cause
        return event

    def _summary(self, t: float) -> dict:
        seconds = t - self.last_summary
        event = self._base("summary", t)
        event.update(
            interval=round(seconds, 3),
            frames=self.frames,
            fps=round(self.frames / seconds, 2) if seconds > 0 else None,
            tracks_open=len(self.reported),
            events=dict(self.counts),
        )
        self.last_summary, self.frames = t, 0
        return event

    def _event(self, kind: str, t: float, track: Track, **extra) -> dict:
        event = self._base(kind, t)
        event.update(
            track=track.id,
            box=[int(v) for v in track.box],
            scores={n: round(float(s), 4) for n, s in zip(self.labels, track.scores)},
            **extra,
        )
        return event

    def _base(self, kind: str, t: float) -> dict:
        self.seq += 1
        self.counts[kind] += 1
        return {
            "id": str(uuid.uuid4()),
            "camera": self.camera,
            "run": self.run,
            "seq": self.seq,
            "type": kind,
            "time": self.wall_clock(),
            "monotonic": round(t, 6),
        }
