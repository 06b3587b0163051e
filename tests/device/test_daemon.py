import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from edgefer.device.daemon.config import load_config
from edgefer.device.daemon.loop import Daemon
from tests.cli_helpers import run
from tests.device.daemons import events_of, get, mqtt_overrides
from tests.device.mqtt_broker import Subscriber
from tests.polling import wait_for


def test_a_face_in_the_video_becomes_events_and_stop_closes_its_track(
    config_file, tmp_path, run_daemon
):
    daemon = run_daemon(load_config(config_file, environ={}), config_file)
    out = tmp_path / "events.jsonl"
    assert wait_for(lambda: any(e["type"] == "summary" for e in events_of(out)), 60)
    daemon.stop()
    events = events_of(out)
    types = [e["type"] for e in events]
    assert types[:2] == ["source_up", "face_appeared"] and types[-1] == "face_left"
    assert events[-1]["track"] == events[1]["track"] and events[-1]["duration"] > 0
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    summary = next(e for e in events if e["type"] == "summary")
    assert summary["fps"] > 1 and summary["tracks_open"] >= 1


def test_sigterm_exits_0_with_every_event_flushed_and_sighup_refuses_a_bad_config(
    config_file, tmp_path
):
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgefer", "daemon", "--config", str(config_file)],
        stderr=subprocess.PIPE,
        text=True,
    )
    out = tmp_path / "events.jsonl"
    try:
        assert wait_for(lambda: any(e["type"] == "face_appeared" for e in events_of(out)), 90)
        good = config_file.read_text()
        config_file.write_text(good + "threads = 0\n")
        proc.send_signal(signal.SIGHUP)
        time.sleep(1.0)
        config_file.write_text(good)
        seen = len(events_of(out))
        assert wait_for(lambda: len(events_of(out)) > seen, 10)  # still running the old config
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
    finally:
        proc.kill()
    assert "SIGHUP: config refused" in proc.stderr.read()
    assert events_of(out)[-1]["type"] == "face_left"


