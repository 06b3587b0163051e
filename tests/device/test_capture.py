import threading
import time

import cv2
import numpy as np

from edgefer.device.daemon.capture import Capture, next_frame, open_capture
from edgefer.device.daemon.config import SourceConfig
from tests.polling import wait_for


class FakeCamera:
    """Frames on demand; fails after `fail_after` reads, or stalls once at read `stall_at`."""

    opened = 0

    def __init__(self, fail_after=None, stall_at=None, stall=0.0, fps=200):
        FakeCamera.opened += 1
        self.reads, self.fail_after, self.stall_at, self.stall, self.fps = (
            0,
            fail_after,
            stall_at,
            stall,
            fps,
        )

    def read(self):
        self.reads += 1
        if self.fail_after is not None and self.reads > self.fail_after:
            return False, None
        if self.reads == self.stall_at:
            time.sleep(self.stall)
        time.sleep(1 / self.fps)
        return True, np.full((4, 4, 3), self.reads % 256, np.uint8)

    def release(self):
        pass


def latest(capture, timeout=1.0):
    """One camera's next frame, as the daemon's frame loop takes it."""
    got = next_frame([capture], capture.wake, timeout)
    return None if got is None else got[1]


def collect(capture, seconds):
    frames, end = [], time.monotonic() + seconds
    while time.monotonic() < end:
        f = latest(capture, timeout=0.2)
        if f is not None:
            frames.append(f)
    return frames


def test_keeps_only_the_newest_frame_and_counts_the_dropped():
    cap = Capture(SourceConfig(uri="fake"), opener=lambda uri, t: FakeCamera()).start()
    frames = []
    for _ in range(10):
        time.sleep(0.05)  # a slow processor: ~10 frames arrive per take
        frames.append(latest(cap))
    cap.stop()
    idx = [f.index for f in frames]
    assert idx == sorted(idx) and len(set(idx)) == 10
    assert cap.frames_dropped == idx[-1] + 1 - len(idx) and cap.frames_dropped > 20


def test_a_failing_source_is_reopened_with_backoff():
    FakeCamera.opened = 0
    config = SourceConfig(uri="fake", reconnect_max_seconds=0.5)
    cap = Capture(config, opener=lambda uri, t: FakeCamera(fail_after=5)).start()
    frames = collect(cap, 2.0)
    cap.stop()
    assert cap.reconnects >= 2 and FakeCamera.opened in (cap.reconnects, cap.reconnects + 1)
    assert len(frames) >= 10  # frames keep coming after each reconnect


def test_a_source_that_cannot_open_keeps_retrying():
    cap = Capture(
        SourceConfig(uri="fake", reconnect_max_seconds=0.2), opener=lambda u, t: None
    ).start()
    time.sleep(1.0)
    cap.stop()
    assert cap.reconnects >= 3 and cap.frames_read == 0 and cap.stalled()


def test_a_stall_reopens_the_source():
    FakeCamera.opened = 0
    config = SourceConfig(uri="fake", stall_seconds=0.2)
    cap = Capture(config, opener=lambda u, t: FakeCamera(stall_at=5, stall=0.4)).start()
    time.sleep(1.5)
    cap.stop()
    assert cap.reconnects >= 1 and FakeCamera.opened >= 2


def test_max_fps_caps_the_rate():
    cap = Capture(SourceConfig(uri="fake", max_fps=10), opener=lambda u, t: FakeCamera()).start()
    frames = collect(cap, 1.0)
    cap.stop()
    assert 8 <= len(frames) <= 12


def video_file(path, frames, fps):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (64, 48))
    for i in range(frames):
        writer.write(np.full((48, 64, 3), i * 20, np.uint8))
    writer.release()
    return path


def test_a_looping_video_file_plays_on(tmp_path):
    path = video_file(tmp_path / "v.avi", 5, 30)
    cap = Capture(SourceConfig(uri=str(path), loop=True), opener=open_capture).start()
    frames = [latest(cap, timeout=2.0) for _ in range(12)]
    cap.stop()
    assert all(f is not None for f in frames) and cap.reconnects == 0
    assert cap.frames_read >= 12  # more than the file's 5 frames: it looped


