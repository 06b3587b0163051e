import logging
import os
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from edgefer.device.daemon.config import MqttConfig
from edgefer.device.daemon.outputs.mqtt import MqttSink
from edgefer.device.daemon.outputs.spool import Spool
from edgefer.errors import EdgeferError
from tests.device.disks import fill, small_disk
from tests.device.mqtt_broker import Broker, Subscriber, free_port
from tests.polling import wait_for


def event(seq):
    return {"id": f"id-{seq}", "camera": "default", "seq": seq, "type": "face_appeared"}


def config(broker, tmp_path, **kw):
    return MqttConfig(host="127.0.0.1", port=broker.port, spool_dir=tmp_path / "spool", **kw)


def started(sink):
    sink.start()
    return sink


def logged(caplog, level, text):
    """The messages of `level` from the daemon's logger that contain `text`."""
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "edgefer.daemon" and r.levelno == level and text in r.getMessage()
    ]


def test_events_arrive_in_order_with_online_and_offline_status(broker, tmp_path):
    sub = Subscriber(broker.port)
    sink = started(MqttSink(config(broker, tmp_path)))
    for seq in range(1, 51):
        sink.send(event(seq))
    assert wait_for(lambda: len(sub.events()) == 50)
    sink.close()
    assert [e["seq"] for e in sub.events()] == list(range(1, 51))

    def status():
        return [p for t, p, _ in sub.messages if t == "edgefer/available"]

    # close() waits for the broker's PUBACK of "offline", not for the broker to pass it on
    assert wait_for(lambda: status()[-1:] == [b"offline"], 10), status()
    assert status()[0] == b"online"
    sub.stop()
    late = Subscriber(broker.port)  # a newcomer sees the retained status
    assert wait_for(
        lambda: (
            (b"offline", True) in [(p, r) for t, p, r in late.messages if t == "edgefer/available"]
        )
    )
    late.stop()


def test_a_broker_outage_delays_events_but_loses_none(broker, tmp_path):
    first = Subscriber(broker.port)
    sink = started(MqttSink(config(broker, tmp_path)))
    for seq in range(1, 21):
        sink.send(event(seq))
    assert wait_for(lambda: len(first.events()) == 20)
    broker.kill()
    for seq in range(21, 61):  # while the broker is down: spooled
        sink.send(event(seq))
    assert wait_for(lambda: sink.depth() == 40, 5)
    broker.start()
    second = Subscriber(broker.port)  # before the sink's reconnect (its backoff starts at 1 s)
    assert wait_for(lambda: len(second.events()) == 40, 30)
    sink.close()
    seqs = [e["seq"] for e in first.events() + second.events()]
    assert seqs == list(range(1, 61))  # every event, in order, none twice
    first.stop()
    second.stop()


def test_delivery_resumes_within_seconds_of_the_broker_coming_back(broker, tmp_path, caplog):
    """paho doubles its wait between attempts: 1, 2, 4 s, then 8 s uncapped. Back 7.5 s into
    the outage, the broker would wait 7 s for an attempt; with the cap (5 s), less than 6."""
    caplog.set_level(logging.INFO, logger="edgefer.daemon")
    sink = started(MqttSink(config(broker, tmp_path)))
    assert wait_for(lambda: sink.status()["state"] == "connected")
    broker.kill()
    sink.send(event(1))
    time.sleep(7.5)
    broker.start()
    back = time.monotonic()
    sub = Subscriber(broker.port)
    assert wait_for(lambda: sub.events(), 15)
    assert time.monotonic() - back < 6
    assert sink.status() == {"state": "connected", "error": None, "depth": 0, "dropped": 0}
    sink.close()
    sub.stop()
    # the outage and its end, each said once (not once per reconnect attempt)
    assert len(logged(caplog, logging.WARNING, f"connection to 127.0.0.1:{broker.port} lost")) == 1
    assert len(logged(caplog, logging.WARNING, "mqtt")) == 1
    assert len(logged(caplog, logging.INFO, f"connected to 127.0.0.1:{broker.port}")) == 2


def test_a_refused_connection_is_logged_once_with_its_cause(tmp_path, caplog):
    broker = Broker(tmp_path, anonymous=False).start()
    try:
        sink = started(MqttSink(config(broker, tmp_path)))
        sink.send(event(1))
        cause = f"connection refused by 127.0.0.1:{broker.port}: Not authorized"
        assert wait_for(lambda: sink.status()["error"] == cause, 5)
        time.sleep(1.5)  # the second attempt, a second later
        assert sink.status() == {"state": "disconnected", "error": cause, "depth": 1, "dropped": 0}
        sink.close()
    finally:
        broker.kill()
    assert logged(caplog, logging.WARNING, "mqtt") == [
        f"mqtt: {cause}; events stay spooled until it connects"
    ]


