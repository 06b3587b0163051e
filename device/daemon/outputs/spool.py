"""A durable, bounded FIFO of events on disk, for outputs whose other end can be away.

SQLite (in the standard library, and transactional): each append is committed before `append`
returns, so a daemon killed with SIGKILL loses nothing it spooled, and the events go out in order
once the other end is back. Past `max_bytes`, and when the disk is full, the oldest events are
dropped and counted (the count survives restarts too), so a broker that stays down for weeks
cannot fill the Pi's SD card, and a card that is full anyway costs events, not the daemon.

A spool that cannot even be opened for lack of room (a full SD card at start: SQLite cannot
make its -wal and -shm) is kept in memory until the daemon restarts, and says so, rather than
stopping the daemon: under `Restart=on-failure` that would be a crash loop until a person came.

The spool is private (0600, as SQLite then makes its -wal and -shm files too; its directory
0700 if created here), and one found corrupt at start is moved aside, not fatal: it is a cache
of undelivered events, and a daemon that will not start until a person deletes it helps nobody.
"""

from __future__ import annotations

import contextlib
import errno
import sqlite3
import threading
import time
from pathlib import Path

from edgefer.device.daemon.outputs.base import log, one_line, private_dir, private_opener
from edgefer.errors import EdgeferError

CORRUPT = (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)


class _Corrupt(sqlite3.DatabaseError):
    """The spool file is not a sound SQLite database; the message says what is wrong, and
    `aside` where it went."""

    aside: Path


def _prepare(db: sqlite3.Connection) -> None:
    """Set the spool's journal up and check it (_Corrupt if it is), then its tables."""
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        problem = db.execute("PRAGMA quick_check(1)").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        if exc.sqlite_errorcode in CORRUPT:
            raise _Corrupt(one_line(exc)) from None
        raise
    if problem != "ok":
        raise _Corrupt(problem)
    db.execute(
        "CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY AUTOINCREMENT,"
        " topic TEXT NOT NULL, payload BLOB NOT NULL)"
    )
    db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER)")
    db.execute("INSERT OR IGNORE INTO meta VALUES ('dropped', 0)")


def _no_room(exc: BaseException) -> bool:
    """A full disk, as the OS or SQLite says it (SQLite says "disk I/O error" when it cannot
    size its shared-memory file)."""
    if isinstance(exc, OSError):
        return exc.errno == errno.ENOSPC
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in (sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR)


