"""The daemon config a release ships, checked here before any host is touched.

It is validated with the daemon's own model, so a key the daemon would refuse is refused now,
once, not on fifty devices. Secrets stay on the devices: a config that holds one inline (the
status server's token, the MQTT password) is refused, since every release would copy it to
every device it goes to; their *_file keys are device paths and stay unread here. The bundle
key is the release's own (the daemon is started with it). The status server needs a fixed
port: the deploy's health check has to know where to ask.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from pydantic import ValidationError

from edgefer.deploy.hosts import Target
from edgefer.deploy.release import Bundle
from edgefer.device.backends import choose_artifact
from edgefer.device.daemon.config import SECRET_KEYS, DaemonConfig
from edgefer.errors import EdgeferError, shown, validation_line


def parse_config(text: str, where: str) -> DaemonConfig:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise EdgeferError(f"{where}: not valid TOML ({shown(exc, 200)})") from None
    data.pop("bundle", None)  # replaced by the release's bundle when the daemon starts
    try:
        # The device's paths: `~` is the device user's home, not this machine's.
        config = DaemonConfig.model_validate(data, context={"device": True})
    except ValidationError as exc:
        raise EdgeferError(f"{where}: {validation_line(exc)}") from None
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
            "no daemon config: pass --config edgefer.toml (start from device/daemon/edgefer.example.toml, "
            "or `edgefer daemon --print-config`) or name one in the inventory"
        )
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise EdgeferError(f"{path}: cannot read ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise EdgeferError(f"{path}: not UTF-8 text; expected a TOML config") from None
    config = parse_config(text, str(path))
    refuse_inline_secrets(tomllib.loads(text), path)
    return text, config


def read_configs(targets: list[Target], bundle: Bundle) -> dict[Path, tuple[str, DaemonConfig]]:
    """Every target's config, checked against the bundle: a config that asks for a model or
    detector the bundle lacks is refused here, not by fifty daemons at start."""
    configs = {}
    for t in targets:
        if t.config not in configs:
            text, config = read_config(t.config)
            try:
                choose_artifact(bundle.manifest, config.backend)
                for camera in config.cameras.values():
                    camera.detector.check_bundle(bundle.manifest)
            except EdgeferError as exc:
                raise EdgeferError(f"{t.config}: {exc}") from None
            configs[t.config] = text, config
    return configs


def refuse_inline_secrets(data: dict, path: Path) -> None:
    """A shipped config names its secrets' files, never the secrets themselves."""
    for keys in sorted(SECRET_KEYS):
        node = data
        for k in keys:
            node = node.get(k) if isinstance(node, dict) else None
        if node is not None:
            key = ".".join(keys)
            raise EdgeferError(
                f"{path}: key {key}: a secret inline would be copied into every release on every "
                f"device; put it in a file on the devices and name that with {key}_file"
            )
