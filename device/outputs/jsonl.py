"""Events as JSON Lines on disk, rotated by size and count.

Rotation is the standard library's `RotatingFileHandler` (a well-kept implementation that renames
events.jsonl -> events.jsonl.1 -> ... and drops the oldest), used directly rather than through a
logger, and adapted for a daemon nobody watches: see `_Handler`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import stat
from logging.handlers import RotatingFileHandler

from edgefer.device.daemon_config import JsonlConfig
from edgefer.device.outputs.base import Sink, one_line, private_dir, private_opener
from edgefer.errors import EdgeferError


class _Handler(RotatingFileHandler):
    """`RotatingFileHandler` with its files private (0600, rotations included), a failed write
    raised to the sink (the standard library prints a 20-line "Logging error" block to stderr
    per record instead) with the failed line discarded, and a line torn by a full disk or a
    power cut ended before the next one is appended (so that it spoils no other line)."""

    def _open(self):
        stream = open(  # noqa: SIM115 - the handler owns the stream
            self.baseFilename, self.mode, encoding=self.encoding, opener=private_opener
        )
        if _ends_inside_a_line(stream):
            stream.write("\n")
        return stream

    def handleError(self, record: logging.LogRecord) -> None:
        """Called inside the handler's `except`: drop the stream, then raise what failed."""
        self._discard_stream()
        raise  # noqa: PLE0704 - re-raises the exception being handled by emit()

    def _discard_stream(self) -> None:
        """Close the stream without writing its buffer: that holds the failed line, which the
        next successful write would otherwise carry out after it had been counted as dropped.
        The next record opens the file again."""
        stream, self.stream = self.stream, None
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()


def _ends_inside_a_line(stream) -> bool:
    """Whether the regular file open as `stream` is not empty and does not end with a newline."""
    info = os.fstat(stream.fileno())
    if not stat.S_ISREG(info.st_mode) or info.st_size == 0:
        return False
    with open(stream.name, "rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) != b"\n"


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

    def _store(self, event: dict) -> None:
        line = json.dumps(event, separators=(",", ":"))
        self.handler.handle(logging.makeLogRecord({"msg": line}))

    def _close(self) -> None:
        self.handler.close()
