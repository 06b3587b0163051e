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

from edgefer.cli.common import apply_options, bundle_param, format_table


class DeployGroup(click.Group):
    """`edgefer deploy BUNDLE ...` is `edgefer deploy push BUNDLE ...`: a first argument that is
    not a subcommand is the bundle."""

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = ["push", *args]
        return super().parse_args(ctx, args)


HOST_OPTIONS = [
    click.option(
        "--host",
        "hosts",
        multiple=True,
        metavar="USER@HOST[:PORT]",
        help="A device (repeat for more).",
    ),
    click.option(
        "--inventory",
        type=click.Path(dir_okay=False, exists=True, path_type=Path),
        help="TOML inventory of devices (see docs/FLEET.md).",
    ),
    click.option(
        "--identity",
        type=click.Path(dir_okay=False, exists=True, path_type=Path),
        help="Private key to offer (default: the ssh-agent's and ~/.ssh's keys). Keys only: "
        "no password is ever sent.",
    ),
    click.option(
        "--known-hosts",
        type=click.Path(dir_okay=False, path_type=Path),
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
host_options = apply_options(HOST_OPTIONS)


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


def _devices(kw):
    """The devices of a command, from its host options (the rest of `kw` is --verbose)."""
    from edgefer.deploy import Devices

    _quiet(kw.pop("verbose"))
    return Devices(**kw)


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
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
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
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="edgefer wheel to install (default: built from this checkout).",
)
@click.option("--force", is_flag=True, help="Deploy even to a device that runs this release.")
def push_cmd(bundle, config, service, offline, dry_run, health_timeout, keep, wheel, force, **kw):
    """Deploy BUNDLE (a directory, or a bundled model by name: edge, edge-fast): probe, ship a
    release, start the daemon, check /healthz, roll back on failure."""
    from edgefer.deploy import DeployOptions, push

    options = DeployOptions(config, service, offline, dry_run, health_timeout, keep, wheel, force)
    _finish(push(_devices(kw), bundle, options, _say))


@deploy.command("status")
@host_options
def status_cmd(**kw):
    """Release, bundle, service, health, uptime and FPS of each device."""
    from edgefer.deploy import status

    results = status(_devices(kw))
    _finish(results, ("release", "bundle", "service", "health", "uptime", "fps", "detail"))


@deploy.command("logs")
@host_options
@click.option("-n", "--lines", type=click.IntRange(1, 10000), default=50, show_default=True)
def logs_cmd(lines, **kw):
    """The daemon's last log lines from each device."""
    from edgefer.deploy import logs

    _finish(logs(_devices(kw), lines), details_out=True)


@deploy.command("rollback")
@host_options
@health_option
def rollback_cmd(health_timeout, **kw):
    """Make the previous release current again (health-checked; run again to undo)."""
    from edgefer.deploy import rollback

    _finish(rollback(_devices(kw), health_timeout, _say))