def test_bad_config_is_one_line_and_exit_2(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[source]\nurl = 3\n")
    res = run("daemon", "--config", path)
    assert res.exit_code == 2
    assert res.output.strip() == f"error: {path}: key source.url: Extra inputs are not permitted"


def test_print_config_resolves_and_masks(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEFER_SERVER__TOKEN", "s3cret")
    res = run("daemon", "--set", "threads=2", "--print-config")
    assert res.exit_code == 0
    cfg = json.loads(res.output)
    assert cfg["threads"] == 2 and cfg["server"]["token"] == "**********"


def test_schema_describes_every_key_for_editors():
    res = run("daemon", "--schema")
    assert res.exit_code == 0
    schema = json.loads(res.output)
    assert set(schema["properties"]) == {
        "bundle", "backend", "threads", "delegate", "fallback", "format", "providers", "margin",
        "expression_every", "source", "detector", "tracking", "cameras", "events", "outputs", "server",
    }  # fmt: skip
    cameras = schema["properties"]["cameras"]
    assert cameras["additionalProperties"] == {"$ref": "#/$defs/CameraConfig"}
    assert cameras["propertyNames"]["pattern"] == "^[a-z0-9_-]{1,32}$"
    camera = schema["$defs"]["CameraConfig"]["properties"]
    assert set(camera) == {"source", "detector", "tracking"}
    assert set(schema["$defs"]["DelegateConfig"]["properties"]) == {"library", "options"}
    detector = schema["$defs"]["DetectorConfig"]
    assert detector["additionalProperties"] is False  # an editor flags a misspelt key
    assert detector["properties"]["kind"]["enum"] == [
        "auto",
        "haar",
        "blazeface",
        "blazeface-track",
    ]
    assert {
        "blazeface_range",
        "threshold",
        "scale_factor",
        "min_size",
        "roi_search",
        "track_input",
    } <= set(detector["properties"])


def test_the_example_config_is_valid(tmp_path):
    from pathlib import Path

    import edgefer.device.daemon

    example = Path(edgefer.device.daemon.__file__).parent / "edgefer.example.toml"
    assert list(load_config(example, environ={}).cameras) == ["default"]
    # Its commented two-camera example, uncommented, is valid too, and overrides per camera.
    two = re.sub(
        r"^# (\[cameras\.|source = |detector = |tracking = )",
        r"\1",
        example.read_text(),
        flags=re.MULTILINE,
    )
    (tmp_path / "two.toml").write_text(two)
    cameras = load_config(tmp_path / "two.toml", environ={}).cameras
    assert list(cameras) == ["door", "yard"]
    assert cameras["yard"].detector.kind == "blazeface" and cameras["door"].detector.kind == "auto"
    assert cameras["yard"].tracking.lost_after == 2.0 and cameras["door"].tracking.lost_after == 1.0


def camera_status(base_url, camera="default"):
    return json.loads(get(base_url + "/status")[1])["cameras"][camera]


def metric_families(base_url):
    return {f.name: f for f in text_string_to_metric_families(get(base_url + "/metrics")[1])}


def spool_depth(base_url):
    return metric_families(base_url)["edgefer_spool_depth"].samples[0].value


def test_status_server_health_metrics_and_status(config_file, tmp_path, run_daemon):
    base = run_daemon(load_config(config_file, environ={}), config_file).url
    assert wait_for(lambda: get(base + "/healthz")[0] == 200, 60)
    assert wait_for(lambda: camera_status(base)["tracks"], 30)
    status = json.loads(get(base + "/status")[1])
    camera = status["cameras"]["default"]
    assert status["model"] == "edge" and camera["source"]["state"] == "streaming"
    assert camera["tracks"][0]["label"] in camera["tracks"][0]["scores"]
    families = metric_families(base)
    frames = next(s for s in families["edgefer_frames"].samples if s.name.endswith("_total"))
    assert frames.value > 0 and frames.labels == {"camera": "default"}
    stages = {s.labels.get("stage") for s in families["edgefer_stage_ms"].samples}
    assert {"detect", "inference", "total"} <= stages
    assert families["edgefer_info"].samples[0].labels == {
        "bundle": "edge",
        "model": "edge",
        "backend": "cpu",
    }
    assert get(base + "/nope")[0] == 404


def test_a_token_is_required_when_one_is_set(config_file, tmp_path):
    config = load_config(
        config_file, ["server.bind=127.0.0.1"], environ={"EDGEFER_SERVER__TOKEN": "t0k"}
    )
    service = Daemon(config, config_file)
    service.server.start()
    url = f"http://127.0.0.1:{service.server.port}/status"
    try:
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(url, timeout=5)
        assert err.value.code == 401
        req = urllib.request.Request(url, headers={"Authorization": "Bearer t0k"})
        with urllib.request.urlopen(req, timeout=5) as r:
            assert r.status == 200
    finally:
        service.server.stop()


def test_healthz_is_503_while_no_frame_flows(config_file):
    service = Daemon(load_config(config_file, ["source.uri=/nonexistent.mp4"], environ={}))
    service.server.start()  # the capture never delivers a frame
    try:
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(f"http://127.0.0.1:{service.server.port}/healthz", timeout=5)
        assert err.value.code == 503
    finally:
        service.server.stop()


def test_mqtt_delivers_every_event_in_order_across_a_broker_restart(
    config_file, tmp_path, broker, run_daemon
):
    """Events produced (the JSON Lines log) = events delivered over MQTT, first arrivals in order.

    QoS 1 is at-least-once and the sender has one event in flight: the only event that may come
    twice is the one the broker forwarded just before it died, its PUBACK lost, which paho sends
    again after the reconnect (consumers deduplicate on the event id, as documented)."""
    first = Subscriber(broker.port)
    config = load_config(config_file, mqtt_overrides(broker, tmp_path), environ={})
    daemon = run_daemon(config, config_file)
    out = tmp_path / "events.jsonl"
    assert wait_for(lambda: len(first.events()) >= 2, 60)
    broker.kill()
    produced = len(events_of(out))
    assert wait_for(lambda: len(events_of(out)) >= produced + 2, 30)  # events while down
    broker.start()
    second = Subscriber(broker.port)
    time.sleep(2.0)
    daemon.stop()
    before, after = [e["id"] for e in first.events()], [e["id"] for e in second.events()]
    arrived = before + after
    assert list(dict.fromkeys(arrived)) == [e["id"] for e in events_of(out)]
    repeats = len(arrived) - len(set(arrived))
    assert repeats == 0 or (repeats == 1 and after[0] == before[-1]), (before, after)


def test_every_configured_output_is_built(tmp_path):
    from edgefer.device.daemon.loop import build_sinks

    config = load_config(
        None,
        [
            f'outputs.jsonl.path="{tmp_path / "e.jsonl"}"',
            'outputs.webhook.url="http://127.0.0.1:1/hook"',
        ],
        environ={},
    )
    sinks = build_sinks(config)
    assert {n: type(s).__name__ for n, (_, s) in sinks.items()} == {
        "jsonl": "JsonlSink",
        "webhook": "WebhookSink",
    }
    for _, s in sinks.values():
        s.close()


def test_the_spool_depth_gauge_rises_while_the_broker_is_away_and_drains_to_0(
    config_file, tmp_path, broker, run_daemon
):
    """Scraped from /metrics with the camera gone too (its summary events go on): the gauge must
    be read when scraped, not only when a frame is processed, as an operator looks at it exactly
    when things are down. Once it drains, every spooled event has arrived, in order."""
    first = Subscriber(broker.port)
    overrides = [
        "source.uri=/nonexistent.mp4",
        "events.summary_interval=0.5",
        *mqtt_overrides(broker, tmp_path),
    ]
    base = run_daemon(load_config(config_file, overrides, environ={}), config_file).url
    assert wait_for(lambda: first.events() and spool_depth(base) == 0, 30)
    broker.kill()
    assert wait_for(lambda: spool_depth(base) >= 3, 15)
    spooled = spool_depth(base)
    broker.start()
    second = Subscriber(broker.port)  # before the sink's reconnect (its backoff starts at 1 s)
    assert wait_for(lambda: spool_depth(base) == 0, 30)
    seqs = [e["seq"] for e in first.events() + second.events()]
    assert len(second.events()) >= spooled
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))


