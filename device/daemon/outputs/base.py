"""What every output of the daemon is: a `Sink`, and how it tells the operator what is wrong.

Building a sink only opens and checks what it needs (directories, files, the spool) and raises
`EdgeferError` with one line when it cannot; `start()` starts its threads and connections. The
daemon relies on that split: on SIGHUP it builds the new sinks while the old ones still run, and
keeps the old ones if building fails.

From then on nothing a sink meets (a full disk, a broker that refuses it, an endpoint that
fails) may take the camera loop down: `send` and `close` never raise. What a sink cannot keep it
drops and counts (`dropped()`), and each of the things it depends on is a `Health` that logs
one line when it goes wrong and one when it is right again, never one per event.
"""

from __future__ import annotations

import errno
import logging
import os
import sqlite3
import threading
from abc import ABC, abstractmethod
from pathlib import Path

log = logging.getLogger("edgefer.daemon")


def one_line(exc: BaseException) -> str:
    """The cause of `exc` as a log line or /status shows it: an OSError's strerror ("No space
    left on device", without the errno and file name the log line gives already), otherwise
    its message; never more than one line."""
    text = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return " ".join(text.split()) or type(exc).__name__


def state_of(exc: BaseException) -> str:
    """ "disk_full" for a full disk (ENOSPC from a file, SQLITE_FULL from the spool): the one
    failure an operator fixes differently from the rest, which are "failing"."""
    full = (isinstance(exc, OSError) and exc.errno == errno.ENOSPC) or (
        getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL
    )
    return "disk_full" if full else "failing"


def private_opener(path: str, flags: int) -> int:
    """An `open()` opener that creates files readable by their owner only (0600): events say
    who was seen, and when."""
    return os.open(path, flags, 0o600)


def private_dir(path: Path) -> None:
    """Create the directory `path` (and its parents) if missing; `path` itself 0700."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)


class Health:
    """One thing a sink depends on (its file, its spool, its broker, its endpoint) and how it
    is: a state, and while it is wrong the cause. A change of state is logged once; the same
    failure again (the next event, the next reconnect attempt) only updates the cause."""

    def __init__(self, what: str, state: str):
        self.what = what  # how the log names it: "jsonl /var/log/edgefer/events.jsonl"
        self.state, self.error = state, None
        self.lock = threading.Lock()

    @property
    def failing(self) -> bool:
        return self.error is not None

    def snapshot(self) -> tuple[str, str | None]:
        with self.lock:
            return self.state, self.error

    def fail(self, state: str, error: str, consequence: str) -> None:
        """Gone wrong with `error`; a warning "<what>: <error>; <consequence>" if it was not
        already in `state`."""
        if self._change(state, error):
            log.warning("%s: %s; %s", self.what, error, consequence)

    def recover(self, state: str, news: str) -> None:
        """Right (again): "<what>: <news>" if it was not already in `state`."""
        if self._change(state, None):
            log.info("%s: %s", self.what, news)

    def _change(self, state: str, error: str | None) -> bool:
        with self.lock:
            changed = state != self.state
            self.state, self.error = state, error
            return changed


class Sink(ABC):
    """An output of the daemon. Subclasses write or queue an event in `_store` and release
    their resources in `_close`; this class keeps both from raising, and counts and reports
    what `_store` could not keep."""

    name: str  # "jsonl", "mqtt", "webhook": how /metrics and /status name the sink

    def __init__(self, what: str):
        self.writing = Health(what, "ok")  # the path from send() to the sink's file or spool
        self.unstored = 0  # events send() could not keep

    def start(self) -> None:
        """Start the sink's threads and connections (a sink without any has nothing to do)."""

    def succeed(self, previous: Sink) -> None:
        """Take over what `previous`, the sink this one replaces on a reload, learnt from the
        events so far (a sink that keeps no such state has nothing to take)."""

    def send(self, event: dict) -> None:
        """Hand `event` over. Never raises, and never waits on the network: an event that
        cannot be kept is dropped and counted, and the cause is logged when it first occurs."""
        try:
            trouble = self._store(event)
        except Exception as exc:  # noqa: BLE001 - an output must not stop the camera loop
            self.unstored += 1
            trouble = exc
        if trouble is not None:
            self.writing.fail(
                state_of(trouble), one_line(trouble), "events are dropped and counted meanwhile"
            )
        elif self.writing.failing:
            self.writing.recover("ok", f"writing again; {self.dropped()} events dropped so far")

    @abstractmethod
    def _store(self, event: dict) -> BaseException | None:
        """Write or queue `event`. Raise if it is lost; return the error it was kept despite
        (by dropping older events to make room), so that it is reported too; else None."""

    def close(self) -> None:
        """Flush what can be flushed briefly and release everything. Never raises."""
        try:
            self._close()
        except Exception as exc:  # noqa: BLE001 - shutdown goes on to the other sinks
            log.warning("%s: closing: %s", self.writing.what, one_line(exc))

    @abstractmethod
    def _close(self) -> None:
        """Stop the threads and release the resources; may raise."""

    def depth(self) -> int:
        """Events waiting to go out."""
        return 0

    def dropped(self) -> int:
        """Events dropped since this sink was built."""
        return self.unstored

    def status(self) -> dict:
        """For /status: {"state", "error" (the cause, one line, or None), "depth", "dropped"}."""
        state, error = self._health().snapshot()
        return {"state": state, "error": error, "depth": self.depth(), "dropped": self.dropped()}

    def _health(self) -> Health:
        """The Health /status shows: the one that is wrong, or the most telling one."""
        return self.writing
