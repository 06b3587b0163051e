"""`edgefer deploy BUNDLE`: one host's deploy, from probe to healthy (or back where it was).

Everything that can be checked here is checked before the first host is touched (the bundle
against its manifest, every config, the wheels); each host is then probed, planned against what
it already has, and changed only if the plan fits (architecture, Python, disk, Edge TPU, systemd).
A dry run stops after the plan.
"""

from __future__ import annotations

import asyncio
import tempfile
from dataclasses import dataclass
from pathlib import Path

from edgefer.deploy.activate import Links, activate
from edgefer.deploy.config import read_config
from edgefer.deploy.errors import HostError
from edgefer.deploy.fleet import HostResult, Say
from edgefer.deploy.health import endpoint, loaded_release, snapshot, wait_healthy
from edgefer.deploy.hosts import Target
from edgefer.deploy.layout import Layout
from edgefer.deploy.preflight import check_disk, check_fit, check_writable, missing_camera
from edgefer.deploy.probe import Probe, check_supported, probe
from edgefer.deploy.release import (
    Bundle,
    Release,
    make_release,
    size_text,
    venv_key,
    wheel_items,
)
from edgefer.deploy.service import service_for
from edgefer.deploy.ship import (
    DeviceState,
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
from edgefer.device.backends import choose_artifact
from edgefer.device.daemon_config import DaemonConfig
from edgefer.errors import EdgeferError

# What a new venv takes on the device (numpy, OpenCV, ai-edge-litert and the rest: 343 MB
# measured on x86_64).
VENV_BYTES = 400_000_000
UP_TO_DATE_WAIT = 5.0  # seconds a running daemon of the same release has to say it is healthy


@dataclass(frozen=True)
class DeployOptions:
    trust: Trust
    service: str = "user"
    offline: bool = False
    dry_run: bool = False
    health_timeout: float = 60.0
    keep: int = 3
    force: bool = False  # deploy even when the device already runs this very release


class Deploy:
    """One run: the checked inputs, shared by every host."""

    def __init__(
        self,
        bundle: Bundle,
        configs: dict[Path, tuple[str, DaemonConfig]],
        wheels,
        options: DeployOptions,
        say: Say,
    ):
        self.bundle = bundle
        self.configs = configs
        self.wheels = wheels  # async (Probe) -> list[Path]
        self.options = options
        self.say = say

    @staticmethod
    def read_configs(targets: list[Target], bundle: Bundle) -> dict[Path, tuple[str, DaemonConfig]]:
        """Every target's config, checked against the bundle: a config that asks for a model
        or detector the bundle lacks is refused here, not by fifty daemons at start."""
        configs = {}
        for t in targets:
            if t.config not in configs:
                text, config = read_config(t.config)
                try:
                    choose_artifact(bundle.manifest, config.backend)
                    if config.detector.kind == "blazeface":
                        bundle.manifest.detector(config.detector.blazeface_range)
                except EdgeferError as exc:
                    raise EdgeferError(f"{t.config}: {exc}") from None
                configs[t.config] = text, config
        return configs

    async def host(self, target: Target) -> HostResult:
        def say(message: str) -> None:
            self.say(target.name, message)

        opts = self.options
        text, config = self.configs[target.config]
        async with connect(target, opts.trust) as remote:
            say("probing")
            p = await probe(remote)
            say(p.summary())
            say(f"runtime: {check_supported(p)}")
            check_fit(p, config, opts.service)
            await check_writable(remote, config, opts.service, p.user)
            camera = missing_camera(p, config)
            if camera:
                say(f"warning: the config reads {camera}, which the device does not have")
            layout = Layout(p.home)
            if opts.service != "none" and p.systemd:
                linger = await service_for(opts.service, layout).ensure_linger(remote, opts.dry_run)
                if linger:
                    say(linger)
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
                        return await self._restart(remote, plan, target)
                    detail = await self._execute(remote, plan, p, say)
        return HostResult(target.name, True, "deployed", release.id, detail)

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

    async def _restart(self, remote: Remote, plan: Plan, target: Target) -> HostResult:
        """`current` (this release) started again, health-checked; `previous` stays as it is."""
        state = plan.state
        took = await activate(
            remote,
            plan.layout,
            state.current,
            Links(state.current, state.previous),
            self.options.health_timeout,
            lambda message: self.say(target.name, message),
        )
        return HostResult(target.name, True, "restarted", state.current, f"healthy in {took:.0f} s")

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
        system_site = config.source.uri == "picamera2"
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


class Plan:
    """What a deploy will do to one device, given what the device has."""

    def __init__(self, release: Release, state: DeviceState, layout: Layout):
        self.release, self.state, self.layout = release, state, layout
        self.new = {i.sha256: i for i in release.items if i.sha256 not in state.blobs}
        self.new_venv = release.venv_key not in state.venvs
        self.send = sum(i.size for i in self.new.values())
        self.need = self.send + (VENV_BYTES if self.new_venv else 0)

    @property
    def current_is_this(self) -> bool:
        """`current` holds this very content, its venv complete: a restart is all it can need
        (whether its daemon runs is another matter)."""
        meta = self.state.current_meta
        return (
            meta is not None and meta.get("content") == self.release.content and not self.new_venv
        )

    def summary(self) -> str:
        return (
            f"send {len(self.new)} of {len(self.release.items)} files "
            f"({size_text(self.send)}), " + ("new venv" if self.new_venv else "reuse venv")
        )

    def lines(self, health_timeout: float) -> list[str]:
        r, b = self.release, self.release.bundle
        source = "the shipped wheelhouse" if r.offline else "the device's package index"
        return [
            (
                f"release {r.id}: bundle {b.manifest.arch} (manifest sha256 {b.sha256[:12]}), "
                f"config {r.config_name}"
            ),
            (
                f"send {len(self.new)} of {len(r.items)} files ({size_text(self.send)}) to "
                f"{self.layout.blobs}; the rest are there already"
            ),
            f"make venv {r.venv_key} from {source}"
            if self.new_venv
            else f"reuse venv {r.venv_key}",
            f"switch {self.layout.current}: {self.state.current or 'none'} -> {r.id}",
            (
                f"start the daemon ({r.service} service), wait for /healthz (up to "
                f"{health_timeout:g} s), roll back to {self.state.current or 'nothing'} on failure"
            ),
        ]


class Wheels:
    """The wheels a device installs: the edgefer wheel alone (its dependencies come from the
    device's package index), or with --offline a wheelhouse for the device's platform and Python,
    built here once per platform and run."""

    def __init__(self, edgefer_wheel: Path, offline: bool, say):
        self.edgefer_wheel = edgefer_wheel
        self.offline = offline
        self.say = say
        self._built: dict[tuple, list[Path] | HostError] = {}
        self._lock = asyncio.Lock()

    async def __call__(self, p: Probe) -> list[Path]:
        if not self.offline:
            return [self.edgefer_wheel]
        platform = (p.arch, p.py, p.glibc)
        async with self._lock:  # hosts of one platform share one build, or its failure
            if platform not in self._built:
                try:
                    self._built[platform] = await asyncio.to_thread(self._build, *platform)
                except EdgeferError as exc:
                    self._built[platform] = HostError(str(exc))
        built = self._built[platform]
        if isinstance(built, HostError):
            raise built
        return built

    def _build(self, arch: str, python: str, glibc: tuple[int, int]) -> list[Path]:
        from edgefer.deploy.wheelhouse import build_wheelhouse

        where = f"wheelhouse {arch}-cp{python}-glibc{glibc[0]}.{glibc[1]}"
        self.say("*", f"building the {where}")
        return build_wheelhouse(
            self.edgefer_wheel,
            arch=arch,
            python=python,
            glibc=glibc,
            progress=lambda message: self.say(where, message),
            reuse=True,  # the wheels of an earlier deploy, with no index, when they do
        )
