"""The daemon's own answer, asked through the SSH connection: its status server listens on the
device's loopback, so a tunnel from 127.0.0.1 here leads to it, and plain HTTP does the rest.

Healthy means /healthz says 200 (frames flow), not merely that a process exists; a daemon that
exits while we wait is reported at once rather than after the timeout, also when systemd is about
to restart it (a unit in a crash loop never stops "activating").
"""

from __future__ import annotations

import asyncio
import json
import posixpath
import shlex
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

from edgefer.deploy.service import DaemonService
from edgefer.deploy.ssh import Remote
from edgefer.device.daemon.config import DaemonConfig

WILDCARD = {"0.0.0.0", "::", ""}


@dataclass(frozen=True)
class Endpoint:
    """Where the device's daemon answers, as seen from the device."""

    host: str
    port: int
    token: str | None = None


def device_path(path) -> str:
    """`path` for the device's shell, quoted, with a leading `~` left for that shell to expand
    to the device user's home (`"$HOME"'/rest'`)."""
    text = str(path)
    if text == "~" or text.startswith("~/"):
        return '"$HOME"' + (shlex.quote(text[1:]) if len(text) > 1 else "")
    return shlex.quote(text)


async def endpoint(remote: Remote, config: DaemonConfig) -> Endpoint:
    """From the release's config; a token_file is read on the device, where it lives."""
    server = config.server
    token = server.token.get_secret_value() if server.token else None
    if token is None and server.token_file is not None:
        token = (await remote.run(f"cat {device_path(server.token_file)}", check=False)).strip()
        token = token or None
    host = "127.0.0.1" if server.bind in WILDCARD else server.bind
    return Endpoint(host, server.port, token)


def _get(port: int, path: str, token: str | None) -> tuple[int, str]:
    """(HTTP status, body) from the tunnel's local end; 0 when nothing answers."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as r:
            return r.status, r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace")
    except (OSError, ValueError):
        return 0, ""


async def wait_healthy(
    remote: Remote, service: DaemonService, ep: Endpoint, timeout: float, every: float = 1.0
) -> str | None:
    """None once /healthz says 200; else why not, when `timeout` is up or the daemon is gone."""
    end = time.monotonic() + timeout
    async with remote.tunnel(ep.host, ep.port) as port:
        while True:
            code, body = await asyncio.to_thread(_get, port, "/healthz", ep.token)
            if code == 200:
                return None
            down = await service.down(remote)
            if down is not None:
                return down
            if time.monotonic() >= end:
                said = f"answered {code} {body.strip()}" if code else "did not answer"
                return f"/healthz on {ep.host}:{ep.port} {said} within {timeout:g} s"
            await asyncio.sleep(every)


async def snapshot(remote: Remote, ep: Endpoint) -> dict:
    """Health, uptime, FPS and the real path of the config it loaded, as the daemon reports them
    now (None: it did not say)."""
    async with remote.tunnel(ep.host, ep.port) as port:
        code, said = await asyncio.to_thread(_get, port, "/healthz", ep.token)
        scode, body = await asyncio.to_thread(_get, port, "/status", ep.token)
        status = json.loads(body) if scode == 200 else {}
        if scode == 200 and "fps" not in status:  # daemons before /status had it
            mcode, metrics = await asyncio.to_thread(_get, port, "/metrics", ep.token)
            status["fps"] = _gauge(metrics, "edgefer_fps") if mcode == 200 else None
    return {
        # 503 says why: "no frames", or "degraded: no frames from door" (some cameras down)
        "health": {200: "ok", 0: "no answer"}.get(code, f"failing ({code}: {said.strip()})"),
        "uptime": status.get("uptime_seconds"),
        "fps": status.get("fps"),
        "config_file": status.get("config_file"),
    }


def loaded_release(config_file: str) -> str:
    """The release whose config a daemon loaded (.../releases/<id>/edgefer.toml: the real path,
    through `current`), or the path itself for a daemon started by hand."""
    folder = posixpath.dirname(config_file)
    if posixpath.basename(posixpath.dirname(folder)) == "releases":
        return posixpath.basename(folder)
    return config_file


def _gauge(text: str, name: str) -> float | None:
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        if family.name == name and family.samples:
            return family.samples[0].value
    return None
