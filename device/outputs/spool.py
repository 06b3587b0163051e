"""A durable, bounded FIFO of events on disk, for outputs whose other end can be away.

SQLite (in the standard library, and transactional): each append is committed before `append`
returns, so a daemon killed with SIGKILL loses nothing it spooled, and the events go out in order
once the other end is back. Past `max_bytes` the oldest events are dropped and counted (the count
survives restarts too), so a broker that stays down for weeks cannot fill the Pi's SD card.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from edgefer.errors import EdgeferError


class Spool:
    def __init__(self, path: Path, max_bytes: int):
        self.max_bytes = max_bytes
        self.lock = threading.Lock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.execute(
                "CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY AUTOINCREMENT,"
                " topic TEXT NOT NULL, payload BLOB NOT NULL)"
            )
            self.db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER)")
            self.db.execute("INSERT OR IGNORE INTO meta VALUES ('dropped', 0)")
            self.size = self._bytes()  # kept up to date from here on: no scan per event
            self.count = self.db.execute("SELECT count(*) FROM items").fetchone()[0]
        except sqlite3.Error as exc:
            raise EdgeferError(f"{path}: cannot open the spool ({exc})") from None

    def append(self, topic: str, payload: bytes) -> None:
        with self.lock:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.execute("INSERT INTO items (topic, payload) VALUES (?, ?)", (topic, payload))
            self.size += len(payload)
            self.count += 1
            dropped = 0
            while self.size > self.max_bytes:
                row = self.db.execute(
                    "SELECT id, length(payload) FROM items ORDER BY id LIMIT 1"
                ).fetchone()
                self.db.execute("DELETE FROM items WHERE id = ?", (row[0],))
                self.size -= row[1]
                self.count -= 1
                dropped += 1
            if dropped:
                self.db.execute(
                    "UPDATE meta SET value = value + ? WHERE key = 'dropped'", (dropped,)
                )
            self.db.execute("COMMIT")

    def peek(self) -> tuple[int, str, bytes] | None:
        """The oldest event, left in the spool until `remove`."""
        with self.lock:
            return self.db.execute(
                "SELECT id, topic, payload FROM items ORDER BY id LIMIT 1"
            ).fetchone()

    def remove(self, item_id: int) -> None:
        with self.lock:
            row = self.db.execute(
                "SELECT length(payload) FROM items WHERE id = ?", (item_id,)
            ).fetchone()
            if row:
                self.db.execute("DELETE FROM items WHERE id = ?", (item_id,))
                self.size -= row[0]
                self.count -= 1

    def depth(self) -> int:
        return self.count

    def dropped(self) -> int:
        with self.lock:
            return self.db.execute("SELECT value FROM meta WHERE key = 'dropped'").fetchone()[0]

    def _bytes(self) -> int:
        return self.db.execute("SELECT coalesce(sum(length(payload)), 0) FROM items").fetchone()[0]

    def close(self) -> None:
        with self.lock:
            self.db.close()
