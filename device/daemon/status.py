"""The daemon's HTTP status server: / (the status page), /healthz, /metrics (Prometheus text),
/status (JSON) and, with `preview = true` only, /preview.jpg?camera=NAME (that camera's newest
annotated frame; without ?camera, the first camera's).

Bound to 127.0.0.1 by default (the config refuses any other address without a bearer token);
with a token, every request but the page itself must carry `Authorization: Bearer <token>`. The
page is static and holds no data, so it loads without one and sends the token with each of its
requests (status_page.html says where it keeps it). /healthz answers 200 only while every camera
gives frames, so a supervisor (`edgefer deploy`, a monitor) can tell a running process from a
working one; its body says which cameras have none (see Daemon.health).
Metrics go through prometheus_client, in a registry of the daemon's own.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
import socket
import sys
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from ipaddress import ip_address
from urllib.parse import parse_qs, urlsplit

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from edgefer.device.daemon.config import ServerConfig
from edgefer.errors import EdgeferError, shown

log = logging.getLogger("edgefer.daemon")
STAGE_BUCKETS = (0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500)  # milliseconds
CLIENT_TIMEOUT = 10.0  # seconds a client may take over one read or write of its request
MAX_CONNECTIONS = 64  # beyond this, the oldest connection still sending its request is cut
LISTEN_BACKLOG = 128
ENDPOINTS = (
    b"not found: /, /healthz, /metrics, /status, /preview.jpg?camera=NAME (with preview = true)\n"
)


class Metrics:
    """Every number /metrics shows, each camera's with the label `camera`. The frame loop counts
    frames, faces, events and stage times; what can be read off the cameras and outputs when
    /metrics is scraped (FPS, open tracks, the source, the queues) is read then, from
    `cameras()` and `outputs()`, so it stays true while no frame comes (a camera down) and a
    camera or output that a reload removed is gone from the next scrape. Its counters stay until
    the restart: a counter that stops growing is how Prometheus expects one to end."""

    def __init__(self, outputs, cameras):
        self.registry = CollectorRegistry()
        r = self.registry
        self.frames = Counter("edgefer_frames", "Frames processed", ["camera"], registry=r)
        self.faces = Counter("edgefer_faces", "Faces detected", ["camera"], registry=r)
        self.events = Counter("edgefer_events", "Events produced", ["camera", "type"], registry=r)
        self.stage = Histogram(
            "edgefer_stage_ms",
            "Per-stage latency (ms)",
            ["camera", "stage"],
            buckets=STAGE_BUCKETS,
            registry=r,
        )
        self.info = Gauge(
            "edgefer_info",
            "The bundle, model and backend in use",
            ["bundle", "model", "backend"],
            registry=r,
        )
        r.register(_CamerasCollector(cameras))
        r.register(_OutputsCollector(outputs))

    def describe(self, bundle: str, model: str, backend: str) -> None:
        self.info.clear()
        self.info.labels(bundle=bundle, model=model, backend=backend).set(1)


class _CamerasCollector:
    """Per camera, read at each scrape: edgefer_fps, edgefer_tracks_open, edgefer_source_up,
    edgefer_frames_dropped (read but never processed) and edgefer_source_reconnects."""

    GAUGES = (
        ("edgefer_fps", "Frames processed per second, last 5 s", lambda c: c.fps()),
        ("edgefer_tracks_open", "Open face tracks", lambda c: len(c.tracker.tracks)),
        ("edgefer_source_up", "1 while the camera gives frames", lambda c: int(c.healthy())),
        (
            "edgefer_frames_dropped",
            "Frames the capture read but never processed",
            lambda c: c.capture.frames_dropped,
        ),
        (
            "edgefer_source_reconnects",
            "Times the source was reopened",
            lambda c: c.capture.reconnects,
        ),
    )

    def __init__(self, cameras):
        self.cameras = cameras

    def collect(self):
        cameras = self.cameras()
        for name, help_text, read in self.GAUGES:
            family = GaugeMetricFamily(name, help_text, labels=["camera"])
            for camera_name, camera in cameras.items():
                family.add_metric([camera_name], read(camera))
            yield family


class _OutputsCollector:
    """The outputs' queues and losses, per output: edgefer_spool_depth (events waiting, summed,
    as before) and edgefer_events_dropped{output} (events an output gave up on since start)."""

    def __init__(self, outputs):
        self.outputs = outputs

    def collect(self):
        sinks = self.outputs()
        yield GaugeMetricFamily(
            "edgefer_spool_depth",
            "Events waiting in the outputs' queues and spool",
            value=sum(s.depth() for s in sinks),
        )
        dropped = CounterMetricFamily(
            "edgefer_events_dropped",
            "Events an output dropped (full disk, queue, retries)",
            labels=["output"],
        )
        for sink in sinks:
            dropped.add_metric([sink.name], sink.dropped())
        yield dropped


@dataclass(frozen=True)
class _Access:
    """Who may ask: swapped whole on a SIGHUP, so a request never sees half of a new config."""

    authorization: bytes | None  # the exact Authorization header expected, as bytes
    hosts: frozenset[str]  # names the Host header may carry (IP addresses are always fine)
    preview: bool

    @classmethod
    def of(cls, config: ServerConfig) -> _Access:
        token = config.token.get_secret_value() if config.token else None
        name = socket.gethostname().lower()
        hosts = {"localhost", name, f"{name}.local", config.bind.lower()}
        return cls(
            None if token is None else f"Bearer {token}".encode(),
            frozenset(hosts | {h.lower().rstrip(".") for h in config.allowed_hosts}),
            config.preview,
        )


class _BoundedServer(ThreadingHTTPServer):
    """A thread per connection, but never unbounded: each socket read or write times out after
    CLIENT_TIMEOUT, and past MAX_CONNECTIONS the oldest connection that has not yet sent its whole
    request is cut. So clients that send half a request and go silent cannot hold threads and
    file descriptors, and /healthz keeps answering a supervisor while they try."""

    daemon_threads = True
    request_queue_size = LISTEN_BACKLOG

    def __init__(self, address, handler, access: _Access):
        self.access = access
        self._open: dict[socket.socket, bool] = {}  # oldest first -> request received
        self._open_lock = threading.Lock()
        super().__init__(address, handler)

    def process_request(self, request, client_address):
        with self._open_lock:
            if len(self._open) >= MAX_CONNECTIONS:
                idle = [sock for sock, busy in self._open.items() if not busy]
                victim = (idle or list(self._open))[0]
                del self._open[victim]
                try:
                    victim.shutdown(socket.SHUT_RDWR)  # its thread's read returns, and it ends
                except OSError:
                    pass
            self._open[request] = False
        super().process_request(request, client_address)

    def request_received(self, request) -> None:
        with self._open_lock:
            if request in self._open:
                self._open[request] = True

    def shutdown_request(self, request):
        with self._open_lock:
            self._open.pop(request, None)
        super().shutdown_request(request)

    def handle_error(self, request, client_address):
        """One line, never a traceback: a client that hangs up mid-response is normal."""
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):
            log.debug("status server: %s dropped the connection (%s)", client_address[0], exc)
        else:
            log.warning(
                "status server: a request from %s failed: %s: %s",
                client_address[0],
                type(exc).__name__,
                shown(exc, 200),
            )


class StatusServer:
    """Serves the endpoints from a thread; `status()`, `health()` (HTTP code and body) and
    `preview(camera)` (JPEG bytes; None before the first frame; KeyError for a camera that is
    not there) come from the daemon. Binding happens here, in the
    constructor, so a port in use is an error before anything else changes."""

    def __init__(self, config: ServerConfig, metrics: Metrics, status, health, preview):
        self.config = config
        handler = _handler(metrics, status, health, preview)
        try:
            self.httpd = _BoundedServer((config.bind, config.port), handler, _Access.of(config))
        except OSError as exc:
            raise EdgeferError(
                f"server: cannot listen on {config.bind}:{config.port} ({exc.strerror or exc})"
            ) from None
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, name="edgefer-status", daemon=True
        )

    def listens_as(self, config: ServerConfig) -> bool:
        """Whether `config` asks for this server's socket (then a reload reconfigures it in place:
        a new server could not bind the port this one holds)."""
        return (config.bind, config.port) == (self.config.bind, self.config.port)

    def reconfigure(self, config: ServerConfig) -> None:
        """New token, host names and preview setting for the next request, on the same socket."""
        self.httpd.access = _Access.of(config)
        self.config = config

    def start(self) -> StatusServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        if self.thread.is_alive():
            self.httpd.shutdown()
        self.httpd.server_close()


def host_allowed(host_header: str | None, hosts: frozenset[str]) -> bool:
    """Whether a request's Host header names this server. A page on another site that reaches
    127.0.0.1 by DNS rebinding still sends its own name, so names must be known ones; an IP
    address cannot be rebound, and a client without a Host header is not a browser."""
    if not host_header:
        return True
    host = host_header.strip().lower()
    if host.startswith("["):
        name = host[1 : host.find("]")]
    else:
        name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    name = name.rstrip(".")
    try:
        ip_address(name)
        return True
    except ValueError:
        return name in hosts


def page() -> tuple[bytes, str]:
    """The status page and its Content-Security-Policy."""
    html = resources.files(__package__).joinpath("status_page.html").read_text(encoding="utf-8")
    return html.encode(), content_security_policy(html)


def content_security_policy(html: str) -> str:
    """The page may run its own inline script and style (pinned by their hashes) and fetch
    from this server, nothing else; so a label that a future bug rendered as HTML could not run
    script or send data anywhere. Blocks inside HTML comments are not the page's: a comment that
    shows a <script> tag must not shift which blocks get hashed."""
    live = re.sub(r"<!--.*?-->", "", html, flags=re.DOTALL)

    def hashes(tag: str) -> str:
        blocks = re.findall(rf"<{tag}>(.*?)</{tag}>", live, re.DOTALL)
        return " ".join(
            f"'sha256-{base64.b64encode(hashlib.sha256(b.encode()).digest()).decode()}'"
            for b in blocks
        )

    return (
        f"default-src 'none'; script-src {hashes('script')}; style-src {hashes('style')}; "
        "connect-src 'self'; img-src blob: data:; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    )


def _handler(metrics: Metrics, status, health, preview):
    html, csp = page()

    class Handler(BaseHTTPRequestHandler):
        timeout = CLIENT_TIMEOUT

        def do_GET(self):
            self.server.request_received(self.request)
            access: _Access = self.server.access
            url = urlsplit(self.path)
            path = url.path
            if not host_allowed(self.headers.get("Host"), access.hosts):
                return self._send(
                    403, "text/plain", b"unknown host name: add it to server.allowed_hosts\n"
                )
            if path == "/":
                return self._send(
                    200,
                    "text/html; charset=utf-8",
                    html,
                    {"Content-Security-Policy": csp, "Referrer-Policy": "no-referrer"},
                )
            # Bytes on both sides: compare_digest refuses non-ASCII str. The header arrived as
            # latin-1 text, which encodes back to the bytes sent; the token is UTF-8.
            sent = self.headers.get("Authorization", "").encode("latin-1", "replace")
            if access.authorization is not None and not hmac.compare_digest(
                sent, access.authorization
            ):
                return self._send(401, "text/plain", b"bearer token required\n")
            if path == "/healthz":
                code, text = health()
                return self._send(code, "text/plain", f"{text}\n".encode())
            if path == "/metrics":
                return self._send(200, CONTENT_TYPE_LATEST, generate_latest(metrics.registry))
            if path == "/status":
                body = json.dumps(status(), indent=1).encode()
                return self._send(200, "application/json", body)
            if path == "/preview.jpg" and access.preview:
                camera = parse_qs(url.query).get("camera", [None])[0]
                try:
                    jpeg = preview(camera)
                except KeyError:
                    return self._send(404, "text/plain", b"no such camera\n")
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
