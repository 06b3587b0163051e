"""The spool as found on disk: corrupt, truncated, or new (and then private)."""

import logging
import os
import stat
from pathlib import Path

import pytest

from edgefer.device.daemon.outputs.spool import Spool


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def parts(path: Path) -> list[Path]:
    return [Path(f"{path}{suffix}") for suffix in ("", "-wal", "-shm")]


def check_moved_aside(path: Path, db: bytes, wal: bytes, caplog) -> Path:
    """A corrupt spool and its -wal are moved aside as they were (with its -shm, an index that
    SQLite rebuilds), and logged; an empty spool works in their place."""
    with caplog.at_level(logging.WARNING, logger="edgefer.daemon"):
        spool = Spool(path, 1_000_000)
    assert spool.depth() == 0
    spool.append("t", b"new")
    assert spool.peek()[1:] == ("t", b"new")
    spool.close()
    [aside] = path.parent.glob(f"{path.name}.corrupt-????????T??????")
    assert aside.read_bytes() == db and parts(aside)[1].read_bytes() == wal
    [message] = [r.getMessage() for r in caplog.records if r.name == "edgefer.daemon"]
    assert message.startswith(f"{path}: the spool is corrupt (")
    assert message.endswith(f"): moved aside to {aside.name}, starting an empty one")
    return aside


def test_a_spool_of_garbage_is_moved_aside_with_its_wal_and_shm(tmp_path, caplog):
    path = tmp_path / "mqtt.sqlite"
    contents = [os.urandom(8192) for _ in parts(path)]
    for part, data in zip(parts(path), contents):
        part.write_bytes(data)
    aside = check_moved_aside(path, contents[0], contents[1], caplog)
    assert parts(aside)[2].exists()


def truncate(path: Path, keep: float) -> None:
    os.truncate(path, int(path.stat().st_size * keep))


def scribble(path: Path) -> None:
    """Garbage over a page in the middle, as a bad SD card block would leave it."""
    with open(path, "r+b") as f:
        f.seek(path.stat().st_size // 2 // 4096 * 4096)
        f.write(b"\xa5" * 4096)


@pytest.mark.parametrize(
    "damage",
    [lambda p: truncate(p, 0.5), lambda p: truncate(p, 0.02), scribble],
    ids=["truncated to half", "truncated to 2%", "a page overwritten"],
)
def test_a_damaged_spool_is_moved_aside(tmp_path, caplog, damage):
    path = tmp_path / "mqtt.sqlite"
    spool = Spool(path, 10_000_000)
    for i in range(2000):
        spool.append("edgefer/events/face_appeared", b"x" * 200 + str(i).encode())
    spool.close()
    damage(path)
    check_moved_aside(path, path.read_bytes(), b"", caplog)  # opening it made an empty -wal


def test_a_new_spool_is_private(tmp_path):
    old = os.umask(0o022)
    try:
        spool = Spool(tmp_path / "spool" / "mqtt.sqlite", 1_000_000)
        spool.append("t", b"event")
        assert mode(tmp_path / "spool") == 0o700
        assert [mode(p) for p in parts(spool.path)] == [0o600] * 3
        spool.close()
    finally:
        os.umask(old)


@pytest.mark.parametrize("existing", [False, True])
def test_a_spool_on_a_full_disk_at_start_is_kept_in_memory_not_fatal(tmp_path, existing):
    """A full SD card at start (a new spool, or an old one whose -wal/-shm cannot be made) must
    not stop the daemon: under Restart=on-failure that is a crash loop until a person comes."""
    from edgefer.device.daemon.config import MqttConfig
    from edgefer.device.daemon.outputs.mqtt import MqttSink
    from tests.device.disks import fill, small_disk

    with small_disk(tmp_path / "disk") as disk:
        if existing:
            Spool(disk / "mqtt.sqlite", 1_000_000).close()
            (disk / "mqtt.sqlite-shm").unlink(missing_ok=True)
        fill(disk)
        sink = MqttSink(MqttConfig(host="127.0.0.1", port=1, spool_dir=disk))
        sink.send({"camera": "default", "type": "summary", "n": 1})
        status = sink.status()
        sink.close()
    assert sink.spool.in_memory and status["state"] == "spool_in_memory"
    assert "no room to open it on disk" in status["error"] and status["depth"] == 1
