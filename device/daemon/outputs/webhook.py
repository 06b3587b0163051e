"""Events POSTed as JSON to an HTTP(S) endpoint, with retry and exponential backoff.

A sender thread works through an in-memory queue, so a slow or failing endpoint never slows the
camera loop. A POST that still fails after `retries` retries is dropped and counted, as are the
oldest queued events when the queue is full (the webhook is the best-effort output; MQTT's spool
is the durable one). Why events are dropped is logged when it starts and when it ends, with the
URL redacted: webhook URLs carry their secret in the path or query.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import queue
import threading
import urllib.error
import urllib.request

from edgefer.device.daemon.config import WebhookConfig, redact_url
from edgefer.device.daemon.outputs.base import Health, Sink, one_line

QUEUE_SIZE = 1000


def _cause(exc: Exception) -> str:
    """Why a POST failed, on one line: "HTTP 503 Service Unavailable", "Connection refused",
    "timed out"."""
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError) and isinstance(exc.reason, Exception):
        return one_line(exc.reason)
    if isinstance(exc, ValueError):  # http.client.InvalidURL quotes the URL, secret and all
        return "invalid URL"
    return one_line(exc)


class WebhookSink(Sink):
    name = "webhook"

    def __init__(self, config: WebhookConfig):
        super().__init__(f"webhook {redact_url(config.url)}")
        self.config = config
        self.delivery = Health(self.writing.what, "ok")
        self.queue: queue.Queue[bytes] = queue.Queue(QUEUE_SIZE)
        self.delivered = self.evicted = self.failed = 0
        self.stopping = threading.Event()
        self.flush_seconds = 5.0  # how long close() waits for the queue to empty
        self.sender = threading.Thread(target=self._run, name="edgefer-webhook", daemon=True)

    def start(self) -> None:
        self.sender.start()

    def _store(self, event: dict) -> None:
        body = json.dumps(event).encode()
        while True:
            try:
                self.queue.put_nowait(body)
                return
            except queue.Full:
                self._evict_oldest()

    def _evict_oldest(self) -> None:
        with contextlib.suppress(queue.Empty):
            self.queue.get_nowait()
            self.evicted += 1
        if not self.delivery.failing:  # a failing endpoint is the cause, and said already
            self.delivery.fail(
                "failing",
                f"queue full ({QUEUE_SIZE} events): the endpoint is slower than the events",
                "the oldest are dropped and counted",
            )

    def _run(self) -> None:
        while not (self.stopping.is_set() and self.queue.empty()):
            try:
                body = self.queue.get(timeout=0.2)
            except queue.Empty:
                continue
            cause = self._post(body)
            if cause is None:
                self.delivered += 1
                if self.queue.empty():  # caught up: not before, or an overload would flap
                    self.delivery.recover(
                        "ok", f"delivering again; {self.dropped()} events dropped so far"
                    )
            else:
                self.failed += 1
                self.delivery.fail(
                    "failing",
                    cause,
                    f"events are dropped after {self.config.retries} retries, and counted",
                )

    def _post(self, body: bytes) -> str | None:
        """POST with retries: None once delivered, else why the last try failed."""
        cause = ""
        for attempt in range(self.config.retries + 1):
            # Backoff 0.5, 1, 2, ... s (at most 30) between tries; while stopping, no more waits.
            if attempt and self.stopping.wait(min(30.0, 0.5 * 2 ** (attempt - 1))):
                return cause
            request = urllib.request.Request(
                self.config.url,
                data=body,
                method="POST",
                headers={"Content-Type": "application/json"},
            )
            try:
                with urllib.request.urlopen(request, timeout=self.config.timeout) as response:
                    if 200 <= response.status < 300:
                        return None
                    cause = f"HTTP {response.status} {response.reason}"
            except (OSError, ValueError, http.client.HTTPException) as exc:
                cause = _cause(exc)
        return cause

    def dropped(self) -> int:
        return self.unstored + self.evicted + self.failed

    def depth(self) -> int:
        return self.queue.qsize()

    def _health(self) -> Health:
        return self.writing if self.writing.failing else self.delivery

    def _close(self) -> None:
        self.stopping.set()
        if self.sender.is_alive():
            self.sender.join(self.flush_seconds)