def test_a_reload_keeps_the_tracks_and_the_sequence(config_file, tmp_path, sighup_daemon):
    """A valid reload must not end tracks: the face that never left has one face_appeared and
    one face_left, seq goes on by one, and the run id stays. The new config writes a second
    log, so the test also sees that the reload took effect."""
    before, after = tmp_path / "events.jsonl", tmp_path / "after.jsonl"
    daemon = sighup_daemon(load_config(config_file, environ={}), config_file)
    assert wait_for(lambda: any(e["type"] == "face_appeared" for e in events_of(before)), 60)
    model, camera = daemon.service.model, daemon.service.cameras["default"]
    pipeline = camera.pipeline
    config_file.write_text(config_file.read_text().replace(before.name, after.name))
    os.kill(os.getpid(), signal.SIGHUP)
    assert wait_for(lambda: any(e["type"] == "summary" for e in events_of(after)), 30)
    assert daemon.service.model is model and daemon.service.cameras["default"] is camera
    assert camera.pipeline is pipeline
    daemon.stop()
    events = events_of(before) + events_of(after)
    assert [e["type"] for e in events].count("face_appeared") == 1
    assert [e["type"] for e in events].count("face_left") == 1
    appeared = next(e for e in events if e["type"] == "face_appeared")
    assert events[-1]["type"] == "face_left" and events[-1]["track"] == appeared["track"]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert len({e["run"] for e in events}) == 1


