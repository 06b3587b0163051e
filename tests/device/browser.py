"""Debian's chromium, headless, driven over the DevTools protocol: a page loads and runs its
script as in a person's browser, and what its console would show is collected.

Chromium is held to 127.0.0.1: every host name resolves to nothing, and its own background traffic
(component updates, sync, field trials, safe browsing) is switched off. A missing chromium is a
failure with the fix in its message, not a skip: CI installs it (.ci/run).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

import websocket

from tests.polling import wait_for

FLAGS = [
    "--headless",
    "--no-sandbox",  # root in a container has no user namespaces for the sandbox
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-sync",
    "--disable-domain-reliability",
    "--disable-client-side-phishing-detection",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    "--no-proxy-server",
    "--remote-debugging-port=0",  # chromium picks a free port and writes it to DevToolsActivePort
]


class Browser:
    def __init__(self, workdir: Path):
        exe = shutil.which("chromium")
        if exe is None:
            raise RuntimeError("chromium is not installed: apt-get install chromium (.ci/run does)")
        profile = workdir / "chromium-profile"
        self.proc = subprocess.Popen(
            [exe, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its renderer and helper processes go with it in close()
        )
        self.ws = None
        try:
            active = profile / "DevToolsActivePort"
            if not wait_for(lambda: len(_lines(active)) == 2, 30):
                raise RuntimeError("chromium started but opened no DevTools port in 30 s")
            port, path = _lines(active)
            self.ws = websocket.create_connection(
                f"ws://127.0.0.1:{port}{path}", timeout=30, suppress_origin=True
            )
        except BaseException:
            self.close()  # never leave a chromium behind
            raise
        self.last_id = 0
        self.events: list[dict] = []

    def call(self, method: str, session: str | None = None, **params) -> dict:
        """One DevTools command; the events that arrive meanwhile are kept in `events`."""
        self.last_id += 1
        message = {"id": self.last_id, "method": method, "params": params}
        if session is not None:
            message["sessionId"] = session
        self.ws.send(json.dumps(message))
        while True:
            reply = json.loads(self.ws.recv())
            if reply.get("id") == self.last_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]
            self.events.append(reply)

    def wait_event(self, method: str, session: str) -> dict:
        """The first `method` event of a session (a recv timeout, 30 s, if none comes)."""
        seen = 0
        while True:
            for event in self.events[seen:]:
                if event.get("method") == method and event.get("sessionId") == session:
                    return event
            seen = len(self.events)
            self.events.append(json.loads(self.ws.recv()))

    def open(self, url: str) -> Page:
        """A new tab (its own sessionStorage), watched from before it starts loading `url`."""
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Runtime", "Log", "Network", "Page"):
            self.call(f"{domain}.enable", session)
        self.call("Page.navigate", session, url=url)
        self.wait_event("Page.loadEventFired", session)  # the page's own script has run
        return Page(self, session)

    def close(self) -> None:
        if self.ws is not None:
            self.ws.close()
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        except ProcessLookupError:
            pass


class Page:
    def __init__(self, browser: Browser, session: str):
        self.browser, self.session = browser, session

    def evaluate(self, expression: str):
        """The value of a JS expression in the page (promises awaited)."""
        result = self.browser.call(
            "Runtime.evaluate",
            self.session,
            expression=expression,
            returnByValue=True,
            awaitPromise=True,
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']['text']}")
        return result["result"].get("value")

    def _events(self) -> list[dict]:
        self.evaluate("0")  # a round trip: every event sent before it has arrived
        return [e for e in self.browser.events if e.get("sessionId") == self.session]

    def console_errors(self) -> list[str]:
        """Console errors, uncaught exceptions and failed loads, as the console shows them."""
        errors = []
        for e in self._events():
            method, p = e["method"], e["params"]
            if method == "Runtime.consoleAPICalled" and p["type"] in ("error", "assert"):
                errors.append(
                    " ".join(str(a.get("value", a.get("description"))) for a in p["args"])
                )
            elif method == "Runtime.exceptionThrown":
                details = p["exceptionDetails"]
                errors.append(details.get("exception", {}).get("description", details["text"]))
            elif method == "Log.entryAdded" and p["entry"]["level"] == "error":
                errors.append(f"{p['entry']['text']} ({p['entry'].get('url', '')})")
        return errors

    def requested_urls(self) -> list[str]:
        return [
            e["params"]["request"]["url"]
            for e in self._events()
            if e["method"] == "Network.requestWillBeSent"
        ]


def _lines(path: Path) -> list[str]:
    try:
        return path.read_text().splitlines()
    except FileNotFoundError:
        return []
