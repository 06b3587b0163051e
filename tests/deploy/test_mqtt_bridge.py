"""docs/fleet/mosquitto-bridge.conf, the device-side bridge FLEET.md documents, run by a real
Mosquitto: what the daemon publishes locally reaches the central broker under the device's
name. Only the addresses change for the test (and TLS goes: no certificates here)."""

from __future__ import annotations

from pathlib import Path

from paho.mqtt import publish

from tests.device.mqtt_broker import Broker, Subscriber
from tests.polling import wait_for

BRIDGE = Path(__file__).resolve().parents[2] / "docs/fleet/mosquitto-bridge.conf"


def arrived(subscriber: Subscriber, topic: str) -> list[bytes]:
    with subscriber.lock:
        return [payload for t, payload, _ in subscriber.messages if t == topic]


def test_the_documented_bridge_forwards_device_events_to_the_central_broker(tmp_path):
    (tmp_path / "central").mkdir()
    (tmp_path / "device").mkdir()
    (tmp_path / "device").chmod(0o777)  # run as root, mosquitto persists as user mosquitto
    central = Broker(tmp_path / "central").start()
    device = Broker(tmp_path / "device")
    lines = []
    for line in BRIDGE.read_text().splitlines():
        if line.startswith("bridge_") and "file" in line.split()[0]:
            continue  # the TLS certificates
        line = line.replace("listener 1883 ", f"listener {device.port} ")
        line = line.replace("central.example.org:8883", f"127.0.0.1:{central.port}")
        line = line.replace("/var/lib/mosquitto/", f"{tmp_path / 'device'}/")
        lines.append(line)
    device.conf.write_text("\n".join(lines) + "\n")
    fleet = Subscriber(central.port, "fleet/#")
    device.start()
    try:
        assert wait_for(lambda: arrived(fleet, "fleet/kitchen/bridge") == [b"1"], 15)  # link up
        publish.single("edgefer/door/events/face_appeared", b'{"seq":1}', qos=1, port=device.port)
        topic = "fleet/kitchen/edgefer/door/events/face_appeared"
        assert wait_for(lambda: arrived(fleet, topic) == [b'{"seq":1}'], 15)
    finally:
        fleet.stop()
        device.kill()
        central.kill()
