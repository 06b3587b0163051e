import json
import signal
import subprocess
import sys
import threading
import time

import pytest

from edgefer.device.daemon import Daemon
from edgefer.device.daemon_config import load_config
from tests.cli_helpers import run
from tests.polling import wait_for


def events_of(path):
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.fixture(scope="module")
def slow_face_video(tmp_path_factory):
    """10 s of the face video at 30 FPS: the face moves as a person would, not 40 frames' worth
    of path in 1.3 s (the tracker is meant to follow the first, not the second)."""
    from edgefer.samples import write_face_video

    return write_face_video(tmp_path_factory.mktemp("daemon") / "face.mp4", frames=300)


@pytest.fixture
def config_file(tmp_path, slow_face_video):
    path = tmp_path / "edgefer.toml"
    path.write_text(
        f'[source]\nuri = "{slow_face_video}"\nloop = true\n'
        f'[outputs.jsonl]\npath = "{tmp_path / "events.jsonl"}"\n'
        "[events]\nsummary_interval = 1\n[server]\nport = 0\n"
    )
    return path


def test_a_face_in_the_video_becomes_events_and_stop_closes_its_track(config_file, tmp_path):
    service = Daemon(load_config(config_file, environ={}), config_file)
    thread = threading.Thread(target=service.run)
    thread.start()
    out = tmp_path / "events.jsonl"
    try:
        assert wait_for(lambda: any(e["type"] == "summary" for e in events_of(out)), 60)
    finally:
        service.stop_requested.set()
        thread.join(10)
    assert not thread.is_alive()
    events = events_of(out)
    types = [e["type"] for e in events]
    assert types[0] == "face_appeared" and types[-1] == "face_left"
    assert events[-1]["track"] == events[0]["track"] and events[-1]["duration"] > 0
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


def test_the_example_config_is_valid():
    from pathlib import Path

    import edgefer.device

    example = Path(edgefer.device.__file__).parent / "edgefer.example.toml"
    assert load_config(example, environ={}).source.uri == "0"


def test_status_server_health_metrics_and_status(config_file, tmp_path):
    import urllib.error
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    service = Daemon(load_config(config_file, environ={}), config_file)
    thread = threading.Thread(target=service.run)
    thread.start()
    base = f"http://127.0.0.1:{service.server.port}"

    def get(path):
        try:
            with urllib.request.urlopen(base + path, timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    try:
        assert wait_for(lambda: get("/healthz")[0] == 200, 60)
        assert wait_for(lambda: json.loads(get("/status")[1])["tracks"], 30)
        status = json.loads(get("/status")[1])
        assert status["model"] == "edge" and status["source"]["state"] == "streaming"
        assert status["tracks"][0]["label"] in status["tracks"][0]["scores"]
        families = {f.name: f for f in text_string_to_metric_families(get("/metrics")[1])}
        frames = next(
            s.value for s in families["edgefer_frames"].samples if s.name.endswith("_total")
        )
        assert frames > 0
        stages = {s.labels.get("stage") for s in families["edgefer_stage_ms"].samples}
        assert {"detect", "inference", "total"} <= stages
        assert families["edgefer_info"].samples[0].labels == {"model": "edge", "backend": "cpu"}
        assert get("/nope")[0] == 404
    finally:
        service.stop_requested.set()
        thread.join(10)


def test_a_token_is_required_when_one_is_set(config_file, tmp_path):
    import urllib.error
    import urllib.request

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
    import urllib.error
    import urllib.request

    service = Daemon(load_config(config_file, ["source.uri=/nonexistent.mp4"], environ={}))
    service.server.start()  # the capture never delivers a frame
    try:
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(f"http://127.0.0.1:{service.server.port}/healthz", timeout=5)
        assert err.value.code == 503
    finally:
        service.server.stop()


def test_mqtt_delivers_every_event_in_order_across_a_broker_restart(config_file, tmp_path):
    """Events produced (the JSON Lines log) = events delivered over MQTT, in order, none twice."""
    from tests.device.mqtt_broker import Broker, Subscriber

    broker = Broker(tmp_path).start()
    config_file.write_text(
        config_file.read_text() + f'[outputs.mqtt]\nhost = "127.0.0.1"\n'
        f'port = {broker.port}\nspool_dir = "{tmp_path / "spool"}"\n'
    )
    first = Subscriber(broker.port)
    service = Daemon(load_config(config_file, environ={}), config_file)
    thread = threading.Thread(target=service.run)
    thread.start()
    out = tmp_path / "events.jsonl"
    try:
        assert wait_for(lambda: len(first.events()) >= 2, 60)
        broker.kill()
        produced = len(events_of(out))
        assert wait_for(lambda: len(events_of(out)) >= produced + 2, 30)  # events while down
        broker.start()
        second = Subscriber(broker.port)
        time.sleep(2.0)
    finally:
        service.stop_requested.set()
        thread.join(15)
        broker.kill()
    delivered = [e["id"] for e in first.events() + second.events()]
    assert delivered == [e["id"] for e in events_of(out)]


def test_every_configured_output_is_built(tmp_path):
    from edgefer.device.daemon import build_sinks

    config = load_config(
        None,
        [
            f'outputs.jsonl.path="{tmp_path / "e.jsonl"}"',
            'outputs.webhook.url="http://127.0.0.1:1/hook"',
        ],
        environ={},
    )
    sinks = build_sinks(config)
    assert [type(s).__name__ for s in sinks] == ["JsonlSink", "WebhookSink"]
    for s in sinks:
        s.close()
