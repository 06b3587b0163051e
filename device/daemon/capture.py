"""The daemon's camera: a thread that reads frames as fast as the source gives them and keeps
only the newest, so processing never falls behind into a growing backlog.

Frames the processor never took are counted as dropped (a video file with `pace = false` is read
in step with the processor instead: every frame, as fast as they are processed). A source that
fails (read error, end of a non-looping file) or stalls (no frame for `stall_seconds`) is reopened
with bounded exponential backoff while the rest of the daemon keeps running and reporting its
state.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edgefer.device.daemon.config import SourceConfig, redact_uri
from edgefer.imaging import opencv_quiet

log = logging.getLogger("edgefer.daemon")


@dataclass(frozen=True)
class CapturedFrame:
    index: int  # frames read since start, over every reconnect
    image: np.ndarray
    t: float  # monotonic time it was read


class _Picamera2:
    """A Pi camera on Bookworm has no V4L2 index by default: read it through Picamera2."""

    def __init__(self):
        from picamera2 import Picamera2  # only on a Pi with the camera stack

        self.cam = Picamera2()
        self.cam.configure(self.cam.create_video_configuration(main={"format": "BGR888"}))
        self.cam.start()

    def read(self):
        return True, self.cam.capture_array()

    def release(self):
        self.cam.close()


def open_capture(uri: str, timeout_s: float):
    """An object with read() -> (ok, frame) and release(), or None if it cannot be opened.
    Streams get open/read timeouts, so a hung network read cannot block the thread forever."""
    if uri == "picamera2":
        try:
            return _Picamera2()
        except (ImportError, RuntimeError):
            return None
    ms = int(timeout_s * 1000)
    params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms]
    with opencv_quiet():
        cap = (
            cv2.VideoCapture(int(uri))
            if uri.isdigit()
            else cv2.VideoCapture(uri, cv2.CAP_ANY, params)
        )
    return cap if cap.isOpened() else None


def _file_frame_period(uri: str, cap) -> float:
    """Seconds between frames of a video file (0 for cameras, streams and unknown rates)."""
    if not Path(uri).is_file() or not hasattr(cap, "get"):
        return 0.0
    fps = cap.get(cv2.CAP_PROP_FPS)
    return 1.0 / fps if fps and 1 <= fps <= 240 else 0.0


class Capture:
    """One camera's reader thread. `wake` is set at every new frame: the daemon's cameras share
    one, so the frame loop sleeps until any camera has something (see `next_frame`)."""

    def __init__(
        self,
        config: SourceConfig,
        opener=open_capture,
        clock=time.monotonic,
        wake: threading.Event | None = None,
    ):
        self.config, self.opener, self.clock = config, opener, clock
        self.wake = wake or threading.Event()
        self.state = "starting"  # starting | streaming | reconnecting | stopped
        self.error: str | None = None  # why the source is not streaming, in one line
        self.frames_read = self.frames_dropped = self.reconnects = 0
        self.last_frame_at: float | None = None
        self.last_taken_at = float("-inf")  # when the frame loop last took a frame of this one
        self._newest: CapturedFrame | None = None
        self._taken = -1
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="edgefer-capture", daemon=True)
        self._next_slot = float("-inf")
        self._started_at: float | None = None

    def start(self) -> Capture:
        self._started_at = self.clock()
        self._thread.start()
        return self

    def request_stop(self) -> None:
        """Ask the thread to end, without waiting: several captures then end side by side."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()

    def stop(self, timeout: float = 5.0) -> None:
        self.request_stop()
        self._thread.join(timeout)
        self.state = "stopped"

    def due_in(self) -> float | None:
        """Seconds until a frame may be taken: 0 now; more while `max_fps` holds a fresh frame
        back; None with no frame that was not taken yet."""
        with self._cond:
            if not self._fresh():
                return None
        return max(0.0, self._next_slot - self.clock())

    def take(self) -> CapturedFrame | None:
        """The newest frame not yet taken (those it replaced are counted as dropped), and the
        next `max_fps` slot begins."""
        with self._cond:
            if not self._fresh():
                return None
            frame = self._newest
            self.frames_dropped += frame.index - self._taken - 1
            self._taken = frame.index
            self._cond.notify_all()  # an unpaced file's reader waits for this take
        now = self.clock()
        self.last_taken_at = now
        if self.config.max_fps:  # never more than max_fps a second, on the slots' grid
            period = 1 / self.config.max_fps
            late = now - self._next_slot >= period  # a take long after its slot: a new grid
            self._next_slot = (now if late else self._next_slot) + period
        return frame

    def _fresh(self) -> bool:
        return self._newest is not None and self._newest.index > self._taken

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            cap = self.opener(self.config.uri, self.config.stall_seconds)
            if cap is None:
                failures += 1
                self._down(self._open_failure())
                self._backoff(failures)
                continue
            try:
                cause = self._stream(cap)
                failures = 0 if self.state == "streaming" else failures + 1
            finally:
                cap.release()
            if not self._stop.is_set():
                self._down(cause)
                self._backoff(failures)

    def _open_failure(self) -> str:
        uri = self.config.uri
        looks_like_file = "://" not in uri and not uri.isdigit() and uri != "picamera2"
        if looks_like_file and not Path(uri).exists():
            return f"cannot open {redact_uri(uri)}: no such file or device"
        return f"cannot open {redact_uri(uri)}"

    def _down(self, cause: str) -> None:
        """The source stopped: one log line when that is news (not at every retry)."""
        if self.state != "reconnecting" or cause != self.error:
            log.warning("source %s: %s; reconnecting", redact_uri(self.config.uri), cause)
        self.state, self.error = "reconnecting", cause

    def _up(self) -> None:
        if self.state == "reconnecting":
            log.info("source %s: frames again", redact_uri(self.config.uri))
        self.state, self.error = "streaming", None

    def _stream(self, cap) -> str:
        """Read until stop, a failure or a stall, and say which (the state is "streaming" if any
        frame came). A video file is read at its own frame rate, as a camera would deliver it
        (read flat out, the newest-frame rule would skip most of it). Unpaced (`pace = false`), a file's next frame is read as soon as
        the processor took the last one: none is skipped, and the next is decoded while this one
        is processed."""
        got_any = False
        in_file = Path(self.config.uri).is_file()
        in_step = not self.config.pace and in_file
        period = 0.0 if in_step else _file_frame_period(self.config.uri, cap)
        next_at = self.clock()
        while not self._stop.is_set():
            if period:
                next_at += period
                self._stop.wait(max(0.0, next_at - self.clock()))
            started = self.clock()
            ok, image = cap.read()
            if not ok or image is None:
                if self.config.loop and in_file and got_any:
                    cap.set(cv2.CAP_PROP_POS_FRAMES, 0)  # a looping file starts again
                    continue
                return "end of the video" if got_any and in_file else "no frame could be read"
            now = self.clock()
            if now - started > self.config.stall_seconds:
                # A frame after a stall: reopen (the stream is likely stale).
                return f"no frame for {now - started:.0f} s"
            if not got_any:
                self._up()
            got_any = True
            with self._cond:
                self._newest = CapturedFrame(self.frames_read, image, now)
                self.frames_read += 1
                self.last_frame_at = now
                self._cond.notify_all()
                self.wake.set()
                if in_step:  # the next frame once this one is taken
                    self._cond.wait_for(lambda: self._stop.is_set() or not self._fresh())
        return "stopped"

    def _backoff(self, failures: int) -> None:
        self.reconnects += 1
        delay = min(self.config.reconnect_max_seconds, 0.5 * 2 ** max(0, failures - 1))
        self._stop.wait(delay)

    def waited_long_enough(self) -> bool:
        """Whether stall_seconds passed since start(): before that, no frame yet is no news."""
        return (
            self._started_at is not None
            and self.clock() - self._started_at > self.config.stall_seconds
        )

    def stalled(self) -> bool:
        """No frame for `stall_seconds`: what /healthz reports as unhealthy."""
        last = self.last_frame_at
        return last is None or self.clock() - last > self.config.stall_seconds


def next_frame(
    captures: list[Capture], wake: threading.Event, timeout: float, clock=time.monotonic
) -> tuple[Capture, CapturedFrame] | None:
    """The next frame to process, of whichever camera's turn it is; None if none came within
    `timeout` seconds. Fair: of the cameras with a frame due, the one served longest ago goes
    first, so a 30 FPS camera cannot starve a 5 FPS one: when the loop cannot keep up with all
    of them, each gets its turn in rotation. Each camera's `max_fps` holds its frames back."""
    end = clock() + timeout
    while True:
        wake.clear()  # before looking: a frame that comes after the look sets it again
        due = [(c.due_in(), c) for c in captures]
        ready = [c for wait, c in due if wait == 0]
        if ready:
            chosen = min(ready, key=lambda c: c.last_taken_at)
            frame = chosen.take()
            if frame is not None:
                return chosen, frame
            continue
        now = clock()
        if now >= end:
            return None
        held = [wait for wait, _ in due if wait is not None]
        wake.wait(min([end - now, *held]))
