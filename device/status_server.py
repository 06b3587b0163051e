"""The daemon's HTTP status server: / (the status page), /healthz, /metrics (Prometheus text),
/status (JSON) and, with `preview = true` only, /preview.jpg (the newest annotated frame).

Bound to 127.0.0.1 by default (the config refuses any other address without a bearer token);
with a token, every request but the page itself must carry `Authorization: Bearer <token>`. The
page is static and holds no data, so it loads without one and sends the token with each of its
requests (status_page.html says where it keeps it). /healthz answers 200 only while frames flow,
so a supervisor (systemd, `edgefer deploy`) can tell a running process from a working one.
Metrics go through prometheus_client, in a registry of the daemon's own.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from urllib.parse import urlsplit

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from edgefer.device.daemon_config import ServerConfig

STAGE_BUCKETS = (0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500)  # milliseconds
ENDPOINTS = b"not found: /, /healthz, /metrics, /status, /preview.jpg (with preview = true)\n"


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
    """Serves the endpoints from a thread; `status()`, `healthy()` and `preview()` (JPEG bytes,
    None before the first frame) come from the daemon."""

    def __init__(self, config: ServerConfig, metrics: Metrics, status, healthy, preview):
        token = config.token.get_secret_value() if config.token else None
        handler = _handler(metrics, status, healthy, preview if config.preview else None, token)
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


def page() -> tuple[bytes, str]:
    """The status page and its Content-Security-Policy: the page may run its own inline script
    and style (pinned by their hashes) and fetch from this server, nothing else; so a label that a
    future bug rendered as HTML could not run script or send data anywhere."""
    html = resources.files(__package__).joinpath("status_page.html").read_text(encoding="utf-8")

    def hashes(tag: str) -> str:
        blocks = re.findall(rf"<{tag}>(.*?)</{tag}>", html, re.DOTALL)
        return " ".join(
            f"'sha256-{base64.b64encode(hashlib.sha256(b.encode()).digest()).decode()}'"
            for b in blocks
        )

    csp = (
        f"default-src 'none'; script-src {hashes('script')}; style-src {hashes('style')}; "
        "connect-src 'self'; img-src blob: data:; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    )
    return html.encode(), csp


def _handler(metrics: Metrics, status, healthy, preview, token: str | None):
    html, csp = page()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            path = urlsplit(self.path).path
            if path == "/":
                return self._send(
                    200,
                    "text/html; charset=utf-8",
                    html,
                    {"Content-Security-Policy": csp, "Referrer-Policy": "no-referrer"},
                )
            if token is not None and not hmac.compare_digest(
                self.headers.get("Authorization", ""), f"Bearer {token}"
            ):
                return self._send(401, "text/plain", b"bearer token required\n")
            if path == "/healthz":
                ok = healthy()
                return self._send(
                    200 if ok else 503, "text/plain", b"ok\n" if ok else b"no frames\n"
                )
            if path == "/metrics":
                return self._send(200, CONTENT_TYPE_LATEST, generate_latest(metrics.registry))
            if path == "/status":
                body = json.dumps(status(), indent=1).encode()
                return self._send(200, "application/json", body)
            if path == "/preview.jpg" and preview is not None:
                jpeg = preview()
                if jpeg is None:
                    return self._send(503, "text/plain", b"no frame yet\n")
                return self._send(200, "image/jpeg", jpeg)
            return self._send(404, "text/plain", ENDPOINTS)

        def _send(self, code: int, kind: str, body: bytes, headers: dict | None = None):
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")  # live data: never a stale copy
            self.send_header("X-Content-Type-Options", "nosniff")
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):  # requests are not worth a log line each
            pass

    return Handler
