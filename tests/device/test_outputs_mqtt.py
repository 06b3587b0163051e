import os
import subprocess
import sys
import textwrap
import time

import pytest

from edgefer.device.daemon_config import MqttConfig
from edgefer.device.outputs.mqtt import MqttSink
from edgefer.device.outputs.spool import Spool
from tests.device.mqtt_broker import Broker, Subscriber
from tests.polling import wait_for


def event(seq):
    return {"id": f"id-{seq}", "seq": seq, "type": "face_appeared"}


@pytest.fixture
def broker(tmp_path):
    b = Broker(tmp_path).start()
    yield b
    if b.proc.poll() is None:
        b.kill()


def config(broker, tmp_path, **kw):
    return MqttConfig(host="127.0.0.1", port=broker.port, spool_dir=tmp_path / "spool", **kw)


def test_events_arrive_in_order_with_online_and_offline_status(broker, tmp_path):
    sub = Subscriber(broker.port)
    sink = MqttSink(config(broker, tmp_path))
    for seq in range(1, 51):
        sink.send(event(seq))
    assert wait_for(lambda: len(sub.events()) == 50)
    sink.close()
    assert [e["seq"] for e in sub.events()] == list(range(1, 51))
    status = [(p, r) for t, p, r in sub.messages if t == "edgefer/available"]
    assert status[0][0] == b"online" and status[-1][0] == b"offline"
    sub.stop()
    late = Subscriber(broker.port)  # a newcomer sees the retained status
    assert wait_for(lambda: any(t == "edgefer/available" and r for t, _, r in late.messages))
    late.stop()


def test_a_broker_outage_delays_events_but_loses_none(broker, tmp_path):
    first = Subscriber(broker.port)
    sink = MqttSink(config(broker, tmp_path))
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


def test_events_spooled_by_a_killed_daemon_arrive_after_its_restart(broker, tmp_path):
    broker.kill()
    code = textwrap.dedent(f"""
        import os, signal
        from pathlib import Path
        from edgefer.device.daemon_config import MqttConfig
        from edgefer.device.outputs.mqtt import MqttSink
        sink = MqttSink(MqttConfig(host="127.0.0.1", port={broker.port},
                                   spool_dir=Path({str(tmp_path / "spool")!r})))
        for seq in range(1, 31):
            sink.send({{"id": f"id-{{seq}}", "seq": seq, "type": "face_appeared"}})
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run([sys.executable, "-c", code], check=False, timeout=60)
    assert proc.returncode == -9
    broker.start()
    sub = Subscriber(broker.port)
    sink = MqttSink(config(broker, tmp_path))  # the restarted daemon, same spool
    assert wait_for(lambda: len(sub.events()) == 30, 30)
    sink.close()
    assert [e["seq"] for e in sub.events()] == list(range(1, 31))
    sub.stop()


def test_the_spool_is_bounded_dropping_the_oldest_and_counting_them(tmp_path):
    spool = Spool(tmp_path / "s.sqlite", max_bytes=1024)
    for i in range(100):
        spool.append("t", b"x" * 100 + str(i).encode())
    assert spool.depth() == 10 and spool.dropped() == 90  # 10 x 102 bytes fit in 1024
    assert spool.peek()[2].endswith(b"90")  # the oldest left
    spool.close()
    again = Spool(tmp_path / "s.sqlite", max_bytes=1024)  # durable, counter included
    assert again.depth() == 10 and again.dropped() == 90
    again.close()


def test_no_broker_no_problem_for_the_caller(tmp_path):
    sink = MqttSink(MqttConfig(host="127.0.0.1", port=1, spool_dir=tmp_path / "spool"))
    start = time.monotonic()
    for seq in range(100):
        sink.send(event(seq))
    assert time.monotonic() - start < 5 and sink.depth() == 100
    sink.close(flush_seconds=0.1)
    assert os.path.exists(tmp_path / "spool" / "mqtt.sqlite")