def test_a_wrong_port_is_logged_with_its_cause(tmp_path, caplog):
    port = free_port()  # nothing listens there
    sink = started(MqttSink(MqttConfig(host="127.0.0.1", port=port, spool_dir=tmp_path)))
    cause = f"cannot connect to 127.0.0.1:{port}: Connection refused"
    assert wait_for(lambda: sink.status()["error"] == cause, 5)
    sink.close()
    assert len(logged(caplog, logging.WARNING, cause)) == 1


def test_events_spooled_by_a_killed_daemon_arrive_after_its_restart(broker, tmp_path):
    broker.kill()
    code = textwrap.dedent(f"""
        import os, signal
        from pathlib import Path
        from edgefer.device.daemon.config import MqttConfig
        from edgefer.device.daemon.outputs.mqtt import MqttSink
        sink = MqttSink(MqttConfig(host="127.0.0.1", port={broker.port},
                                   spool_dir=Path({str(tmp_path / "spool")!r})))
        sink.start()
        for seq in range(1, 31):
            sink.send({{"id": f"id-{{seq}}", "camera": "default", "seq": seq, "type": "face_appeared"}})
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run([sys.executable, "-c", code], check=False, timeout=60)
    assert proc.returncode == -9
    broker.start()
    sub = Subscriber(broker.port)
    sink = started(MqttSink(config(broker, tmp_path)))  # the restarted daemon, same spool
    assert wait_for(lambda: len(sub.events()) == 30, 30)
    sink.close()
    assert [e["seq"] for e in sub.events()] == list(range(1, 31))
    sub.stop()


# A daemon that sends 5 events while the broker answers nothing, and says when the first is
# published: that one is on the wire, waiting for its PUBACK, when the test kills it.
IN_FLIGHT = """
import sys, threading, time
from pathlib import Path
from edgefer.device.daemon.config import MqttConfig
from edgefer.device.daemon.outputs.mqtt import MqttSink
sink = MqttSink(MqttConfig(host="127.0.0.1", port=int(sys.argv[1]), spool_dir=Path(sys.argv[2])))
sink.start()
assert sink.connected.wait(10)
print("connected", flush=True)
sys.stdin.readline()  # the broker is stopped now
published, publish = threading.Event(), sink.client.publish
def spy(*args, **kwargs):
    info = publish(*args, **kwargs)
    published.set()
    return info
sink.client.publish = spy
for seq in range(1, 6):
    sink.send({"id": f"id-{seq}", "camera": "default", "seq": seq, "type": "face_appeared"})
assert published.wait(10)
time.sleep(1)  # time enough for a sink that removes it before its PUBACK to have done so
print("in flight", flush=True)
sys.stdin.readline()  # until killed
"""


def test_an_event_without_its_puback_when_the_daemon_dies_is_delivered_after_restart(
    broker, tmp_path
):
    """The spool row goes only after the PUBACK: removed before, the event in flight would be
    lost with a daemon killed (or a broker gone) before the PUBACK came."""
    args = [sys.executable, "-c", IN_FLIGHT, str(broker.port), str(tmp_path / "spool")]
    daemon = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert daemon.stdout.readline() == "connected\n"
        broker.pause()  # no PUBACK from here on
        daemon.stdin.write("\n")
        daemon.stdin.flush()
        assert daemon.stdout.readline() == "in flight\n"
    finally:
        daemon.kill()
        daemon.wait()
    broker.kill()  # with the PUBLISH it had not read: a broker that never got it
    broker.start()
    sub = Subscriber(broker.port)
    sink = started(MqttSink(config(broker, tmp_path)))  # the restarted daemon, same spool
    assert wait_for(lambda: len(sub.events()) >= 5, 15)
    sink.close()
    sub.stop()
    assert [e["seq"] for e in sub.events()] == [1, 2, 3, 4, 5]


def test_the_spool_is_bounded_dropping_the_oldest_and_counting_them(tmp_path):
    spool = Spool(tmp_path / "s.sqlite", max_bytes=1024)
    for i in range(100):
        spool.append("t", b"x" * 100 + str(i).encode())
    assert spool.depth() == 10 and spool.dropped() == 90  # 10 x 102 bytes fit in 1024
    assert spool.evicted == 90  # by this run: what the daemon's metrics count
    assert spool.peek()[2].endswith(b"90")  # the oldest left
    spool.close()
    again = Spool(tmp_path / "s.sqlite", max_bytes=1024)  # durable, counter included
    assert again.depth() == 10 and again.dropped() == 90 and again.evicted == 0
    again.close()


def test_no_broker_no_problem_for_the_caller(tmp_path):
    sink = started(MqttSink(MqttConfig(host="127.0.0.1", port=1, spool_dir=tmp_path / "spool")))
    start = time.monotonic()
    for seq in range(100):
        sink.send(event(seq))
    assert time.monotonic() - start < 5 and sink.depth() == 100
    sink.flush_seconds = 0.1
    sink.close()
    assert os.path.exists(tmp_path / "spool" / "mqtt.sqlite")


def test_building_opens_the_spool_but_starts_nothing(tmp_path):
    """The daemon builds the new sinks on SIGHUP while the old ones run, and may drop them
    unstarted: building starts no thread and no connection, closing an unstarted one is fine."""
    before = set(threading.enumerate())
    sink = MqttSink(MqttConfig(host="127.0.0.1", port=1, spool_dir=tmp_path / "spool"))
    assert (tmp_path / "spool" / "mqtt.sqlite").exists()
    assert set(threading.enumerate()) == before
    sink.close()
    assert set(threading.enumerate()) == before


@pytest.mark.parametrize("where", ["under a regular file", "a directory"])
def test_a_spool_that_cannot_be_created_is_one_line_naming_it(tmp_path, where):
    (tmp_path / "file").write_text("")
    spool_dir = tmp_path / "file" / "spool" if where == "under a regular file" else tmp_path
    if where == "a directory":
        (tmp_path / "mqtt.sqlite").mkdir()
    with pytest.raises(EdgeferError) as err:
        MqttSink(MqttConfig(host="127.0.0.1", spool_dir=spool_dir))
    message = str(err.value)
    assert message.startswith(f"{spool_dir / 'mqtt.sqlite'}: cannot open the spool (")
    assert "\n" not in message


@pytest.mark.parametrize("content", [None, "not a certificate"])
def test_a_ca_file_that_cannot_be_loaded_is_one_line_naming_it(tmp_path, content):
    ca_file = tmp_path / "ca.pem"
    if content is not None:
        ca_file.write_text(content)
    with pytest.raises(EdgeferError) as err:
        MqttSink(MqttConfig(host="127.0.0.1", tls=True, ca_file=ca_file, spool_dir=tmp_path))
    assert str(err.value).startswith(f"{ca_file}: cannot load the CA certificates (")
    assert "\n" not in str(err.value)


def check_a_full_spool_disk(sink, fill_disk, free_disk, caplog):
    """Events are dropped and counted, never raised; the disk is said to be full once, and
    that it is writable again once; the other events are spooled."""
    caplog.set_level(logging.INFO, logger="edgefer.daemon")
    for seq in range(10):
        sink.send(event(seq))
    fill_disk()
    for seq in range(10, 300):
        sink.send(event(seq))
    status = sink.status()
    assert status["state"] == "disk_full" and status["error"] == "database or disk is full"
    assert status["dropped"] > 0 and status["depth"] + status["dropped"] == 300
    free_disk()
    sink.send(event(300))
    assert sink.status()["state"] == "connecting" and sink.depth() + sink.dropped() == 301
    where = f"mqtt spool {sink.spool.path}"
    assert logged(caplog, logging.WARNING, "") == [
        f"{where}: database or disk is full; events are dropped and counted meanwhile"
    ]
    assert logged(caplog, logging.INFO, "") == [
        f"{where}: writing again; {sink.dropped()} events dropped so far"
    ]
    sink.close()


def test_a_full_spool_disk_drops_the_oldest_and_counts_them(tmp_path, caplog):
    """SQLite's page limit fails as a full disk does ("database or disk is full"); deleting
    events can make room there, so the oldest go and the newest are kept."""
    sink = MqttSink(MqttConfig(host="127.0.0.1", port=1, spool_dir=tmp_path / "spool"))
    db = sink.spool.db

    def no_more_pages():
        db.execute(f"PRAGMA max_page_count = {db.execute('PRAGMA page_count').fetchone()[0]}")

    check_a_full_spool_disk(
        sink, no_more_pages, lambda: db.execute("PRAGMA max_page_count = 1000000"), caplog
    )
    spooled = Spool(tmp_path / "spool" / "mqtt.sqlite", 10**9)
    seqs = [int(p.split(b'"seq":')[1].split(b",")[0]) for _, _, p in _items(spooled)]
    assert seqs == list(range(seqs[0], 301)) and seqs[0] > 0  # the oldest went
    assert spooled.dropped() == seqs[0]  # and were counted in the spool too
    spooled.close()


def _items(spool):
    return spool.db.execute("SELECT id, topic, payload FROM items ORDER BY id").fetchall()


def test_a_really_full_disk_under_the_spool(tmp_path, caplog):
    with small_disk(tmp_path / "disk", "1m") as disk:
        sink = MqttSink(MqttConfig(host="127.0.0.1", port=1, spool_dir=disk / "spool"))
        filler = []
        check_a_full_spool_disk(
            sink, lambda: filler.append(fill(disk)), lambda: filler[0].unlink(), caplog
        )
