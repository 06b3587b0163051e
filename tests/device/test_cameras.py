"""Several cameras in one daemon: one model shared, each camera's own capture, detector, tracks
and events, labelled everywhere (events, MQTT topics, /status, /metrics), one camera's failure
leaving the others running, and a reload that adds and removes cameras."""

from __future__ import annotations

import json
import os
import shutil
import signal

import cv2
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from edgefer.device.daemon.config import load_config
from tests.device.daemons import events_of, get, mqtt_overrides
from tests.device.mqtt_broker import Subscriber
from tests.polling import wait_for


@pytest.fixture(scope="module")
def empty_video(tmp_path_factory):
    """3 s of a grey room: frames, and never a face."""
    path = tmp_path_factory.mktemp("cameras") / "room.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30, (640, 480))
    for i in range(90):
        writer.write(np.full((480, 640, 3), 90 + i % 5, np.uint8))
    writer.release()
    return path


def two_cameras(tmp_path, door, hall, *more) -> tuple:
    """A config file with cameras `door` and `hall` (their video files, looping), the shared
    defaults written once at the top level, events to JSONL; and its event log."""
    log = tmp_path / "events.jsonl"
    path = tmp_path / "edgefer.toml"
    path.write_text(
        "[source]\nloop = true\nstall_seconds = 1\nreconnect_max_seconds = 0.5\n"
        f'[cameras.door]\nsource = {{ uri = "{door}" }}\n'
        f'[cameras.hall]\nsource = {{ uri = "{hall}" }}\n'
        + "".join(more)
        + f'[outputs.jsonl]\npath = "{log}"\n[events]\nsummary_interval = 1\n[server]\nport = 0\n'
    )
    return path, log


def of(events, camera, kind=None):
    return [e for e in events if e["camera"] == camera and kind in (None, e["type"])]


def metrics(base) -> dict:
    """{(name, camera): value} of the per-camera samples /metrics shows."""
    return {
        (s.name, s.labels["camera"]): s.value
        for f in text_string_to_metric_families(get(base + "/metrics")[1])
        for s in f.samples
        if "camera" in s.labels and "stage" not in s.labels and "type" not in s.labels
    }


def test_two_cameras_share_the_model_and_keep_their_own_tracks_and_events(
    tmp_path, slow_face_video, empty_video, run_daemon
):
    """The door sees a face, the hall an empty room: the face is the door's alone (a frame
    given to the wrong camera's tracks would show it in the hall), each camera numbers its own
    events from 1 in the one run, and both run on one model."""
    path, log = two_cameras(tmp_path, slow_face_video, empty_video)
    daemon = run_daemon(load_config(path, environ={}), path)
    service = daemon.service
    door, hall = service.cameras["door"], service.cameras["hall"]
    assert door.pipeline.runtime is hall.pipeline.runtime is service.model.runtime
    assert door.pipeline.detector is not hall.pipeline.detector  # each its own ROI search
    assert wait_for(lambda: of(events_of(log), "door", "face_appeared"), 60)
    assert wait_for(lambda: len(of(events_of(log), "hall", "summary")) >= 2, 30)
    status = json.loads(get(daemon.url + "/status")[1])
    assert set(status["cameras"]) == {"door", "hall"} and status["health"] == "ok"
    assert status["cameras"]["hall"]["frames_processed"] > 0
    assert status["cameras"]["hall"]["tracks"] == []
    daemon.stop()
    events = events_of(log)
    assert of(events, "hall", "face_appeared") == []
    assert len({e["run"] for e in events}) == 1
    for camera in ("door", "hall"):
        assert [e["seq"] for e in of(events, camera)] == list(range(1, len(of(events, camera)) + 1))
    door_appeared = {e["track"] for e in of(events, "door", "face_appeared")}
    assert door_appeared == {e["track"] for e in of(events, "door", "face_left")}


def test_a_camera_that_fails_leaves_the_others_running(
    tmp_path, slow_face_video, broker, run_daemon
):
    """The hall's video goes away: /healthz says degraded and names it, /status and /metrics say
    which camera is down, its source_down event and retained MQTT state carry its name, and the
    door goes on processing. Back, all is ok again."""
    hall = tmp_path / "hall.mp4"
    shutil.copy(slow_face_video, hall)
    path, log = two_cameras(tmp_path, slow_face_video, hall)
    # The hall's file played to its end is reopened: then it is gone (a looping one stays open).
    path.write_text(path.read_text().replace(f'"{hall}" }}', f'"{hall}", loop = false }}'))
    config = load_config(path, mqtt_overrides(broker, tmp_path), environ={})
    sub = Subscriber(broker.port)
    base = run_daemon(config, path).url
    assert wait_for(lambda: get(base + "/healthz") == (200, "ok\n"), 60)
    os.remove(hall)
    assert wait_for(lambda: get(base + "/healthz") == (503, "degraded: no frames from hall\n"), 30)
    status = json.loads(get(base + "/status")[1])
    assert status["health"] == "degraded: no frames from hall" and not status["healthy"]
    assert status["cameras"]["door"]["healthy"] and not status["cameras"]["hall"]["healthy"]
    assert status["cameras"]["hall"]["source"]["state"] == "reconnecting"
    m = metrics(base)
    assert m[("edgefer_source_up", "door")] == 1 and m[("edgefer_source_up", "hall")] == 0
    frames = m[("edgefer_frames_total", "door")]
    assert wait_for(lambda: metrics(base)[("edgefer_frames_total", "door")] > frames + 10, 10)
    (down,) = of(events_of(log), "hall", "source_down")
    assert down["source"] == str(hall) and of(events_of(log), "door", "source_down") == []
    topics = {(t, json.loads(p)["camera"]) for t, p, _ in sub.messages if "/events/" in t}
    assert ("edgefer/door/events/face_appeared", "door") in topics
    assert wait_for(lambda: any(t == "edgefer/hall/events/source_down" for t, _, _ in sub.messages))
    late = Subscriber(broker.port)  # the retained states: each camera's own
    assert wait_for(lambda: ("edgefer/hall/source", b"offline", True) in late.messages, 10)
    assert ("edgefer/door/source", b"online", True) in late.messages
    shutil.copy(slow_face_video, hall)
    assert wait_for(lambda: get(base + "/healthz") == (200, "ok\n"), 30)
    late.stop()
    sub.stop()


