"""The daemon tests' video, config and running daemon (test_daemon.py, test_status_page.py), and
the MQTT tests' broker."""

from __future__ import annotations

import signal

import pytest

from edgefer.device.daemon.loop import Daemon
from tests.device.daemons import RunningDaemon
from tests.device.mqtt_broker import Broker


@pytest.fixture(scope="session")
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


@pytest.fixture
def broker(tmp_path):
    """A real Mosquitto on a free 127.0.0.1 port, killed at the end (a test may kill it first)."""
    b = Broker(tmp_path).start()
    yield b
    if b.proc.poll() is None:
        b.kill()


@pytest.fixture
def run_daemon():
    """run_daemon(config, config_path=None) -> RunningDaemon; every one is stopped at the end."""
    started: list[RunningDaemon] = []

    def run(config, config_path=None) -> RunningDaemon:
        started.append(RunningDaemon(Daemon(config, config_path)))
        return started[-1]

    yield run
    for daemon in started:
        daemon.stop()


@pytest.fixture
def sighup_daemon(run_daemon):
    """sighup_daemon(config, path) -> RunningDaemon whose SIGHUP handler is installed, as
    `edgefer daemon` installs it; the test process's own handlers come back at the end."""
    handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}

    def start(config, path):
        daemon = run_daemon(config, path)
        daemon.service.install_signal_handlers()
        return daemon

    yield start
    for sig, handler in handlers.items():
        signal.signal(sig, handler)
