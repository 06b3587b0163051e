"""Face tracks over time: stable ids across frames, and an expression smoothed per track.

A camera daemon reports what it *sees over time*, not per frame: a detector's boxes are matched
to the open tracks by IoU (greedy, best overlap first: faces rarely overlap, so the optimal
assignment buys nothing), and each track's class scores are smoothed so that its label does not
flicker frame to frame: an exponential moving average of the scores, or a majority vote over the
last frames' labels. A track that has no match for `lost_after` seconds is closed.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field

import numpy as np

from edgefer.device.daemon.config import FaceTrackConfig
from edgefer.device.detector import Box


@dataclass
class Track:
    id: int
    box: Box
    scores: np.ndarray  # smoothed class scores
    first_seen: float
    last_seen: float
    votes: deque = field(default_factory=deque)  # recent labels (vote smoothing only)

    def label_index(self) -> int:
        if self.votes:
            counts = Counter(self.votes)
            best = max(counts.values())
            # ties go to the most recent of the tied labels: the vote follows the face
            return next(v for v in reversed(self.votes) if counts[v] == best)
        return int(np.argmax(self.scores))


@dataclass
class TrackUpdate:
    new: list[Track]
    seen: list[Track]  # every track matched this frame, new ones included
    lost: list[Track]


def iou_matrix(a: list[Box], b: list[Box]) -> np.ndarray:
    """IoU of every box in `a` with every box in `b`, as an (len(a), len(b)) array."""
    if not a or not b:
        return np.zeros((len(a), len(b)))
    A, B = np.asarray(a, np.float64)[:, None, :], np.asarray(b, np.float64)[None, :, :]
    x0 = np.maximum(A[..., 0], B[..., 0])
    y0 = np.maximum(A[..., 1], B[..., 1])
    x1 = np.minimum(A[..., 0] + A[..., 2], B[..., 0] + B[..., 2])
    y1 = np.minimum(A[..., 1] + A[..., 3], B[..., 1] + B[..., 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    union = A[..., 2] * A[..., 3] + B[..., 2] * B[..., 3] - inter
    return inter / np.maximum(union, 1e-9)


class Tracker:
    def __init__(self, config: FaceTrackConfig | None = None):
        self.config = config or FaceTrackConfig()
        self.tracks: list[Track] = []
        self.next_id = 1

    def update(self, t: float, detections: list[tuple[Box, np.ndarray]]) -> TrackUpdate:
        """Match this frame's (box, class scores) to the tracks at time `t` (seconds, monotonic)."""
        boxes = [b for b, _ in detections]
        ious = iou_matrix([tr.box for tr in self.tracks], boxes)
        pairs = sorted(zip(*np.nonzero(ious >= self.config.iou_threshold)), key=lambda p: -ious[p])
        used_tracks, used_dets, seen = set(), set(), []
        for ti, di in pairs:
            if ti in used_tracks or di in used_dets:
                continue
            used_tracks.add(ti)
            used_dets.add(di)
            track = self.tracks[ti]
            self._observe(track, t, *detections[di])
            seen.append(track)
        new = []
        for di, (box, scores) in enumerate(detections):
            if di not in used_dets:
                track = Track(
                    self.next_id,
                    box,
                    np.asarray(scores, np.float64),
                    t,
                    t,
                    deque(maxlen=self.config.vote_window),
                )
                self._vote(track, scores)
                self.next_id += 1
                new.append(track)
        lost = [tr for tr in self.tracks if t - tr.last_seen > self.config.lost_after]
        self.tracks = [tr for tr in self.tracks if tr not in lost] + new
        return TrackUpdate(new, seen + new, lost)

    def close_all(self) -> list[Track]:
        """Every open track, closed (the daemon is stopping)."""
        closed, self.tracks = self.tracks, []
        return closed

    def _observe(self, track: Track, t: float, box: Box, scores) -> None:
        scores = np.asarray(scores, np.float64)
        a = self.config.ema_alpha
        track.scores = a * scores + (1 - a) * track.scores
        track.box, track.last_seen = box, t
        self._vote(track, scores)

    def _vote(self, track: Track, scores) -> None:
        if self.config.smoothing == "vote":
            track.votes.append(int(np.argmax(scores)))  # the deque keeps the last vote_window
