import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from edgefer.device.daemon.config import WebhookConfig
from edgefer.device.daemon.outputs import webhook
from edgefer.device.daemon.outputs.webhook import WebhookSink
from tests.polling import wait_for


class Endpoint:
    """A local HTTP endpoint that fails the first `failures` POSTs with 500."""

    def __init__(self, failures=0, path="/hook"):
        self.received, self.calls, self.failures = [], 0, failures
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                outer.calls += 1
                body = self.rfile.read(int(self.headers["Content-Length"]))
                ok = outer.calls > outer.failures
                if ok:
                    outer.received.append(json.loads(body))
                self.send_response(200 if ok else 500)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def stop(self):
        self.server.shutdown()


def started(sink):
    sink.start()
    return sink


def daemon_log(caplog, level):
    return [
        r.getMessage() for r in caplog.records if r.name == "edgefer.daemon" and r.levelno == level
    ]


def test_events_are_posted_in_order():
    endpoint = Endpoint()
    sink = started(WebhookSink(WebhookConfig(url=endpoint.url)))
    for seq in range(1, 11):
        sink.send({"id": str(seq), "seq": seq})
    assert wait_for(lambda: len(endpoint.received) == 10)
    sink.close()
    assert [e["seq"] for e in endpoint.received] == list(range(1, 11)) and sink.delivered == 10
    endpoint.stop()


def test_failures_are_retried_with_backoff():
    endpoint = Endpoint(failures=2)
    sink = started(WebhookSink(WebhookConfig(url=endpoint.url, retries=3)))
    start = time.monotonic()
    sink.send({"id": "1", "seq": 1})
    assert wait_for(lambda: endpoint.received, 10)
    assert endpoint.calls == 3 and time.monotonic() - start >= 1.5  # waited 0.5 s, then 1 s
    sink.close()
    endpoint.stop()


def test_an_unreachable_endpoint_drops_and_counts_without_blocking_the_caller():
    sink = started(WebhookSink(WebhookConfig(url="http://127.0.0.1:1/hook", retries=0, timeout=1)))
    start = time.monotonic()
    for seq in range(3):
        sink.send({"id": str(seq), "seq": seq})
    assert time.monotonic() - start < 0.5
    assert wait_for(lambda: sink.dropped() == 3, 15)
    sink.close()
    assert sink.status() == {
        "state": "failing",
        "error": "Connection refused",
        "depth": 0,
        "dropped": 3,
    }


def test_drops_are_logged_once_with_their_cause_and_the_url_redacted(caplog):
    caplog.set_level(logging.INFO, logger="edgefer.daemon")
    endpoint = Endpoint(failures=4, path="/services/T0/B0/s3cret?token=abc")
    sink = started(WebhookSink(WebhookConfig(url=endpoint.url, retries=0)))
    for seq in range(1, 5):
        sink.send({"id": str(seq), "seq": seq})
    assert wait_for(lambda: sink.dropped() == 4)
    assert sink.status() == {
        "state": "failing",
        "error": "HTTP 500 Internal Server Error",
        "depth": 0,
        "dropped": 4,
    }
    sink.send({"id": "5", "seq": 5})
    assert wait_for(lambda: sink.status()["state"] == "ok")
    sink.close()
    endpoint.stop()
    where = f"webhook http://127.0.0.1:{endpoint.server.server_address[1]}/***"
    assert daemon_log(caplog, logging.WARNING) == [
        f"{where}: HTTP 500 Internal Server Error; events are dropped after 0 retries, and counted"
    ]
    assert daemon_log(caplog, logging.INFO) == [
        f"{where}: delivering again; 4 events dropped so far"
    ]
    assert "s3cret" not in caplog.text and "abc" not in caplog.text


def test_a_full_queue_drops_the_oldest_counts_them_and_says_so_once(monkeypatch, caplog):
    caplog.set_level(logging.INFO, logger="edgefer.daemon")
    monkeypatch.setattr(webhook, "QUEUE_SIZE", 10)
    endpoint = Endpoint()
    sink = WebhookSink(WebhookConfig(url=endpoint.url))  # not started yet: nothing goes out
    for seq in range(1, 16):
        sink.send({"id": str(seq), "seq": seq})
    assert sink.status() == {
        "state": "failing",
        "error": "queue full (10 events): the endpoint is slower than the events",
        "depth": 10,
        "dropped": 5,
    }
    sink.start()
    assert wait_for(lambda: sink.status()["state"] == "ok")
    sink.close()
    endpoint.stop()
    assert [e["seq"] for e in endpoint.received] == list(range(6, 16))  # the oldest went
    assert len(daemon_log(caplog, logging.WARNING)) == 1
    assert len(daemon_log(caplog, logging.INFO)) == 1


def test_building_starts_nothing_and_an_unstarted_sink_closes():
    before = set(threading.enumerate())
    sink = WebhookSink(WebhookConfig(url="http://127.0.0.1:1/hook"))
    assert set(threading.enumerate()) == before
    sink.close()
