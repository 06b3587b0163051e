"""`edgefer deploy`: a bundle and a configured daemon onto devices over SSH (edgefer/deploy/).

`edgefer deploy BUNDLE --host ...` deploys; `status`, `logs` and `rollback` look after what is
deployed. Progress goes to stderr, one `[host]` line at a time; a summary table of every host
ends each run on stdout, and the exit code is 1 if any host failed (2 for bad input, refused
before any host is touched).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import click

from edgefer.cli.common import bundle_param, format_table


class DeployGroup(click.Group):
    """`edgefer deploy BUNDLE ...` is `edgefer deploy push BUNDLE ...`: a first argument that is
    not a subcommand is the bundle."""

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = ["push", *args]
        return super().parse_args(ctx, args)


def host_options(f):
    options = [
        click.option(
            "--host",
            "hosts",
            multiple=True,
            metavar="USER@HOST[:PORT]",
            help="A device (repeat for more).",
        ),
        click.option(
            "--inventory",
            type=click.Path(dir_okay=False, exists=True),
            help="TOML inventory of devices (see docs/FLEET.md).",
        ),
        click.option(
            "--identity",
            type=click.Path(dir_okay=False, exists=True),
            help="Private key to offer (default: the ssh-agent's and ~/.ssh's keys). Keys only: "
            "no password is ever sent.",
        ),
        click.option(
            "--known-hosts",
            type=click.Path(dir_okay=False),
            default=str(Path("~/.ssh/known_hosts").expanduser()),
            show_default=True,
            help="Host keys the devices must match.",
        ),
        click.option(
            "--accept-new-host-key",
            is_flag=True,
            help="Trust and record the key of a device not yet in known_hosts (a changed key "
            "is still refused).",
        ),
        click.option(
            "--parallel",
            type=click.IntRange(1, 256),
            default=8,
            show_default=True,
            help="Devices worked on at once.",
        ),
        click.option(
            "--connect-timeout",
            type=click.FloatRange(1, 600),
            default=15,
            show_default=True,
            help="Seconds to wait for a device to answer.",
        ),
        click.option(
            "--verbose",
            is_flag=True,
            help="Show other libraries' warnings too (asyncssh's, cryptography's).",
        ),
    ]
    for option in reversed(options):
        f = option(f)
    return f


health_option = click.option(
    "--health-timeout",
    type=click.FloatRange(1, 3600),
    default=60,
    show_default=True,
    help="Seconds the daemon has to answer /healthz with 200 before it is rolled back.",
)


def _quiet(verbose: bool) -> None:
    """Keep other libraries' warnings off the terminal unless --verbose (here or `edgefer
    --verbose`): asyncssh with a current `cryptography` says ten times, on import, that DSA is
    deprecated, which nobody deploying can act on. edgefer's own warnings still show."""
    if verbose or os.environ.get("EDGEFER_VERBOSE"):
        return
    warnings.filterwarnings("ignore")
    warnings.filterwarnings("default", module=r"edgefer(\.|$)")


def _setup(kw, dry_run=False, config=None):
    from edgefer.deploy.hosts import resolve_targets
    from edgefer.deploy.ssh import Trust

    _quiet(kw["verbose"])
    targets = resolve_targets(
        kw["hosts"],
        kw["inventory"],
        Path(config) if config else None,
        Path(kw["identity"]) if kw["identity"] else None,
    )
    trust = Trust(
        Path(kw["known_hosts"]), kw["accept_new_host_key"], dry_run, kw["connect_timeout"]
    )
    return targets, trust


def _say(host: str, message: str) -> None:
    click.echo(f"[{host}] {message}", err=True)


def _finish(results, columns=("result", "release", "detail"), details_out=False) -> None:
    """Details under each host (on stdout when they are the output), the summary table, and
    exit 1 if any host failed."""
    for r in results:
        if not r.ok:
            _say(r.host, f"FAILED: {r.detail}")
        for line in r.details:
            click.echo(f"[{r.host}] {'' if details_out else '  '}{line}", err=not details_out)
    rows = []
    for r in results:
        values = {"result": r.result, "release": r.release, "detail": r.detail, **r.columns}
        rows.append([r.host, *(values.get(c) or "-" for c in columns)])
    click.echo(format_table(["HOST", *(c.upper() for c in columns)], rows))
    failed = sum(not r.ok for r in results)
    if failed:
        click.echo(f"{failed} of {len(results)} host(s) failed", err=True)
        raise SystemExit(1)


@click.group(cls=DeployGroup)
def deploy():
    """Deploy a bundle and its daemon to devices over SSH, and look after them.

    \b
    edgefer deploy BUNDLE --host pi@kitchen.local --config edgefer.toml
    edgefer deploy status|logs|rollback --host pi@kitchen.local
    """


@deploy.command("push")
@click.argument("bundle", callback=bundle_param)
@host_options
@click.option(
    "--config",
    type=click.Path(dir_okay=False, exists=True),
    help="Daemon config (TOML) for every device without its own in the inventory.",
)
@click.option(
    "--service",
    type=click.Choice(["user", "system", "none"]),
    default="user",
    show_default=True,
    help="systemd user service (with lingering), system service (passwordless sudo), or none: "
    "start the daemon directly, unsupervised (no systemd, e.g. containers).",
)
@click.option(
    "--offline",
    is_flag=True,
    help="Devices without internet: ship a wheelhouse built here for each device's platform.",
)
@click.option("--dry-run", is_flag=True, help="Probe and print each device's plan; change nothing.")
@health_option
@click.option(
    "--keep",
    type=click.IntRange(2, 100),
    default=3,
    show_default=True,
    help="Releases kept on each device (older ones, and what only they use, are removed).",
)
@click.option(
    "--wheel",
    type=click.Path(dir_okay=False, exists=True),
    help="edgefer wheel to install (default: built from this checkout).",
)
@click.option("--force", is_flag=True, help="Deploy even to a device that runs this release.")
def push(bundle, config, service, offline, dry_run, health_timeout, keep, wheel, force, **kw):
    """Deploy BUNDLE (a directory, or a bundled model by name: edge, edge-fast): probe, ship a
    release, start the daemon, check /healthz, roll back on failure."""
    from edgefer.deploy.fleet import run_on_hosts
    from edgefer.deploy.push import Deploy, DeployOptions, Wheels
    from edgefer.deploy.release import EDGEFER_WHEEL, verify_bundle
    from edgefer.deploy.wheel import edgefer_wheel
    from edgefer.errors import EdgeferError

    targets, trust = _setup(kw, dry_run, config)
    if wheel and not EDGEFER_WHEEL.match(Path(wheel).name):
        raise EdgeferError(f"--wheel {wheel}: expected the edgefer wheel, edgefer-VERSION-TAGS.whl")
    verified = verify_bundle(bundle)
    configs = Deploy.read_configs(targets, verified)
    wheel = Path(wheel) if wheel else edgefer_wheel(lambda m: _say("*", m))
    options = DeployOptions(trust, service, offline, dry_run, health_timeout, keep, force)
    job = Deploy(verified, configs, Wheels(wheel, offline, _say), options, _say)
    _finish(run_on_hosts(targets, job.host, kw["parallel"]))


@deploy.command()
@host_options
def status(**kw):
    """Release, bundle, service, health, uptime and FPS of each device."""
    from edgefer.deploy import manage
    from edgefer.deploy.fleet import run_on_hosts

    targets, trust = _setup(kw)
    results = run_on_hosts(targets, lambda t: manage.status(t, trust), kw["parallel"])
    _finish(results, ("release", "bundle", "service", "health", "uptime", "fps", "detail"))


@deploy.command()
@host_options
@click.option("-n", "--lines", type=click.IntRange(1, 10000), default=50, show_default=True)
def logs(lines, **kw):
    """The daemon's last log lines from each device."""
    from edgefer.deploy import manage
    from edgefer.deploy.fleet import run_on_hosts

    targets, trust = _setup(kw)
    results = run_on_hosts(targets, lambda t: manage.logs(t, trust, lines), kw["parallel"])
    _finish(results, details_out=True)


@deploy.command()
@host_options
@health_option
def rollback(health_timeout, **kw):
    """Make the previous release current again (health-checked; run again to undo)."""
    from edgefer.deploy import manage
    from edgefer.deploy.fleet import run_on_hosts

    targets, trust = _setup(kw)
    results = run_on_hosts(
        targets, lambda t: manage.rollback(t, trust, health_timeout, _say), kw["parallel"]
    )
    _finish(results)
