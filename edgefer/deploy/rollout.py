"""`edgefer deploy BUNDLE`: one host's deploy, from probe to healthy (or back where it was).

Everything that can be checked here is checked before the first host is touched (the bundle
against its manifest, every config, the wheels: see api.push); each host is then probed, planned
against what it already has, and changed only if the plan fits (architecture, Python, disk, Edge
TPU, systemd). A dry run stops after the plan.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from edgefer.deploy.activate import Links, activate
from edgefer.deploy.errors import HostError
from edgefer.deploy.fleet import HostResult, Say
from edgefer.deploy.health import endpoint, loaded_release, snapshot, wait_healthy
from edgefer.deploy.hosts import Target
from edgefer.deploy.layout import Layout
from edgefer.deploy.plan import Plan
from edgefer.deploy.preflight import check_disk, check_fit, check_writable, missing_cameras
from edgefer.deploy.probe import Probe, check_supported, probe
from edgefer.deploy.release import Bundle, Release, make_release, size_text, venv_key, wheel_items
from edgefer.deploy.service import service_for
from edgefer.deploy.ship import (
    assemble,
    damaged_blobs,
    device_lock,
    device_state,
    make_venv,
    prune,
    remove_release,
    upload,
)
from edgefer.deploy.ssh import Remote, Trust, connect
from edgefer.deploy.unit import unit_text
from edgefer.deploy.wheel import Wheels
from edgefer.device.daemon.config import DaemonConfig

UP_TO_DATE_WAIT = 5.0  # seconds a running daemon of the same release has to say it is healthy


@dataclass(frozen=True)
class DeployOptions:
    """How `push` deploys: the options of `edgefer deploy BUNDLE`."""

    config: Path | None = None  # the daemon config of every device the inventory gives none
    service: str = "user"  # user, system or none (see service.py)
    offline: bool = False  # the devices have no package index: ship a wheelhouse
    dry_run: bool = False  # probe and plan, change nothing
    health_timeout: float = 60.0
    keep: int = 3  # releases kept on each device
    wheel: Path | None = None  # the edgefer wheel to install; None: built from this checkout
    force: bool = False  # deploy even when the device already runs this very release


class Rollout:
    """One deploy of one bundle to many hosts: the inputs checked before the first host is
    touched, shared by every host's `host()`."""

    def __init__(
        self,
        bundle: Bundle,
        configs: dict[Path, tuple[str, DaemonConfig]],
        wheels: Wheels,
        options: DeployOptions,
        trust: Trust,
        say: Say,
    ):
        self.bundle = bundle
        self.configs = configs
        self.wheels = wheels
        self.options = options
        self.trust = trust
        self.say = say

    async def host(self, target: Target) -> HostResult:
        def say(message: str) -> None:
            self.say(target.name, message)

        opts = self.options
        text, config = self.configs[target.config]
        async with connect(target, self.trust) as remote:
            p = await self._preflight(remote, config, say)
            layout = Layout(p.home)
            with tempfile.TemporaryDirectory(prefix="edgefer-release-") as tmp:
                release = await self._release(target, p, text, config, Path(tmp))
                if opts.dry_run:
                    plan = await self._plan(remote, release, p)
                    for line in plan.lines(opts.health_timeout):
                        say("plan: " + line)
                    return HostResult(target.name, True, "planned", release.id, plan.summary())
                async with device_lock(remote, layout):
                    plan = await self._plan(remote, release, p)
                    if not opts.force and plan.current_is_this:
                        why = await self._why_restart(remote, plan, config)
                        if why is None:
                            say(f"{plan.state.current} is this release and healthy: nothing to do")
                            return HostResult(target.name, True, "up to date", plan.state.current)
                        say(f"{plan.state.current} is this release, but {why}: restarting it")
                        return await self._restart(remote, plan, say)
                    detail = await self._execute(remote, plan, p, say)
        return HostResult(target.name, True, "deployed", release.id, detail)

    async def _preflight(self, remote: Remote, config: DaemonConfig, say) -> Probe:
        """The device probed and checked against the config and the service mode, before
        anything is sent; lingering turned on where a user service needs it."""
        service = self.options.service
        say("probing")
        p = await probe(remote)
        say(p.summary())
        say(f"runtime: {check_supported(p)}")
        check_fit(p, config, service)
        await check_writable(remote, config, service, p.user)
        for camera in missing_cameras(p, config):
            say(f"warning: {camera}, which the device does not have")
        linger = await service_for(service, Layout(p.home)).ensure_linger(
            remote, self.options.dry_run
        )
        if linger:
            say(linger)
        return p

    async def _plan(self, remote: Remote, release: Release, p: Probe) -> Plan:
        layout = Layout(p.home)
        plan = Plan(release, await device_state(remote, layout), layout)
        check_disk(p, plan.need, layout)
        return plan

    async def _why_restart(self, remote: Remote, plan: Plan, config: DaemonConfig) -> str | None:
        """None if the daemon runs `current` (this very content) and is healthy: a rerun changes
        nothing. Else why not. `current` alone proves nothing: a deploy cut off after switching
        it leaves the old release's daemon running, one cut off while stopping leaves none; the
        daemon's own /status says which config, so which release, it loaded."""
        service = service_for(plan.release.service, plan.layout)
        if not await service.running(remote):
            return "no daemon is running"
        ep = await endpoint(remote, config)
        unhealthy = await wait_healthy(remote, service, ep, UP_TO_DATE_WAIT)
        if unhealthy is not None:
            return f"its daemon is not healthy ({unhealthy})"
        loaded = (await snapshot(remote, ep))["config_file"]
        if loaded is None:
            return "the daemon does not say which release it runs"
        if loaded != plan.state.current_config:
            return f"the daemon runs {loaded_release(loaded)}"
        return None

    async def _restart(self, remote: Remote, plan: Plan, say) -> HostResult:
        """`current` (this release) started again, health-checked; `previous` stays as it is."""
        state = plan.state
        took = await activate(
            remote,
            plan.layout,
            state.current,
            Links(state.current, state.previous),
            self.options.health_timeout,
            say,
        )
        return HostResult(
            remote.target.name, True, "restarted", state.current, f"healthy in {took:.0f} s"
        )

    async def _execute(self, remote: Remote, plan: Plan, p: Probe, say) -> str:
        release, state, layout = plan.release, plan.state, plan.layout
        files, sent = await upload(remote, layout, release, state.blobs, say)
        say(
            f"sent {files} new files ({size_text(sent)}); "
            f"{len(release.items) - files} were on the device already"
        )
        bad = await damaged_blobs(remote, layout, release)
        if bad:
            # A power cut during an earlier deploy (or a failing SD card): send those again.
            say(f"{len(bad)} stored file(s) on the device were damaged; sending them again")
            whole = {i.sha256 for i in release.items} - bad
            files, resent = await upload(remote, layout, release, whole, say)
            sent += resent
            bad = await damaged_blobs(remote, layout, release)
            if bad:
                raise HostError(
                    f"{len(bad)} file(s) are still damaged on the device after sending them "
                    f"again (e.g. {layout.blobs}/{min(bad)}): check its storage"
                )
        await assemble(remote, layout, release)
        try:
            if plan.new_venv:
                await make_venv(remote, layout, release, p.python_path, say)
            took = await activate(
                remote,
                layout,
                release.id,
                Links(state.current, state.previous),
                self.options.health_timeout,
                say,
            )
        except HostError:
            # What runs is what ran before; a release that never ran is not kept.
            await remove_release(remote, layout, release.id)
            raise
        removed = await prune(remote, layout, self.options.keep)
        return (
            f"healthy in {took:.0f} s; sent {size_text(sent)}"
            + (", new venv" if plan.new_venv else "")
            + (f"; pruned {len(removed)} old release(s)" if removed else "")
        )

    async def _release(
        self, target: Target, p: Probe, text: str, config: DaemonConfig, tmp: Path
    ) -> Release:
        wheels = wheel_items(await self.wheels(p))
        system_site = any(c.source.uri == "picamera2" for c in config.cameras.values())
        key = venv_key(p.py, p.arch, wheels, self.options.offline, system_site)
        layout = Layout(p.home)
        (tmp / "edgefer.toml").write_text(text)
        (tmp / "edgefer.service").write_text(
            unit_text(self.options.service, layout, p.user, p.group)
        )
        generated = {
            "edgefer.toml": tmp / "edgefer.toml",
            "edgefer.service": tmp / "edgefer.service",
        }
        return make_release(
            self.bundle,
            generated,
            wheels,
            key,
            self.options.service,
            str(target.config),
            self.options.offline,
            system_site,
            tmp,
        )