@pytest.mark.parametrize(
    "change", ["port in use", "unwritable events path", "bad bundle", "missing cascade"]
)
def test_a_reload_that_cannot_work_keeps_the_running_daemon(
    config_file, tmp_path, sighup_daemon, caplog, change
):
    """Every new part is built before any running one is touched: a port in use, a JSONL path
    that cannot be written or a bundle that is not one leave the old parts running."""
    events = tmp_path / "events.jsonl"
    config = load_config(config_file, environ={})
    daemon = sighup_daemon(config, config_file)
    assert wait_for(lambda: events_of(events), 60)
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    (tmp_path / "file").write_text("")
    text = config_file.read_text()
    new = {
        "port in use": text.replace("port = 0", f"port = {busy.getsockname()[1]}"),
        "unwritable events path": text.replace(str(events), str(tmp_path / "file" / "e.jsonl")),
        "bad bundle": f'bundle = "{tmp_path}"\n' + text,
        "missing cascade": text
        + f'[detector]\nkind = "haar"\ncascade = "{tmp_path / "none.xml"}"\n',
    }[change]
    config_file.write_text(new)
    with caplog.at_level(logging.ERROR, "edgefer.daemon"):
        os.kill(os.getpid(), signal.SIGHUP)
        assert wait_for(lambda: "SIGHUP: config refused" in caplog.text, 30)
    busy.close()
    seen = len(events_of(events))
    assert wait_for(lambda: len(events_of(events)) > seen, 10)  # the old JSONL still written
    assert get(daemon.url + "/healthz")[0] == 200  # the old server still answers
    assert daemon.thread.is_alive() and daemon.service.config is config


