"""`edgefer daemon`: the camera service (device/daemon/loop.py). Exit 2 for a bad config or a bundle
that does not fit; 1 for a failure at run time that retrying cannot fix."""

from __future__ import annotations

import json
import logging

import click


@click.command()
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    help="TOML config (see device/daemon/edgefer.example.toml); EDGEFER_* variables override it.",
)
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override one key, e.g. --set source.uri=/dev/video0 (not for secrets).",
)
@click.option(
    "--print-config", is_flag=True, help="Print the resolved config (secrets masked) and exit."
)
@click.option(
    "--schema", is_flag=True, help="Print the config's JSON Schema (for editors) and exit."
)
def daemon(config_path, overrides, print_config, schema):
    """Run the camera detection daemon until SIGTERM/SIGINT (SIGHUP re-reads the config)."""
    from edgefer.device.daemon.config import DaemonConfig, load_config
    from edgefer.device.daemon.loop import Daemon

    if schema:
        click.echo(json.dumps(DaemonConfig.model_json_schema(), indent=2))
        return
    config = load_config(config_path, list(overrides))
    if print_config:
        click.echo(json.dumps(config.masked(), indent=2))
        return
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    service = Daemon(config, config_path, overrides)
    service.install_signal_handlers()
    raise SystemExit(service.run())
