"""Events as JSON Lines on disk, rotated by size and count, synced every second.

Rotation is the standard library's `RotatingFileHandler` (a well-kept implementation that renames
events.jsonl -> events.jsonl.1 -> ... and drops the oldest), used directly rather than through a
logger, and adapted for a daemon nobody watches: see `_Handler`.

Each line is written when its event happens; a thread fsyncs the file once a second if it
changed, so a power cut loses at most the last second of events (measured on the booted test
machine, tests/field/test_power_cut.py). Unsynced, the kernel's writeback could lose the last
30 s; an fsync per event would cost the camera loop a flash write each time.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import stat
import threading
from logging.handlers import RotatingFileHandler

from edgefer.device.daemon.config import JsonlConfig
from edgefer.device.daemon.outputs.base import Sink, one_line, private_dir, private_opener, state_of
from edgefer.errors import EdgeferError

SYNC_SECONDS = 1.0  # the most of the event log a power cut can take
TAIL_BYTES = 65536  # where the last whole line of a torn file is looked for


class _Handler(RotatingFileHandler):
    """`RotatingFileHandler` with its files private (0600, rotations included), a failed write
    raised to the sink (the standard library prints a 20-line "Logging error" block to stderr
    per record instead) with the failed line taken back (a full disk can let part of it
    through), and a line torn by a power cut cut off before the next one is appended: every
    line in the file is a whole event, as a consumer (jq, a tail -F pipeline) expects."""

    _whole: int | None = None  # the file's length up to the end of its last whole line

    def _open(self):
        self._whole = None
        stream = open(  # noqa: SIM115 - the handler owns the stream
            self.baseFilename, self.mode, encoding=self.encoding, opener=private_opener
        )
        self._whole = _cut_torn_tail(stream)
        return stream

    def emit(self, record: logging.LogRecord) -> None:
        super().emit(record)  # a failure goes through handleError, which raises
        if self._whole is not None and self.stream is not None:
            self._whole = os.fstat(self.stream.fileno()).st_size

    def handleError(self, record: logging.LogRecord) -> None:
        """Called inside the handler's `except`: drop the stream, cut off what part of the
        line reached the file, then raise what failed."""
        self._discard_stream()
        if self._whole is not None:
            with contextlib.suppress(OSError):
                if os.path.getsize(self.baseFilename) > self._whole:
                    os.truncate(self.baseFilename, self._whole)
        raise  # noqa: PLE0704 - re-raises the exception being handled by emit()

    def _discard_stream(self) -> None:
        """Close the stream without writing its buffer: that holds the failed line, which the
        next successful write would otherwise carry out after it had been counted as dropped.
        The next record opens the file again."""
        stream, self.stream = self.stream, None
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()


def _cut_torn_tail(stream) -> int | None:
    """Cut the regular file open as `stream` back to the end of its last whole line (a power
    cut can leave part of one), and return that length; None for a pipe or a device. A power
    cut can also leave NUL bytes where the unsynced end of the file was: the file's new length
    reached the disk, its data did not (seen on ext4 on the booted test machine). Those come
    after the last sync, so the file is cut back to the last whole line before the first NUL."""
    info = os.fstat(stream.fileno())
    if not stat.S_ISREG(info.st_mode):
        return None
    start = max(0, info.st_size - TAIL_BYTES)
    with open(stream.name, "rb") as f:
        f.seek(start)
        tail = f.read()
    nul = tail.find(b"\0")
    newline = tail.rfind(b"\n", 0, len(tail) if nul < 0 else nul)
    if newline < 0 and start > 0:
        return info.st_size  # a line longer than TAIL_BYTES: never one of ours, left alone
    whole = start + newline + 1
    if whole < info.st_size:
        os.ftruncate(stream.fileno(), whole)
    return whole


class JsonlSink(Sink):
    name = "jsonl"

    def __init__(self, config: JsonlConfig):
        super().__init__(f"jsonl {config.path}")
        try:
            private_dir(config.path.parent)
            self.handler = _Handler(
                config.path, maxBytes=config.max_bytes, backupCount=config.backups, encoding="utf-8"
            )
        except OSError as exc:
            raise EdgeferError(
                f"{config.path}: cannot write the event log ({one_line(exc)})"
            ) from None
        self._written = threading.Event()  # since the last sync
        self._closing = threading.Event()
        self._syncer = threading.Thread(target=self._sync_loop, name="edgefer-jsonl", daemon=True)

    def start(self) -> None:
        self._syncer.start()

    def _store(self, event: dict) -> None:
        line = json.dumps(event, separators=(",", ":"))
        self.handler.handle(logging.makeLogRecord({"msg": line}))
        self._written.set()

    def _sync_loop(self) -> None:
        while not self._closing.wait(SYNC_SECONDS):
            self._sync()

    def _sync(self) -> None:
        """fsync what was written since the last sync. Under the handler's lock, which its
        writes and rotations hold: the stream is not swapped or closed under the fsync."""
        if not self._written.is_set():
            return
        with self.handler.lock:
            self._written.clear()
            stream = self.handler.stream
            try:
                # A pipe or a terminal has nothing to sync (fsync says EINVAL).
                if stream is not None and stat.S_ISREG(os.fstat(stream.fileno()).st_mode):
                    os.fsync(stream.fileno())
            except (OSError, ValueError) as exc:
                self.writing.fail(
                    state_of(exc), one_line(exc), "the newest events may not survive a power cut"
                )

    def _close(self) -> None:
        self._closing.set()
        if self._syncer.is_alive():
            self._syncer.join()
        self._sync()
        self.handler.close()
