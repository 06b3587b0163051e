"""The daemon's HTTP status server: /healthz, /metrics (Prometheus text), /status (JSON).

Bound to 127.0.0.1 by default (the config refuses any other address without a bearer token);
with a token, every request must carry `Authorization: Bearer <token>`. /healthz answers 200 only
while frames flow, so a supervisor (systemd, `edgefer deploy`) can tell a running process from a
working one. Metrics go through prometheus_client, in a registry of the daemon's own.
"""

from __future__ import annotations

import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from edgefer.device.daemon_config import ServerConfig

STAGE_BUCKETS = (0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500)  # milliseconds


class Metrics:
    """Every number /metrics shows; the daemon updates them as it works."""

    def __init__(self, model: str, backend: str):
        self.registry = CollectorRegistry()
        labels = {"model": model, "backend": backend}
        r = self.registry
        self.frames = Counter("edgefer_frames", "Frames processed", registry=r)
        self.fps = Gauge("edgefer_fps", "Frames processed per second, last summary", registry=r)
        self.faces = Counter("edgefer_faces", "Faces detected", registry=r)
        self.tracks = Gauge("edgefer_tracks_open", "Open face tracks", registry=r)
        self.events = Counter("edgefer_events", "Events produced", ["type"], registry=r)
        self.dropped = Gauge(
            "edgefer_frames_dropped", "Frames the capture read but never processed", registry=r
        )
        self.reconnects = Gauge(
            "edgefer_source_reconnects", "Times the source was reopened", registry=r
        )
        self.spool = Gauge("edgefer_spool_depth", "Events waiting in the MQTT spool", registry=r)
        self.stage = Histogram(
            "edgefer_stage_ms",
            "Per-stage latency (ms)",
            ["stage"],
            buckets=STAGE_BUCKETS,
            registry=r,
        )
        info = Gauge("edgefer_info", "The model and backend in use", list(labels), registry=r)
        info.labels(**labels).set(1)


class StatusServer:
    """Serves the three endpoints from a thread; `status()` and `healthy()` come from the daemon."""

    def __init__(self, config: ServerConfig, metrics: Metrics, status, healthy):
        token = config.token.get_secret_value() if config.token else None
        handler = _handler(metrics, status, healthy, token)
        self.httpd = ThreadingHTTPServer((config.bind, config.port), handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, name="edgefer-status", daemon=True
        )

    def start(self) -> StatusServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _handler(metrics: Metrics, status, healthy, token: str | None):
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            if token is not None and not hmac.compare_digest(
                self.headers.get("Authorization", ""), f"Bearer {token}"
            ):
                return self._send(401, "text/plain", b"bearer token required\n")
            if self.path == "/healthz":
                ok = healthy()
                return self._send(
                    200 if ok else 503, "text/plain", b"ok\n" if ok else b"no frames\n"
                )
            if self.path == "/metrics":
                return self._send(200, CONTENT_TYPE_LATEST, generate_latest(metrics.registry))
            if self.path == "/status":
                body = json.dumps(status(), indent=1).encode()
                return self._send(200, "application/json", body)
            return self._send(404, "text/plain", b"not found: /healthz, /metrics, /status\n")

        def _send(self, code: int, kind: str, body: bytes):
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):  # requests are not worth a log line each
            pass

    return Handler
