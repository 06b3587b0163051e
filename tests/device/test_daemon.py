import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from edgefer.device.daemon import Daemon
from edgefer.device.daemon_config import load_config
from tests.cli_helpers import run
from tests.device.daemons import events_of, get
from tests.device.mqtt_broker import Broker, Subscriber
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


def metric_families(base_url):
    return {f.name: f for f in text_string_to_metric_families(get(base_url + "/metrics")[1])}


def spool_depth(base_url):
    return metric_families(base_url)["edgefer_spool_depth"].samples[0].value


def test_status_server_health_metrics_and_status(config_file, tmp_path, run_daemon):
    base = run_daemon(load_config(config_file, environ={}), config_file).url
    assert wait_for(lambda: get(base + "/healthz")[0] == 200, 60)
    assert wait_for(lambda: json.loads(get(base + "/status")[1])["tracks"], 30)
    status = json.loads(get(base + "/status")[1])
    assert status["model"] == "edge" and status["source"]["state"] == "streaming"
    assert status["tracks"][0]["label"] in status["tracks"][0]["scores"]
    families = metric_families(base)
    frames = next(s.value for s in families["edgefer_frames"].samples if s.name.endswith("_total"))
    assert frames > 0
    stages = {s.labels.get("stage") for s in families["edgefer_stage_ms"].samples}
    assert {"detect", "inference", "total"} <= stages
    assert families["edgefer_info"].samples[0].labels == {"model": "edge", "backend": "cpu"}
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


def mqtt_overrides(broker, tmp_path):
    return [
        "outputs.mqtt.host=127.0.0.1",
        f"outputs.mqtt.port={broker.port}",
        f"outputs.mqtt.spool_dir={tmp_path / 'spool'}",
    ]


@pytest.fixture
def broker(tmp_path):
    broker = Broker(tmp_path).start()
    yield broker
    if broker.proc.poll() is None:
        broker.kill()


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


def test_event_sequence_numbers_go_on_by_one_across_a_sighup_reload(
    config_file, tmp_path, run_daemon
):
    """A reload closes the open track and starts afresh, but `seq` goes on (consumers order by it
    and count a gap as lost events). The new config writes a second log, so the test also sees
    that the reload took effect."""
    before, after = tmp_path / "events.jsonl", tmp_path / "after.jsonl"
    daemon = run_daemon(load_config(config_file, environ={}), config_file)
    handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    daemon.service.install_signal_handlers()  # as `edgefer daemon` does
    try:
        assert wait_for(lambda: any(e["type"] == "face_appeared" for e in events_of(before)), 60)
        config_file.write_text(config_file.read_text().replace(before.name, after.name))
        os.kill(os.getpid(), signal.SIGHUP)
        assert wait_for(lambda: any(e["type"] == "face_appeared" for e in events_of(after)), 30)
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    daemon.stop()
    first, second = events_of(before), events_of(after)
    assert first[-1]["type"] == "face_left"  # the reload closed the track
    seqs = [e["seq"] for e in first + second]
    assert seqs == list(range(1, len(seqs) + 1))


@pytest.mark.parametrize("key", [None, "edge-fast", "./edge"])
def test_the_bundle_key_takes_a_bundled_name_or_a_directory(
    key, tmp_path, monkeypatch, tiny_bundle
):
    """Unset: the default bundle; a bundled name: that bundle; ./edge: the directory called
    edge here (a Path-typed key once turned ./edge into the bundled name)."""
    import shutil

    from edgefer.bundled import bundled_path
    from edgefer.device.daemon import build_pipeline
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
