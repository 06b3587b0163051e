"""The daemon config a release ships, checked here before any host is touched.

It is validated with the daemon's own model, so a key the daemon would refuse is refused now,
once, not on fifty devices. Secret files (token_file, password_file) are device paths and stay
unread here; the bundle key is the release's own (the daemon is started with it). The status
server needs a fixed port: the deploy's health check has to know where to ask.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from pydantic import ValidationError

from edgefer.device.daemon_config import DaemonConfig
from edgefer.errors import EdgeferError, shown


def parse_config(text: str, where: str) -> DaemonConfig:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise EdgeferError(f"{where}: not valid TOML ({shown(exc, 200)})") from None
    data.pop("bundle", None)  # replaced by the release's bundle when the daemon starts
    try:
        config = DaemonConfig.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err["loc"]) or "(top level)"
        raise EdgeferError(f"{where}: key {shown(key)}: {shown(err['msg'], 200)}") from None
    if config.server.port == 0:
        raise EdgeferError(
            f"{where}: key server.port: 0 picks a random port; deploy needs a fixed one to check "
            "/healthz (the default is 8765)"
        )
    return config


def read_config(path: Path | None) -> tuple[str, DaemonConfig]:
    """(text, validated config) of a local config file."""
    if path is None:
        raise EdgeferError(
            "no daemon config: pass --config edgefer.toml (start from device/edgefer.example.toml, "
            "or `edgefer daemon --print-config`) or name one in the inventory"
        )
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise EdgeferError(f"{path}: cannot read ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise EdgeferError(f"{path}: not UTF-8 text; expected a TOML config") from None
    return text, parse_config(text, str(path))
