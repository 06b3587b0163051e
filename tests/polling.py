"""Waiting for something a background thread or process does."""

from __future__ import annotations

import socket
import time


def wait_for(predicate, seconds: float = 15.0, every: float = 0.05) -> bool:
    """True as soon as `predicate()` is, False if it is still false after `seconds`."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(every)
    return bool(predicate())


def accepts(port: int) -> bool:
    """Whether something listens on 127.0.0.1:port (a server a fixture started is up)."""
    try:
        socket.create_connection(("127.0.0.1", port), 0.2).close()
        return True
    except OSError:
        return False
