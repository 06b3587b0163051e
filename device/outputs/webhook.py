"""Events POSTed as JSON to an HTTP(S) endpoint, with retry and exponential backoff.

A sender thread works through an in-memory queue, so a slow or failing endpoint never slows the
camera loop. A POST that still fails after `retries` retries is dropped and counted, as are the
oldest queued events when the queue is full (the webhook is the best-effort output; MQTT's spool
is the durable one).
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import urllib.error
import urllib.request

from edgefer.device.daemon_config import WebhookConfig

log = logging.getLogger("edgefer.daemon")
QUEUE_SIZE = 1000


class WebhookSink:
    def __init__(self, config: WebhookConfig):
        self.config = config
        self.queue: queue.Queue[dict] = queue.Queue(QUEUE_SIZE)
        self.delivered = self.dropped = 0
        self.stopping = threading.Event()
        self.sender = threading.Thread(target=self._run, name="edgefer-webhook", daemon=True)
        self.sender.start()

    def send(self, event: dict) -> None:
        while True:
            try:
                self.queue.put_nowait(event)
                return
            except queue.Full:
                try:
                    self.queue.get_nowait()  # the oldest goes
                    self.dropped += 1
                except queue.Empty:
                    pass

    def _run(self) -> None:
        while not (self.stopping.is_set() and self.queue.empty()):
            try:
                event = self.queue.get(timeout=0.2)
            except queue.Empty:
                continue
            if self._post(event):
                self.delivered += 1
            else:
                self.dropped += 1
                log.warning(
                    "webhook %s: event %s dropped after %d retries",
                    self.config.url,
                    event.get("id"),
                    self.config.retries,
                )

    def _post(self, event: dict) -> bool:
        body = json.dumps(event).encode()
        for attempt in range(self.config.retries + 1):
            # Backoff 0.5, 1, 2, ... s (at most 30) between tries; while stopping, no more waits.
            if attempt and self.stopping.wait(min(30.0, 0.5 * 2 ** (attempt - 1))):
                return False
            request = urllib.request.Request(
                self.config.url,
                data=body,
                method="POST",
                headers={"Content-Type": "application/json"},
            )
            try:
                with urllib.request.urlopen(request, timeout=self.config.timeout) as response:
                    if 200 <= response.status < 300:
                        return True
            except (urllib.error.URLError, OSError, ValueError):
                pass
        return False

    def close(self, flush_seconds: float = 5.0) -> None:
        self.stopping.set()
        self.sender.join(flush_seconds)
