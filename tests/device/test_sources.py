import cv2
import numpy as np
import pytest

from edgefer.device import sources
from edgefer.device.sources import RECONNECT_DELAYS_S, open_source
from edgefer.errors import EdgeferError


def write_avi(path, frames=20, fps=10.0, size=(64, 48)):
    """A real MJPG .avi: each frame is one JPEG in the file, easy to damage one at a time."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    rng = np.random.default_rng(0)
    for _ in range(frames):
        writer.write(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    writer.release()
    return path


def damage_avi(path, first_bad: int, last_bad: int | None = None, truncate=False):
    """Overwrite the JPEG data of frames first_bad..last_bad with zeros (OpenCV's FFmpeg then
    fails to read the first of them: "No JPEG data found"), or cut the file inside first_bad."""
    data = bytearray(path.read_bytes())
    starts = [i for i in range(len(data) - 1) if data[i] == 0xFF and data[i + 1] == 0xD8]
    if truncate:
        path.write_bytes(bytes(data[: starts[first_bad] + 100]))
        return path
    for k in range(first_bad, (len(starts) - 1 if last_bad is None else last_bad) + 1):
        end = starts[k + 1] - 8 if k + 1 < len(starts) else starts[k] + 200  # 8: the chunk header
        data[starts[k] : end] = bytes(end - starts[k])
    path.write_bytes(bytes(data))
    return path


def test_folder_with_an_unreadable_image(tmp_path):
    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((10, 10), np.uint8))
    (tmp_path / "b.jpg").write_bytes(b"junk")
    frames = list(open_source(str(tmp_path)))
    assert frames[0].error is None and frames[1].error.startswith("unreadable image")


def test_video_frames_and_limit(face_video):
    frames = list(open_source(str(face_video), limit=5))
    assert len(frames) == 5 and frames[0].image.shape == (480, 640, 3)


def test_whole_video_and_its_frame_rate(tmp_path):
    source = open_source(str(write_avi(tmp_path / "v.avi", fps=12.0)))
    assert source.kind == "video" and source.fps == 12.0
    assert [f.name for f in source] == [f"v.avi#{i}" for i in range(20)]


@pytest.mark.parametrize(
    "damage",
    [
        dict(first_bad=10),  # every frame from #10 on
        dict(first_bad=10, last_bad=10),  # only #10: OpenCV would skip it and go on
        dict(first_bad=10, truncate=True),
    ],
)
def test_video_that_fails_part_way_is_an_error(tmp_path, damage):
    path = damage_avi(write_avi(tmp_path / "v.avi"), **damage)
    read = []
    with pytest.raises(
        EdgeferError,
        match=r"v\.avi: cannot read frame #10 of 20; the video is "
        "corrupt or truncated",
    ):
        for frame in open_source(str(path)):
            read.append(frame.index)
    assert read == list(range(10))


class FakeCamera:
    """cv2.VideoCapture for a camera that delivers the frames of `plans`, one plan per opening
    (True = a frame, False = a failed read); once the plans run out, every read fails."""

    def __init__(self, plans):
        self.plans, self.opened, self.released = plans, 0, 0

    def __call__(self, spec):
        self.opened += 1
        plan = iter(self.plans.pop(0) if self.plans else [])
        camera = self

        class Capture:
            def isOpened(self):
                return True

            def get(self, prop):
                return 30.0 if prop == cv2.CAP_PROP_FPS else -1.0

            def read(self):
                ok = next(plan, False)
                return ok, np.zeros((4, 4, 3), np.uint8) if ok else None

            def release(self):
                camera.released += 1

        return Capture()


@pytest.fixture
def sleeps(monkeypatch):
    waited = []
    monkeypatch.setattr(sources.time, "sleep", waited.append)
    return waited


def test_camera_that_drops_out_is_reopened_with_growing_pauses(monkeypatch, sleeps):
    # Two drop-outs: the pauses start again from the shortest after a frame comes through.
    camera = FakeCamera([[True, True, False], [False], [True, True, False], [True, True, True]])
    monkeypatch.setattr(cv2, "VideoCapture", camera)
    source = open_source("0", limit=7)
    assert source.kind == "camera" and source.fps == 30.0
    assert [f.index for f in source] == list(range(7))
    assert sleeps == [*RECONNECT_DELAYS_S[:2], RECONNECT_DELAYS_S[0]]
    assert camera.opened == camera.released == 4


def test_camera_that_never_comes_back_is_an_error(monkeypatch, sleeps):
    camera = FakeCamera([[True, True]])
    monkeypatch.setattr(cv2, "VideoCapture", camera)
    read = []
    with pytest.raises(
        EdgeferError,
        match=rf"^0: no frame after {len(RECONNECT_DELAYS_S)} "
        r"attempts to reopen it \(the last frame read was #1\)",
    ):
        for frame in open_source("0"):
            read.append(frame.index)
    assert read == [0, 1] and sleeps == list(RECONNECT_DELAYS_S)
    assert sleeps == sorted(sleeps) and camera.opened == camera.released == 1 + len(sleeps)


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("/no/such.png", "no such file"),
        ("99", "cannot open camera"),
    ],
)
def test_bad_sources(spec, expected, capfd):
    with pytest.raises(EdgeferError, match=expected):
        list(open_source(spec))
    assert "[ WARN" not in capfd.readouterr().err  # OpenCV's own lines do not precede ours


def test_unreadable_single_image(tmp_path):
    (tmp_path / "x.png").write_bytes(b"junk")
    with pytest.raises(EdgeferError, match="x.png: unreadable image"):
        open_source(str(tmp_path / "x.png"))