def test_a_reload_may_move_the_server_to_another_address_on_the_same_port(
    config_file, tmp_path, sighup_daemon
):
    """127.0.0.1 to localhost (or to 0.0.0.0) on the same port: the new socket cannot be bound
    while the old one holds the port, so the old one lets go first."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config_file.write_text(config_file.read_text().replace("port = 0", f"port = {port}"))
    daemon = sighup_daemon(load_config(config_file, environ={}), config_file)
    assert wait_for(lambda: get(daemon.url + "/healthz")[0] == 200, 60)
    old = daemon.service.server
    config_file.write_text(config_file.read_text() + 'bind = "localhost"\n')
    os.kill(os.getpid(), signal.SIGHUP)
    assert wait_for(lambda: daemon.service.server is not old, 30)
    assert daemon.service.server.config.bind == "localhost"
    assert get(f"http://localhost:{port}/healthz")[0] == 200


def test_events_name_their_run_and_a_restart_starts_a_new_one(config_file, tmp_path, run_daemon):
    """seq starts at 1 in each run; the run id tells the runs in one log apart."""
    out = tmp_path / "events.jsonl"
    for _ in range(2):
        daemon = run_daemon(load_config(config_file, environ={}), config_file)
        count = len(events_of(out))
        assert wait_for(lambda n=count: len(events_of(out)) > n, 60)
        daemon.stop()
    events = events_of(out)
    runs = list(dict.fromkeys(e["run"] for e in events))
    assert len(runs) == 2
    for run_id in runs:
        seqs = [e["seq"] for e in events if e["run"] == run_id]
        assert seqs == list(range(1, len(seqs) + 1))


def test_fps_in_metrics_comes_from_frames_not_the_first_summary(config_file, run_daemon):
    config = load_config(config_file, ["events.summary_interval=600"], environ={})
    base = run_daemon(config, config_file).url
    assert wait_for(lambda: metric_families(base)["edgefer_fps"].samples[0].value > 1, 60)


def test_a_source_that_goes_away_is_503_and_a_source_down_event_then_up_again(
    slow_face_video, tmp_path, broker, run_daemon
):
    """The source goes away after frames flowed: /healthz turns 503 once no frame came for
    stall_seconds (a stall check that stops after the first frame would keep answering 200),
    /status names the cause, and consumers hear it: a source_down event with the cause on JSONL
    and MQTT, and the retained <prefix>/<camera>/source state; frames back give source_up."""
    import shutil

    video = tmp_path / "going.mp4"
    shutil.copy(slow_face_video, video)
    out = tmp_path / "events.jsonl"
    overrides = [
        f"source.uri={video}",
        "source.stall_seconds=0.5",
        "source.reconnect_max_seconds=0.5",
        "server.port=0",
        f"outputs.jsonl.path={out}",
        *mqtt_overrides(broker, tmp_path),
    ]
    base = run_daemon(load_config(None, overrides, environ={})).url
    assert wait_for(lambda: get(base + "/healthz")[0] == 200, 60)
    os.remove(video)  # the capture reopens it at its end, and cannot
    assert wait_for(lambda: get(base + "/healthz")[0] == 503, 30)

    def source():
        return camera_status(base)["source"]

    assert wait_for(lambda: "no such file" in (source()["error"] or ""), 10)
    assert source()["state"] == "reconnecting"
    assert wait_for(lambda: any(e["type"] == "source_down" for e in events_of(out)), 10)
    down = next(e for e in events_of(out) if e["type"] == "source_down")
    assert down["cause"] in ("end of the video", f"cannot open {video}: no such file or device")
    assert down["source"] == str(video)
    late = Subscriber(broker.port)  # subscribes after the event: the retained state tells it
    assert wait_for(lambda: ("edgefer/default/source", b"offline", True) in late.messages, 10)
    shutil.copy(slow_face_video, video)
    assert wait_for(lambda: get(base + "/healthz")[0] == 200, 30)
    assert wait_for(lambda: [e["type"] for e in events_of(out)].count("source_up") == 2, 10)
    types = [e["type"] for e in events_of(out) if e["type"].startswith("source")]
    assert types == ["source_up", "source_down", "source_up"]
    assert wait_for(lambda: ("edgefer/default/source", b"online", False) in late.messages, 10)


def test_status_and_metrics_name_the_bundle(config_file, run_daemon):
    config = load_config(config_file, ["bundle=edge-fast"], environ={})
    base = run_daemon(config, config_file).url
    status = json.loads(get(base + "/status")[1])
    assert status["bundle"] == "edge-fast" and status["config_file"] == str(config_file.resolve())
    assert metric_families(base)["edgefer_info"].samples[0].labels["bundle"] == "edge-fast"


@pytest.mark.parametrize("key", [None, "edge-fast", "./edge"])
def test_the_bundle_key_takes_a_bundled_name_or_a_directory(
    key, tmp_path, monkeypatch, tiny_bundle
):
    """Unset: the default bundle; a bundled name: that bundle; ./edge: the directory called
    edge here (a Path-typed key once turned ./edge into the bundled name)."""
    import shutil

    from edgefer.bundled import bundled_path
    from edgefer.device.daemon.loop import build_pipeline
    from edgefer.device.manifest import load_manifest

    monkeypatch.chdir(tmp_path)
    shutil.copytree(tiny_bundle, tmp_path / "edge")
    path = tmp_path / "edgefer.toml"
    path.write_text(f'bundle = "{key}"\n' if key else "")
    expected = {None: bundled_path("edge"), "edge-fast": bundled_path("edge-fast")}.get(
        key, tmp_path / "edge"
    )
    pipe = build_pipeline(load_config(path, [], {"HOME": str(tmp_path)}))
    assert pipe.manifest == load_manifest(expected)


def test_fps_is_not_0_at_rates_below_one_frame_in_the_window(config_file, monkeypatch):
    """A Pi under load at 0.3 FPS is slow, not stopped: /status and edgefer_fps say 0.3."""
    from edgefer.device.daemon import camera as camera_module

    service = Daemon(load_config(config_file, ["source.stall_seconds=10"], environ={}))
    camera = service.cameras["default"]
    now = 1000.0
    monkeypatch.setattr(camera_module.time, "monotonic", lambda: now)
    camera.frame_times.extend([now - 9.0, now - 5.8, now - 2.5])  # one frame every ~3.3 s
    assert camera.fps() == 0.3
    camera.frame_times.clear()
    camera.frame_times.extend([now - 14.0, now - 11.0])  # none for longer than stall_seconds
    assert camera.fps() == 0.0
    service.server.stop()