def test_healthz_is_503_no_frames_when_every_camera_is_down(tmp_path, run_daemon):
    path, _ = two_cameras(tmp_path, tmp_path / "gone1.mp4", tmp_path / "gone2.mp4")
    base = run_daemon(load_config(path, environ={}), path).url
    assert wait_for(lambda: get(base + "/healthz") == (503, "no frames\n"), 10)


def test_a_reload_adds_and_removes_cameras(tmp_path, slow_face_video, empty_video, sighup_daemon):
    """SIGHUP with the hall gone and a porch new, and every camera's max_fps changed: the
    hall's open tracks end with their face_left events, a source_down says it is gone, and its
    gauges leave /metrics; the porch starts; the door runs on, the same camera (its tracks and
    sequence go on), and a new rate is no outage (no source_down)."""
    path, log = two_cameras(tmp_path, empty_video, slow_face_video)
    daemon = sighup_daemon(load_config(path, environ={}), path)
    door = daemon.service.cameras["door"]
    assert wait_for(lambda: of(events_of(log), "hall", "face_appeared"), 60)
    text = path.read_text().replace("[cameras.hall]", "[cameras.porch]")
    text = text.replace("[source]\n", "[source]\nmax_fps = 20\n")
    path.write_text(text.replace(f'uri = "{slow_face_video}"', f'uri = "{empty_video}"'))
    os.kill(os.getpid(), signal.SIGHUP)
    assert wait_for(lambda: of(events_of(log), "porch", "source_up"), 30)
    assert set(daemon.service.cameras) == {"door", "porch"}
    assert daemon.service.cameras["door"] is door
    assert daemon.service.cameras["door"].capture.config.max_fps == 20
    hall = of(events_of(log), "hall")
    assert [e["type"] for e in hall[-2:]] == ["face_left", "source_down"]
    assert hall[-1]["cause"] == "the camera was removed from the config"
    assert {e["track"] for e in of(hall, "hall", "face_appeared")} == {
        e["track"] for e in of(hall, "hall", "face_left")
    }
    cameras = {camera for _, camera in metrics(daemon.url) if _ == "edgefer_fps"}
    assert cameras == {"door", "porch"}
    daemon.stop()
    door_seq = [e["seq"] for e in of(events_of(log), "door")]
    assert door_seq == list(range(1, len(door_seq) + 1))
    assert of(events_of(log), "door", "source_down") == []


@pytest.fixture(scope="module")
def still_face_video(tmp_path_factory):
    """3 s of one frame of the face video: the face is found in every frame alike, so a track
    that ends can only be the daemon's doing."""
    from edgefer.samples import face_video_frames

    frame = next(iter(face_video_frames(1)))
    path = tmp_path_factory.mktemp("cameras") / "still.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30, (640, 480))
    for _ in range(90):
        writer.write(frame)
    writer.release()
    return path


def test_a_face_between_a_capped_cameras_frames_stays_one_track(
    tmp_path, still_face_video, run_daemon
):
    """1.5 frames a second, tracks lost after 0.2 s: a frame held back by max_fps is not an
    absence (the frame loop, waiting for it, must not close the face's track meanwhile), so the
    face is one track, not a new one at every frame."""
    log, path = tmp_path / "events.jsonl", tmp_path / "edgefer.toml"
    path.write_text(
        f'[cameras.door]\nsource = {{ uri = "{still_face_video}", loop = true, max_fps = 1.5 }}\n'
        "tracking = { lost_after = 0.2 }\n"
        f'[outputs.jsonl]\npath = "{log}"\n[events]\nsummary_interval = 1\n[server]\nport = 0\n'
    )
    daemon = run_daemon(load_config(path, environ={}), path)
    assert wait_for(lambda: len(of(events_of(log), "door", "summary")) >= 4, 30)
    daemon.stop()
    appeared = of(events_of(log), "door", "face_appeared")
    assert len(appeared) == 1, [e["monotonic"] for e in appeared]
