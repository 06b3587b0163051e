"""One camera of the daemon, on its own: what a reload does to it."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from edgefer.device.daemon.camera import Camera
from edgefer.device.daemon.capture import CapturedFrame
from edgefer.device.daemon.config import CameraConfig, DaemonConfig, EventsConfig, SourceConfig
from edgefer.device.daemon.loop import open_model
from edgefer.device.daemon.status import Metrics
from edgefer.device.pipeline import Detection, FrameResult
from tests.polling import wait_for

BOX = (100, 100, 120, 120)


@pytest.fixture(scope="module")
def model():
    return open_model(DaemonConfig())


def camera_on(model, uri, **source) -> Camera:
    config = CameraConfig(source=SourceConfig(uri=str(uri), loop=True, **source))
    return Camera(
        "door",
        config,
        model,
        EventsConfig(),
        "run1",
        threading.Event(),
        Metrics(list, dict),
        model.pipeline(config.detector),
    )


class FixedFace:
    """A pipeline that finds one face in every frame, scored over `labels`."""

    detector_kind = "fixed"

    def __init__(self, labels):
        self.labels = list(labels)

    def __call__(self, image) -> FrameResult:
        scores = dict(zip(self.labels, np.linspace(0.1, 0.9, len(self.labels))))
        return FrameResult([Detection(BOX, self.labels[-1], 0.9, scores)], {"total": 1.0})


def frame(t: float) -> CapturedFrame:
    return CapturedFrame(0, np.zeros((480, 640, 3), np.uint8), t)


def test_another_source_on_reload_is_a_switch_not_an_outage(model, slow_face_video, tmp_path):
    """Right after the new capture starts, before its first frame: no source_down, and the
    camera is still healthy (for stall_seconds, as at a start)."""
    other = tmp_path / "other.mp4"
    other.write_bytes(slow_face_video.read_bytes())
    camera = camera_on(model, slow_face_video).start()
    try:
        assert wait_for(lambda: camera.watch_source(), 15)  # source_up
        switched = camera.config.model_copy(
            update={"source": SourceConfig(uri=str(other), loop=True)}
        )
        assert camera.reconfigure(switched, model, EventsConfig(), None) == []
        assert camera.watch_source() == [] and camera.healthy()
        assert camera.capture.config.uri == str(other)
    finally:
        camera.stop()


def test_a_model_with_other_labels_ends_the_tracks_it_scored(model, slow_face_video):
    """The open tracks hold scores over the old labels: a reload to a model with other labels
    closes them (with the old labels), and the next face is tracked over the new ones."""
    camera = camera_on(model, slow_face_video)
    old = FixedFace(model.manifest.labels)
    camera.pipeline = old
    (appeared,) = camera.process(frame(1.0), preview=False)
    assert appeared["type"] == "face_appeared" and set(appeared["scores"]) == set(old.labels)
    new = FixedFace([*model.manifest.labels, "contempt"])
    closed = camera.reconfigure(camera.config, model, EventsConfig(), new)
    assert [e["type"] for e in closed] == ["face_left"] and closed[0]["label"] in old.labels
    (again,) = camera.process(frame(1.1), preview=False)
    assert again["type"] == "face_appeared" and again["label"] == "contempt"
    assert set(again["scores"]) == set(new.labels)
    assert camera.status()["timeline"]["labels"] == new.labels
