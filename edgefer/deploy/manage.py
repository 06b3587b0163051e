"""`edgefer deploy status | logs | rollback`: what a device runs, what it said, and taking the
last deploy back. Each reads the device's own record of its release (release.json, the release's
config), so none needs the bundle or the config the deploy used."""

from __future__ import annotations

from pathlib import PurePosixPath

from edgefer.deploy.activate import Links, activate
from edgefer.deploy.config import parse_config
from edgefer.deploy.errors import HostError
from edgefer.deploy.fleet import HostResult, Say
from edgefer.deploy.health import endpoint, loaded_release, snapshot
from edgefer.deploy.hosts import Target
from edgefer.deploy.layout import Layout
from edgefer.deploy.service import service_for
from edgefer.deploy.ship import DeviceState, device_lock, device_state, read_file
from edgefer.deploy.ssh import Remote, Trust, connect


async def _home(remote: Remote) -> Layout:
    return Layout((await remote.run('printf %s "$HOME"')).strip())


async def _deployed(remote: Remote, layout: Layout) -> DeviceState:
    state = await device_state(remote, layout)
    if state.current is None or state.current_meta is None:
        raise HostError(f"nothing deployed in {layout.root} yet (edgefer deploy BUNDLE --host ...)")
    return state


def _uptime(seconds) -> str:
    if seconds is None:
        return "-"
    s = int(seconds)
    return (
        f"{s // 86400}d{s % 86400 // 3600:02d}h"
        if s >= 86400
        else (f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s")
    )


def _bundle_name(bundle: dict) -> str:
    """The name release.json records, or for a release made before it did, the name of the
    folder it was deployed from."""
    return bundle.get("name") or PurePosixPath(bundle["from"]).name


def _problem(health: str, config_file: str | None, state: DeviceState) -> str | None:
    """What is wrong with the device's daemon, if anything. A healthy daemon of another release
    than `current` (a deploy cut off after switching it) is wrong too; one that does not say
    which config it loaded (an older edgefer) is taken at its word."""
    if health != "ok":
        return f"daemon {health}"
    if config_file is not None and config_file != state.current_config:
        return f"the daemon runs {loaded_release(config_file)}, not current (deploy it again)"
    return None


async def status(target: Target, trust: Trust) -> HostResult:
    async with connect(target, trust) as remote:
        layout = await _home(remote)
        state = await _deployed(remote, layout)
        meta = state.current_meta
        service = service_for(meta["service"], layout)
        running = await service.running(remote)
        path = f"{layout.current}/edgefer.toml"
        config = parse_config(await read_file(remote, path), f"{target.name}:{path}")
        now = await snapshot(remote, await endpoint(remote, config)) if running else {}
    health = now.get("health", "stopped")
    fps = now.get("fps")
    problem = _problem(health, now.get("config_file"), state)
    return HostResult(
        target.name,
        problem is None,
        "ok" if problem is None else "FAILED",
        state.current,
        problem or "",
        columns={
            "bundle": f"{_bundle_name(meta['bundle'])} {meta['bundle']['sha256'][:12]}",
            "service": f"{meta['service']} {'running' if running else 'stopped'}",
            "health": health,
            "uptime": _uptime(now.get("uptime")),
            "fps": "-" if fps is None else f"{fps:.1f}",
            "previous": state.previous or "-",
        },
    )


async def logs(target: Target, trust: Trust, lines: int) -> HostResult:
    async with connect(target, trust) as remote:
        layout = await _home(remote)
        state = await _deployed(remote, layout)
        text = await service_for(state.current_meta["service"], layout).logs(remote, lines)
    return HostResult(target.name, True, "ok", state.current, details=text)


async def rollback(target: Target, trust: Trust, timeout: float, say: Say) -> HostResult:
    """The previous release back as current (and the one it replaces as previous, so a second
    rollback undoes the first), health-checked like a deploy."""
    async with connect(target, trust) as remote:
        layout = await _home(remote)
        async with device_lock(remote, layout):
            state = await _deployed(remote, layout)
            if state.previous is None:
                raise HostError(f"no previous release in {layout.root} to roll back to")
            took = await activate(
                remote,
                layout,
                state.previous,
                Links(state.current, state.previous),
                timeout,
                lambda message: say(target.name, message),
            )
    return HostResult(
        target.name,
        True,
        "rolled back",
        state.previous,
        f"from {state.current}; healthy in {took:.0f} s",
    )
