"""Waiting for something a background thread or process does."""

from __future__ import annotations

import time


def wait_for(predicate, seconds: float = 15.0, every: float = 0.05) -> bool:
    """True as soon as `predicate()` is, False if it is still false after `seconds`."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(every)
    return bool(predicate())
