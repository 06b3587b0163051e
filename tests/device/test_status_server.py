"""The status server on its own, as an attacker and as an unlucky network would meet it: wrong
and odd tokens, foreign Host names (DNS rebinding), clients that stall or hang up."""

from __future__ import annotations

import base64
import hashlib
import http.client
import logging
import socket
import time

import pytest

from edgefer.device.daemon import status as status_server
from edgefer.device.daemon.config import ServerConfig
from edgefer.device.daemon.status import Metrics, StatusServer
from edgefer.errors import EdgeferError

METRICS = Metrics(list, dict)  # no outputs, no cameras


def no_preview(camera):  # what a daemon without a frame yet answers
    return None


@pytest.fixture
def serve():
    """serve(**ServerConfig fields) -> port of a started server (healthy, status {"ok": 1})."""
    started = []

    def start(**fields) -> int:
        config = ServerConfig(port=0, **fields)
        server = StatusServer(config, METRICS, lambda: {"ok": 1}, lambda: (200, "ok"), no_preview)
        started.append(server.start())
        return server.port

    yield start
    for server in started:
        server.stop()


def request(port, path="/status", headers=None, timeout=5.0) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.putrequest("GET", path, skip_host="Host" in (headers or {}))
        for name, value in (headers or {}).items():
            conn.putheader(name, value)
        conn.endheaders()
        return conn.getresponse().status
    finally:
        conn.close()


def test_only_the_right_bearer_token_gets_in(serve):
    port = serve(token="t0k-secret")
    assert request(port) == 401
    assert request(port, headers={"Authorization": "Bearer x"}) == 401
    assert request(port, headers={"Authorization": "Bearer t0k-secre"}) == 401
    assert request(port, headers={"Authorization": "t0k-secret"}) == 401
    assert request(port, headers={"Authorization": "Bearer t0k-secret"}) == 200
    assert request(port, "/") == 200  # the page holds no data: it loads without the token


def test_a_non_ascii_token_or_header_is_compared_as_bytes_not_a_crash(serve):
    port = serve(token="pässwörd-✓")
    sent = "Bearer pässwörd-✓".encode().decode("latin-1")  # what a client puts on the wire
    assert request(port, "/healthz", {"Authorization": sent}) == 200
    assert request(port, "/healthz", {"Authorization": "Bearer p\xe4ssw\xf6rd"}) == 401
    assert request(port, "/healthz") == 401
    ascii_port = serve(token="plain")
    assert request(ascii_port, "/healthz", {"Authorization": "Bearer \xe9"}) == 401


@pytest.mark.parametrize(
    "host, code",
    [
        ("evil.example.com", 403),
        ("evil.example.com:8765", 403),
        ("localhost", 200),
        ("LOCALHOST:8765", 200),
        ("127.0.0.1:8765", 200),
        ("[::1]:8765", 200),
        ("192.168.1.20:8765", 200),
        ("camera.home.arpa", 200),
        (socket.gethostname() + ".local", 200),
    ],
)
def test_only_known_host_names_are_answered(serve, host, code):
    """A page that rebinds its own name to 127.0.0.1 still sends that name as Host."""
    port = serve(allowed_hosts=("camera.home.arpa",))
    assert request(port, "/status", {"Host": host}) == code
    assert request(port, "/healthz", {"Host": host}) == code


def half_requests(port, count) -> list[socket.socket]:
    socks = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        sock.sendall(b"GET /status HTTP/1.1\r\nHost: localhost\r\n")  # and never the rest
        socks.append(sock)
    return socks


def test_clients_that_stall_mid_request_cannot_starve_healthz(serve):
    port = serve()
    socks = half_requests(port, status_server.MAX_CONNECTIONS * 3)
    try:
        started = time.monotonic()
        for _ in range(5):
            assert request(port, "/healthz", timeout=2) == 200
        assert time.monotonic() - started < 2.0
        # The stalled ones beyond the cap were cut: at most MAX_CONNECTIONS are still open.
        open_ = 0
        for sock in socks:
            sock.settimeout(0.01)
            try:
                open_ += sock.recv(1) != b""
            except TimeoutError:
                open_ += 1
            except OSError:
                pass
        assert open_ <= status_server.MAX_CONNECTIONS
    finally:
        for sock in socks:
            sock.close()


def test_a_silent_client_is_cut_after_the_timeout(serve, monkeypatch):
    monkeypatch.setattr(status_server, "CLIENT_TIMEOUT", 0.3)
    port = serve()
    (sock,) = half_requests(port, 1)
    sock.settimeout(3)
    started = time.monotonic()
    assert sock.recv(100) == b""  # the server closed it
    assert time.monotonic() - started < 2.0
    sock.close()


def test_a_client_that_hangs_up_leaves_one_quiet_line_not_a_traceback(serve, capfd, caplog):
    port = serve()
    for _ in range(20):
        sock = socket.create_connection(("127.0.0.1", port))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        sock.close()  # RST: the server's write of the page fails
    caplog.set_level(logging.DEBUG, "edgefer.daemon")
    assert request(port, "/healthz") == 200
    time.sleep(0.3)
    assert "Traceback" not in capfd.readouterr().err
    assert all("\n" not in r.getMessage() for r in caplog.records)


def test_a_port_in_use_is_one_line(serve):
    port = serve()
    with pytest.raises(EdgeferError, match=f"server: cannot listen on 127.0.0.1:{port} "):
        StatusServer(ServerConfig(port=port), METRICS, dict, lambda: (200, "ok"), no_preview)


def test_the_policy_pins_the_pages_own_blocks_not_those_in_a_comment():
    def digest(text):
        return base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()

    html = "<!-- the page runs <script>one()</script> -->\n<style>p{}</style><script>two()</script>"
    csp = status_server.content_security_policy(html)
    assert f"script-src 'sha256-{digest('two()')}';" in csp
    assert f"style-src 'sha256-{digest('p{}')}';" in csp
    assert digest("one()") not in csp