class Spool:
    def __init__(self, path: Path, max_bytes: int):
        self.path, self.max_bytes = path, max_bytes
        self.lock = threading.Lock()
        self.evicted = 0  # events dropped by this run (this object) for the bound or for room
        self.in_memory: str | None = None  # why the spool is not on disk, if it is not
        try:
            private_dir(path.parent)
            self.db = self._open_or_replace()
        except (OSError, sqlite3.Error) as exc:
            if not _no_room(exc):
                raise EdgeferError(f"{path}: cannot open the spool ({one_line(exc)})") from None
            self.in_memory = f"no room to open it on disk ({one_line(exc)})"  # the sink says it
            self.db = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
            _prepare(self.db)
        self.recount()

    def _open_or_replace(self) -> sqlite3.Connection:
        """The spool, or a new empty one in place of a corrupt one."""
        try:
            return self._open()
        except _Corrupt as exc:
            log.warning(
                "%s: the spool is corrupt (%s): moved aside to %s, starting an empty one",
                self.path,
                exc,
                exc.aside.name,
            )
            return self._open()

    def _open(self) -> sqlite3.Connection:
        open(self.path, "ab", opener=private_opener).close()  # created 0600
        db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        try:
            _prepare(db)
        except BaseException as exc:
            try:
                if isinstance(exc, _Corrupt):  # first: closing deletes the spool's -wal
                    exc.aside = self._move_aside()
            finally:
                db.close()
            raise
        return db

    def _move_aside(self) -> Path:
        """Rename the spool and its -wal and -shm to <name>.corrupt-<time>[-wal|-shm] (kept for
        a person to look at): a -wal left beside the new spool would be replayed into it."""
        aside = self.path.with_name(f"{self.path.name}.corrupt-{time.strftime('%Y%m%dT%H%M%S')}")
        for suffix in ("", "-wal", "-shm"):
            part = Path(f"{self.path}{suffix}")
            if part.exists():
                part.rename(f"{aside}{suffix}")
        return aside

    def recount(self) -> None:
        """Read the spool's size and length from disk; from then on they are kept up to date
        without a scan per event. Again when the sink starts: on SIGHUP the old sink goes on
        delivering from this file for a while after the new one is built."""
        with self.lock:
            self.size, self.count = self.db.execute(
                "SELECT coalesce(sum(length(payload)), 0), count(*) FROM items"
            ).fetchone()

    def append(self, topic: str, payload: bytes) -> sqlite3.Error | None:
        """Store an event, committed when this returns. On a full disk the oldest events go,
        one at a time, until it fits: then the disk-full error is returned, for the sink to
        report; raised if no room can be made (the event is lost)."""
        with self.lock:
            full = None
            while True:
                try:
                    self._insert(topic, payload)
                    return full
                except sqlite3.OperationalError as exc:
                    if exc.sqlite_errorcode != sqlite3.SQLITE_FULL or not self._evict_oldest():
                        raise
                    full = exc

    def _insert(self, topic: str, payload: bytes) -> None:
        """One transaction: the event in, then the oldest out while past `max_bytes` (the new
        event too if it alone is larger). The counters change only once it is committed."""
        with self._transaction():
            self.db.execute("INSERT INTO items (topic, payload) VALUES (?, ?)", (topic, payload))
            size, evicted = self.size + len(payload), 0
            while size > self.max_bytes:
                size -= self._delete_oldest()
                evicted += 1
            self._count_dropped(evicted)
        self.size, self.count = size, self.count + 1 - evicted
        self.evicted += evicted

    def _evict_oldest(self) -> bool:
        """Make room on a full disk: the oldest event out, in a transaction of its own (one
        that adds nothing can free pages). False if the spool is empty."""
        with self._transaction():
            length = self._delete_oldest()
            if length is None:
                return False
            self._count_dropped(1)
        self.size -= length
        self.count -= 1
        self.evicted += 1
        return True

    @contextlib.contextmanager
    def _transaction(self):
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
            self.db.execute("COMMIT")
        except BaseException:
            if self.db.in_transaction:  # SQLite may have rolled back already (a full disk)
                with contextlib.suppress(sqlite3.Error):
                    self.db.execute("ROLLBACK")
            raise

    def _count_dropped(self, n: int) -> None:
        if n:
            self.db.execute("UPDATE meta SET value = value + ? WHERE key = 'dropped'", (n,))

    def _delete_oldest(self) -> int | None:
        """Delete the oldest event; its payload's length, or None if there is none."""
        row = self.db.execute(
            "SELECT id, length(payload) FROM items ORDER BY id LIMIT 1"
        ).fetchone()
        if row is None:
            return None
        self.db.execute("DELETE FROM items WHERE id = ?", (row[0],))
        return row[1]

    def peek(self) -> tuple[int, str, bytes] | None:
        """The oldest event, left in the spool until `remove`."""
        with self.lock:
            return self.db.execute(
                "SELECT id, topic, payload FROM items ORDER BY id LIMIT 1"
            ).fetchone()

    def remove(self, item_id: int) -> None:
        """Remove a delivered event (gone already if it was dropped meanwhile)."""
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
        """Events dropped since the spool was created: the count is kept in the spool, and
        survives restarts (`evicted` counts this run's, for the daemon's metrics)."""
        with self.lock:
            return self.db.execute("SELECT value FROM meta WHERE key = 'dropped'").fetchone()[0]

    def close(self) -> None:
        with self.lock:
            self.db.close()
