import numpy as np

from edgefer.device.daemon.config import FaceTrackConfig
from edgefer.device.daemon.events import EventBuilder
from edgefer.device.daemon.tracks import Tracker
from edgefer.labels import FER7

HAPPY, SAD = np.eye(7)[3], np.eye(7)[4]
BOX = (10, 20, 50, 50)


def run(frames, min_hold=1.0, summary_interval=60.0):
    """frames: [(t, scores or None)] for one face; returns every event."""
    tracker, events = Tracker(FaceTrackConfig(ema_alpha=1.0, lost_after=0.5)), []
    builder = EventBuilder(list(FER7), min_hold, summary_interval, wall_clock=lambda: 1e9)
    for t, scores in frames:
        events += builder.on_frame(t, tracker.update(t, [] if scores is None else [(BOX, scores)]))
    return events


def test_appeared_changed_after_min_hold_and_left_with_shares():
    frames = [(i * 0.1, HAPPY) for i in range(20)]  # 0.0-1.9 s happy
    frames += [(2.0 + i * 0.1, SAD) for i in range(15)]  # 2.0-3.4 s sad
    frames += [(3.5 + i * 0.1, None) for i in range(7)]  # gone
    events = run(frames)
    assert [e["type"] for e in events] == ["face_appeared", "expression_changed", "face_left"]
    appeared, changed, left = events
    assert appeared["label"] == "happy" and appeared["track"] == 1 and appeared["box"] == list(BOX)
    assert changed["label"] == "sad" and changed["previous"] == "happy"
    assert changed["monotonic"] == 3.0  # sad from 2.0 s, held for min_hold = 1 s
    assert left["duration"] == 3.4 and left["share"] == {"happy": 0.5882, "sad": 0.4118}
    assert [e["seq"] for e in events] == [1, 2, 3] and len({e["id"] for e in events}) == 3


def test_a_change_shorter_than_min_hold_is_not_reported():
    frames = [(i * 0.1, HAPPY) for i in range(10)]
    frames += [(1.0 + i * 0.1, SAD) for i in range(5)]  # 0.5 s of sad
    frames += [(1.5 + i * 0.1, HAPPY) for i in range(10)]
    assert [e["type"] for e in run(frames)] == ["face_appeared"]


def test_summary_every_interval_with_fps_and_counts():
    events = run([(i * 0.5, HAPPY) for i in range(9)], summary_interval=2.0)
    summaries = [e for e in events if e["type"] == "summary"]
    assert [s["monotonic"] for s in summaries] == [2.0, 4.0]
    assert summaries[0]["fps"] == 2.5 and summaries[0]["events"] == {
        "face_appeared": 1,
        "summary": 1,
    }
    assert summaries[0]["tracks_open"] == 1
