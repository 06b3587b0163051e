"""Making a release the running one, and taking that back when it does not come up healthy.

Used by a deploy (new release) and by `rollback` (the previous one) alike: switch `current`,
(re)start the service, wait for /healthz; on failure keep the daemon's last log lines, put the
links back as they were and restart what ran before, so a failed change leaves the device as it
found it, and say why.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from edgefer.deploy.config import parse_config
from edgefer.deploy.errors import HostError
from edgefer.deploy.health import endpoint, wait_healthy
from edgefer.deploy.layout import Layout
from edgefer.deploy.service import service_for
from edgefer.deploy.ship import read_file, read_meta, switch
from edgefer.deploy.ssh import Remote

LOG_LINES = 15  # of a daemon that failed its health check


@dataclass(frozen=True)
class Links:
    current: str | None
    previous: str | None


async def start(remote: Remote, layout: Layout, release_id: str, stop_mode: str | None, timeout):
    """Start `release_id` (already `current`); None once healthy, else (why, its log lines)."""
    meta = await read_meta(remote, layout, release_id)
    service = service_for(meta["service"], layout)
    if stop_mode is not None and stop_mode != meta["service"]:
        await service_for(stop_mode, layout).stop(remote)  # the other mode's daemon holds the port
    await service.install(remote, layout.release(release_id))
    await service.restart(remote)
    path = f"{layout.release(release_id)}/edgefer.toml"
    config = parse_config(await read_file(remote, path), f"{remote.target.name}:{path}")
    why = await wait_healthy(remote, service, await endpoint(remote, config), timeout)
    if why is None:
        return None
    logs = await service.logs(remote, LOG_LINES)
    # The daemon's own one-line reason for exiting (a config it cannot work with: exit 2) goes
    # into the summary line too, where a fleet's operator reads it first.
    said = next((line for line in reversed(logs) if line.startswith("error: ")), None)
    return (f"{why}; it said: {said}" if said else why), logs


async def activate(
    remote: Remote, layout: Layout, to: str, before: Links, timeout: float, say
) -> float:
    """Make `to` current (the one it replaces becomes previous) and healthy; the seconds that
    took. On failure `before` is restored and a HostError says why. `to` may be current
    already: then this restarts it."""
    t0 = time.monotonic()
    old_mode = None
    if before.current is not None:
        old_mode = (await read_meta(remote, layout, before.current))["service"]
    await switch(remote, layout, to, before.current if before.current != to else before.previous)
    say(f"starting {to}, waiting for /healthz (up to {timeout:g} s)")
    failed = await start(remote, layout, to, old_mode, timeout)
    if failed is None:
        return time.monotonic() - t0
    why, logs = failed
    new_mode = (await read_meta(remote, layout, to))["service"]
    if before.current is None:
        await service_for(new_mode, layout).stop(remote)
        await switch(remote, layout, None, before.previous)
        back = "nothing to roll back to, so the daemon is stopped"
    elif before.current == to:
        back = f"{to} was current already (it was restarted), so there is nothing to roll back to"
    else:
        say(f"unhealthy ({why}); rolling back to {before.current}")
        await switch(remote, layout, before.current, before.previous)
        again = await start(remote, layout, before.current, new_mode, timeout)
        back = f"rolled back to {before.current}" + (
            ", which is healthy again"
            if again is None
            else f", which is not healthy either: {again[0]}"
        )
    raise HostError(f"health check failed: {why}; {back}", details=logs)
