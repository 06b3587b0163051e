"""A real Mosquitto broker on a free 127.0.0.1 port, and a subscriber that records what arrives."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import threading
from pathlib import Path

import paho.mqtt.client as mqtt

from tests.polling import accepts, wait_for


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    """`anonymous=False`: a broker that refuses every client ("Not authorized")."""

    def __init__(self, workdir: Path, anonymous: bool = True):
        self.exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.port = free_port()
        self.conf = workdir / "mosquitto.conf"
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous {str(anonymous).lower()}\n"
            "persistence false\n"
        )
        self.proc = None

    def start(self) -> Broker:
        self.proc = subprocess.Popen(
            [self.exe, "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        if wait_for(lambda: accepts(self.port), 10):
            return self
        raise RuntimeError("mosquitto did not start")

    def pause(self) -> None:
        """SIGSTOP: connections stay open, nothing is answered (no PUBACK)."""
        self.proc.send_signal(signal.SIGSTOP)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()


class Subscriber:
    def __init__(self, port: int, topic: str = "edgefer/#"):
        self.messages: list[tuple[str, bytes, bool]] = []
        self.lock = threading.Lock()
        subscribed = threading.Event()
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        client.on_message = lambda c, u, m: self._add(m)
        client.on_subscribe = lambda *a: subscribed.set()
        client.connect("127.0.0.1", port)
        client.subscribe(topic, qos=1)
        client.loop_start()
        if not subscribed.wait(5):
            raise RuntimeError("no SUBACK")
        self.client = client

    def _add(self, message):
        with self.lock:
            self.messages.append((message.topic, message.payload, message.retain))

    def events(self) -> list[dict]:
        import json

        with self.lock:
            return [json.loads(p) for t, p, _ in self.messages if "/events/" in t]

    def stop(self):
        self.client.loop_stop()
        self.client.disconnect()
