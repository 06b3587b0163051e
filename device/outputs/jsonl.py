"""Events as JSON Lines on disk, rotated by size and count.

Rotation is the standard library's `RotatingFileHandler` (a well-kept implementation that renames
events.jsonl -> events.jsonl.1 -> ... and drops the oldest), on a logger of its own that never
propagates to the application's logging.
"""

from __future__ import annotations

import itertools
import json
import logging
from logging.handlers import RotatingFileHandler

from edgefer.device.daemon_config import JsonlConfig
from edgefer.errors import EdgeferError

_ids = itertools.count()


class JsonlSink:
    def __init__(self, config: JsonlConfig):
        try:
            config.path.parent.mkdir(parents=True, exist_ok=True)
            self.handler = RotatingFileHandler(
                config.path, maxBytes=config.max_bytes, backupCount=config.backups, encoding="utf-8"
            )
        except OSError as exc:
            raise EdgeferError(
                f"{config.path}: cannot write the event log ({exc.strerror})"
            ) from None
        self.handler.setFormatter(logging.Formatter("%(message)s"))
        self.logger = logging.getLogger(f"edgefer.events.jsonl.{next(_ids)}")
        self.logger.propagate = False
        self.logger.setLevel(logging.INFO)
        self.logger.addHandler(self.handler)

    def send(self, event: dict) -> None:
        self.logger.info(json.dumps(event, separators=(",", ":")))

    def close(self) -> None:
        self.logger.removeHandler(self.handler)
        self.handler.close()
