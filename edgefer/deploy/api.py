"""What `edgefer deploy` does, as four calls: `push` a bundle, and `status`, `logs` and
`rollback` for what is deployed. Each takes plain arguments (which devices and how to reach them,
the options, a progress callback) and returns one HostResult a device, in the devices' order; the
CLI only parses options into these and prints what comes back, so a script or another front end
deploys exactly as `edgefer deploy` does.

Bad input (a host address, the inventory, the bundle, a config, the wheel) raises EdgeferError
before any device is touched; what goes wrong on one device is that device's HostResult, and the
others carry on.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from edgefer.deploy import manage
from edgefer.deploy.config import read_configs
from edgefer.deploy.fleet import HostResult, Say, run_on_hosts
from edgefer.deploy.hosts import Target, resolve_targets
from edgefer.deploy.release import EDGEFER_WHEEL, verify_bundle
from edgefer.deploy.rollout import DeployOptions, Rollout
from edgefer.deploy.ssh import Trust
from edgefer.deploy.wheel import Wheels, edgefer_wheel
from edgefer.errors import EdgeferError

KNOWN_HOSTS = Path("~/.ssh/known_hosts").expanduser()


@dataclass(frozen=True)
class Devices:
    """Which devices, and how to reach them: what every deploy command takes."""

    hosts: tuple[str, ...] = ()  # USER@HOST[:PORT], each named by its address
    inventory: Path | None = None  # hosts.toml (docs/FLEET.md)
    identity: Path | None = None  # the key to offer where the inventory names none
    known_hosts: Path = KNOWN_HOSTS
    accept_new_host_key: bool = False  # trust and record a device's key not yet known
    parallel: int = 8  # devices worked on at once
    connect_timeout: float = 15.0  # seconds a device has to answer

    def targets(self, config: Path | None = None) -> list[Target]:
        """Every device once, checked; `config` for those the inventory gives none."""
        return resolve_targets(self.hosts, self.inventory, config, self.identity)

    def trust(self, read_only: bool = False) -> Trust:
        return Trust(self.known_hosts, self.accept_new_host_key, read_only, self.connect_timeout)


def _silent(host: str, message: str) -> None:
    """The progress callback of a caller that wants none."""


def push(
    devices: Devices, bundle: Path, options: DeployOptions | None = None, say: Say = _silent
) -> list[HostResult]:
    """Deploy `bundle` to every device: probe, ship a release, start the daemon, check /healthz,
    roll back on failure. The bundle, every config and the wheel are checked first."""
    options = options or DeployOptions()
    targets = devices.targets(options.config)
    trust = devices.trust(read_only=options.dry_run)
    wheel = options.wheel
    if wheel and not EDGEFER_WHEEL.match(wheel.name):
        raise EdgeferError(f"--wheel {wheel}: expected the edgefer wheel, edgefer-VERSION-TAGS.whl")
    verified = verify_bundle(bundle)
    configs = read_configs(targets, verified)
    wheel = wheel or edgefer_wheel(lambda message: say("*", message))
    wheels = Wheels(wheel, options.offline, say)
    rollout = Rollout(verified, configs, wheels, options, trust, say)
    return run_on_hosts(targets, rollout.host, devices.parallel)


def status(devices: Devices) -> list[HostResult]:
    """Release, bundle, service, health, uptime and FPS of each device (HostResult.columns)."""
    return _each(devices, manage.status)


def logs(devices: Devices, lines: int = 50) -> list[HostResult]:
    """The daemon's last `lines` log lines from each device (HostResult.details)."""
    return _each(devices, lambda target, trust: manage.logs(target, trust, lines))


def rollback(
    devices: Devices, health_timeout: float = 60.0, say: Say = _silent
) -> list[HostResult]:
    """The previous release current again on each device, health-checked (again: undone)."""
    return _each(devices, lambda target, trust: manage.rollback(target, trust, health_timeout, say))


def _each(
    devices: Devices, job: Callable[[Target, Trust], Awaitable[HostResult]]
) -> list[HostResult]:
    """`job` on every device. None of these needs a config: each reads the device's own record
    of what is deployed there."""
    trust = devices.trust()
    return run_on_hosts(devices.targets(), lambda target: job(target, trust), devices.parallel)
