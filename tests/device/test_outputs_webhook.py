import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from edgefer.device.daemon_config import WebhookConfig
from edgefer.device.outputs.webhook import WebhookSink
from tests.polling import wait_for


class Endpoint:
    """A local HTTP endpoint that fails the first `failures` POSTs with 500."""

    def __init__(self, failures=0):
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
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def stop(self):
        self.server.shutdown()


def test_events_are_posted_in_order():
    endpoint = Endpoint()
    sink = WebhookSink(WebhookConfig(url=endpoint.url))
    for seq in range(1, 11):
        sink.send({"id": str(seq), "seq": seq})
    assert wait_for(lambda: len(endpoint.received) == 10)
    sink.close()
    assert [e["seq"] for e in endpoint.received] == list(range(1, 11)) and sink.delivered == 10
    endpoint.stop()


def test_failures_are_retried_with_backoff():
    endpoint = Endpoint(failures=2)
    sink = WebhookSink(WebhookConfig(url=endpoint.url, retries=3))
    start = time.monotonic()
    sink.send({"id": "1", "seq": 1})
    assert wait_for(lambda: endpoint.received, 10)
    assert endpoint.calls == 3 and time.monotonic() - start >= 1.5  # waited 0.5 s, then 1 s
    sink.close()
    endpoint.stop()


def test_an_unreachable_endpoint_drops_and_counts_without_blocking_the_caller():
    sink = WebhookSink(WebhookConfig(url="http://127.0.0.1:1/hook", retries=0, timeout=1))
    start = time.monotonic()
    for seq in range(3):
        sink.send({"id": str(seq), "seq": seq})
    assert time.monotonic() - start < 0.5
    assert wait_for(lambda: sink.dropped == 3, 15)
    sink.close()
