"""A daemon running in a thread, and reading what it says: its event log and its HTTP server."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request

from edgefer.device.daemon.loop import Daemon


def mqtt_overrides(broker, tmp_path) -> list[str]:
    """The --set overrides that send a daemon's events to the test broker."""
    return [
        "outputs.mqtt.host=127.0.0.1",
        f"outputs.mqtt.port={broker.port}",
        f"outputs.mqtt.spool_dir={tmp_path / 'spool'}",
    ]


class RunningDaemon:
    """A Daemon whose loop runs in a thread, as `edgefer daemon` runs it in its main thread."""

    def __init__(self, service: Daemon):
        self.service = service
        self.thread = threading.Thread(target=service.run, name="test-daemon")
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.service.server.port}"

    def stop(self) -> None:
        self.service.stop_requested.set()
        self.thread.join(15)
        assert not self.thread.is_alive(), "the daemon did not stop within 15 s of being asked"


def events_of(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def get(url: str) -> tuple[int, str]:
    """(status code, body text) of a GET, error statuses included."""
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