def test_an_unpaced_video_file_gives_every_frame_as_fast_as_they_are_taken(tmp_path):
    path = video_file(tmp_path / "v.avi", 10, 2)  # paced, its 10 frames would take 5 s
    cap = Capture(SourceConfig(uri=str(path), pace=False), opener=open_capture).start()
    started = time.monotonic()
    frames = []
    for _ in range(10):
        frames.append(latest(cap, timeout=2.0))
        time.sleep(0.02)  # a slow processor: the reader waits for it, nothing is skipped
    elapsed = time.monotonic() - started
    cap.stop()
    assert [f.index for f in frames] == list(range(10)) and cap.frames_dropped == 0
    assert [round(int(f.image[0, 0, 0]) / 20) for f in frames] == list(range(10))  # JPEG: ±2
    assert elapsed < 2.0


def test_loop_means_nothing_for_a_camera_that_goes_away():
    """A V4L2 camera that fails must be released and reopened even with `loop = true` left over
    from a video config: seeking it to frame 0 and reading on spun at 100% CPU on a dead
    descriptor, and the camera was never read again."""

    class Camera(FakeCamera):
        seeks = 0

        def set(self, prop, value):
            Camera.seeks += 1
            return True

    FakeCamera.opened = 0
    config = SourceConfig(uri="/dev/video0", loop=True, reconnect_max_seconds=0.2)
    cap = Capture(config, opener=lambda u, t: Camera(fail_after=3)).start()
    frames = collect(cap, 1.5)
    cap.stop()
    assert Camera.seeks == 0 and FakeCamera.opened >= 2 and len(frames) >= 4


def test_a_source_that_goes_down_says_why_once(caplog):
    """One log line when the source stops (not one per retry), and one when frames are back."""
    opened = []

    def opener(uri, timeout):
        opened.append(1)
        return FakeCamera(fail_after=3) if len(opened) in (1, 6) else None

    config = SourceConfig(uri="rtsp://user:pw@cam/1", reconnect_max_seconds=0.05)
    with caplog.at_level("INFO", "edgefer.daemon"):
        cap = Capture(config, opener=opener).start()
        assert wait_for(lambda: len(opened) >= 5, 5)
        assert cap.state == "reconnecting" and cap.error == "cannot open rtsp://user:***@cam/1"
        assert wait_for(lambda: len(opened) >= 7, 5)
        cap.stop()
    lines = [r.getMessage() for r in caplog.records]
    assert "pw" not in " ".join(lines)
    assert sum("cannot open" in line for line in lines) in (1, 2), lines  # 1 per outage
    assert any("frames again" in line for line in lines)


def served(cameras: dict, seconds: float, work: float) -> dict:
    """How many frames of each camera a frame loop that spends `work` seconds per frame takes
    in `seconds`, all cameras sharing one wake-up as the daemon's do."""
    wake = threading.Event()
    caps = {
        name: Capture(config, opener=lambda u, t, fps=fps: FakeCamera(fps=fps), wake=wake)
        for name, (config, fps) in cameras.items()
    }
    for cap in caps.values():
        cap.start()
    names = {id(cap): name for name, cap in caps.items()}
    counts = dict.fromkeys(caps, 0)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        got = next_frame(list(caps.values()), wake, 0.2)
        if got is not None:
            counts[names[id(got[0])]] += 1
            time.sleep(work)
    for cap in caps.values():
        cap.stop()
    return counts


def test_a_fast_camera_does_not_starve_a_slow_one():
    """A loop that manages 20 frames a second, a camera at 30 FPS listed first and one at 5: the
    slow one still gets nearly every frame it has (the fast one always has a fresh frame; taking
    the first camera with one would never serve the other)."""
    fast, slow = SourceConfig(uri="fast"), SourceConfig(uri="slow")
    counts = served({"fast": (fast, 30), "slow": (slow, 5)}, 3.0, 0.05)
    assert counts["slow"] >= 0.8 * 5 * 3, counts
    assert counts["fast"] >= 35, counts  # the rest of the loop's time


def test_each_cameras_max_fps_holds_beside_another():
    capped, free = SourceConfig(uri="a", max_fps=4), SourceConfig(uri="b")
    counts = served({"capped": (capped, 100), "free": (free, 100)}, 2.0, 0.002)
    assert 6 <= counts["capped"] <= 10, counts  # 4 a second, plus the first frame
    assert counts["free"] > 100, counts  # the capped camera's held-back frames block no one
