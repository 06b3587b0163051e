"""Slow-client load on the daemon's status server: does /healthz keep answering a supervisor while
clients open connections, send half a request and go silent?

The server runs here on 127.0.0.1 (a free port) with the daemon's own settings; --clients such
connections are opened by 4 threads as fast as they go, while this script probes /healthz back to
back until they are all open, then --after more times. Nothing leaves 127.0.0.1, and every loop
is bounded by the client count.

    python bench/status_server_load.py [--clients 2000] [--after 20]

Prints the probes (count, non-200 answers, median and worst latency) and what the server holds
afterwards (threads, tracked connections, open file descriptors); exit 1 if any probe failed.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import threading
import time

from edgefer.device.daemon.config import ServerConfig
from edgefer.device.daemon.status import Metrics, StatusServer


def probe(port: int) -> tuple[bool, float]:
    """(answered 200, seconds) for one GET /healthz on a fresh connection."""
    started = time.monotonic()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
            conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
            ok = conn.recv(64).startswith(b"HTTP/1.0 200")
    except OSError:
        ok = False
    return ok, time.monotonic() - started


def stall(port: int, count: int, held: list, lock: threading.Lock) -> None:
    """Open connections that send half a request, until `count` are held in all."""
    while True:
        with lock:
            if len(held) >= count:
                return
        try:
            conn = socket.create_connection(("127.0.0.1", port), timeout=5)
            conn.sendall(b"GET /status HTTP/1.1\r\nHost: localhost\r\n")
        except OSError:
            time.sleep(0.01)
            continue
        with lock:
            held.append(conn)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=2000)
    parser.add_argument("--after", type=int, default=20)
    args = parser.parse_args()
    server = StatusServer(
        ServerConfig(port=0), Metrics(list, dict), dict, lambda: (200, "ok"), lambda camera: None
    ).start()
    held: list[socket.socket] = []
    lock = threading.Lock()
    attackers = [
        threading.Thread(target=stall, args=(server.port, args.clients, held, lock))
        for _ in range(4)
    ]
    for thread in attackers:
        thread.start()
    during = []
    while any(t.is_alive() for t in attackers):
        during.append(probe(server.port))
    after = [probe(server.port) for _ in range(args.after)]
    for name, probes in (("while stalling", during), ("after", after)):
        seconds = [s for _, s in probes]
        failed = sum(not ok for ok, _ in probes)
        print(
            f"{name:15} {len(probes):5d} probes, {failed} not 200, median "
            f"{statistics.median(seconds) * 1000:.1f} ms, worst {max(seconds) * 1000:.1f} ms"
        )
    print(
        f"{len(held)} stalled clients; the server holds {threading.active_count() - 1} threads, "
        f"{len(server.httpd._open)} tracked connections, {len(os.listdir('/proc/self/fd'))} fds "
        "(this process, clients' sockets included)"
    )
    for conn in held:
        conn.close()
    server.stop()
    return 1 if any(not ok for ok, _ in during + after) else 0


if __name__ == "__main__":
    raise SystemExit(main())
