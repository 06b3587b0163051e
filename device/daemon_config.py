"""The camera daemon's one validated configuration: a TOML file, then EDGEFER_* environment
variables, then command-line `--set key=value` overrides, checked with pydantic on load.

Every error names the file (or variable, or flag), the key and what was expected, so a daemon
that will run unattended for weeks refuses a bad config at start (exit 2) instead of failing at
3 a.m. Secrets (the MQTT password, the status server's bearer token) may come from a file or the
environment, never from the command line, and are masked when the config is printed.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from ipaddress import ip_address
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from edgefer.errors import EdgeferError, shown

ENV_PREFIX = "EDGEFER_"


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceConfig(Section):
    """A camera index, /dev/videoN, an RTSP/HTTP URL, a video file, or "picamera2"."""

    uri: str = "0"
    loop: bool = False  # restart a video file at its end (tests, demos)
    # A video file plays at its own frame rate, as a camera would deliver it; false: every frame,
    # as fast as the daemon processes them (benchmarks, a batch run over recorded video).
    pace: bool = True
    max_fps: float = Field(0, ge=0)  # 0 = as fast as frames come
    stall_seconds: float = Field(5, gt=0)  # no frame for this long = reconnect
    reconnect_max_seconds: float = Field(30, gt=0)  # backoff ceiling


class DetectorConfig(Section):
    kind: Literal["haar", "blazeface"] = "haar"
    blazeface_range: Literal["short", "full"] = "short"
    threshold: float = Field(0.5, gt=0, lt=1)


class TrackingSection(Section):
    iou_threshold: float = Field(0.3, gt=0, le=1)
    lost_after: float = Field(1.0, gt=0)
    smoothing: Literal["ema", "vote"] = "ema"
    ema_alpha: float = Field(0.3, gt=0, le=1)
    vote_window: int = Field(10, ge=1)


class EventsConfig(Section):
    min_hold: float = Field(1.0, ge=0)
    summary_interval: float = Field(60, gt=0)


class JsonlConfig(Section):
    path: Path
    max_bytes: int = Field(10_000_000, ge=1024)
    backups: int = Field(5, ge=0)


class MqttConfig(Section):
    host: str
    port: int = Field(1883, ge=1, le=65535)
    topic_prefix: str = "edgefer"
    client_id: str | None = None
    username: str | None = None
    password: SecretStr | None = None  # from password_file or EDGEFER_OUTPUTS__MQTT__PASSWORD
    password_file: Path | None = None
    tls: bool = False
    ca_file: Path | None = None
    spool_dir: Path = Path("/var/lib/edgefer/spool")
    spool_max_bytes: int = Field(50_000_000, ge=1024)


class WebhookConfig(Section):
    url: str = Field(pattern=r"^https?://")
    timeout: float = Field(5, gt=0)
    retries: int = Field(5, ge=0)


class OutputsConfig(Section):
    jsonl: JsonlConfig | None = None
    mqtt: MqttConfig | None = None
    webhook: WebhookConfig | None = None


class ServerConfig(Section):
    bind: str = "127.0.0.1"
    port: int = Field(8765, ge=0, le=65535)
    token: SecretStr | None = None  # required for any non-loopback bind
    token_file: Path | None = None
    preview: bool = False  # the annotated camera image on the status page

    @model_validator(mode="after")
    def _token_off_loopback(self):
        try:
            loopback = ip_address(self.bind).is_loopback
        except ValueError:
            loopback = self.bind == "localhost"
        if not loopback and self.token is None and self.token_file is None:
            raise ValueError(
                f"bind {self.bind} is not loopback: set token_file (or "
                f"EDGEFER_SERVER__TOKEN) so the status server is not open to anyone"
            )
        return self


class DaemonConfig(Section):
    # A directory or a bundled name (edge, edge-fast); default: edge. A str, not a Path: Path would
    # turn ./edge into the name edge.
    bundle: str | None = None
    backend: Literal["cpu", "edgetpu", "gpu", "external", "onnx"] = "cpu"
    threads: int = Field(1, ge=1, le=64)
    margin: float = Field(0.0, ge=0, le=1)
    source: SourceConfig = SourceConfig()
    detector: DetectorConfig = DetectorConfig()
    tracking: TrackingSection = TrackingSection()
    events: EventsConfig = EventsConfig()
    outputs: OutputsConfig = OutputsConfig()
    server: ServerConfig = ServerConfig()

    def masked(self) -> dict:
        """The resolved config as JSON-ready data, secrets shown as '***'."""
        data = json.loads(self.model_dump_json())  # SecretStr dumps as '**********'
        data["source"]["uri"] = redact_uri(self.source.uri)
        return data


def redact_uri(uri: str) -> str:
    """`uri` with the password in it, if any, shown as ***: network cameras are commonly
    rtsp://user:password@host/..., and the URI goes to logs, /status and --print-config."""
    return re.sub(r"^([a-z][a-z0-9+.-]*://[^/@:]*):[^/@]*@", r"\1:***@", uri, flags=re.IGNORECASE)


SECRET_KEYS = {("outputs", "mqtt", "password"), ("server", "token")}


def load_config(
    path: str | Path | None, overrides: list[str] = (), environ: dict | None = None
) -> DaemonConfig:
    """TOML file <- EDGEFER_SECTION__KEY environment variables <- `key.path=value` overrides."""
    data: dict = {}
    if path is not None:
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise EdgeferError(f"{path}: cannot read ({exc.strerror})") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise EdgeferError(f"{path}: not valid TOML ({shown(exc, 200)})") from None
    for name, value in sorted((environ if environ is not None else os.environ).items()):
        keys = tuple(k.lower() for k in name[len(ENV_PREFIX) :].split("__"))
        # Only variables that name a config field: EDGEFER_VERBOSE and the like are not config.
        if name.startswith(ENV_PREFIX) and keys[0] in DaemonConfig.model_fields:
            _set(data, keys, value, f"environment variable {name}")
    for item in overrides:
        key, sep, value = item.partition("=")
        keys = tuple(key.strip().split("."))
        if not sep or not all(keys):
            raise EdgeferError(f"--set {shown(item)}: expected key.path=value")
        if keys in SECRET_KEYS:
            raise EdgeferError(
                f"--set {key}: secrets never go on the command line (they show in "
                f"ps and shell history); use a *_file key or the environment"
            )
        _set(data, keys, value, f"--set {key}")
    try:
        config = DaemonConfig.model_validate(_with_secret_files(data))
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        origin = f"{path}: " if path is not None else ""
        raise EdgeferError(f"{origin}key {shown(where)}: {shown(err['msg'], 200)}") from None
    return config


def _set(data: dict, keys: tuple[str, ...], value: str, origin: str) -> None:
    """Put a text value at a key path; TOML syntax is tried first so numbers and booleans keep
    their types (EDGEFER_THREADS=2 is the integer 2)."""
    node = data
    for k in keys[:-1]:
        node = node.setdefault(k, {})
        if not isinstance(node, dict):
            raise EdgeferError(f"{origin}: {'.'.join(keys)} goes through a value, not a table")
    try:
        node[keys[-1]] = tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        node[keys[-1]] = value


def _with_secret_files(data: dict) -> dict:
    """Read mqtt.password_file and server.token_file into the secret they hold."""
    for section, key in ((("outputs", "mqtt"), "password"), (("server",), "token")):
        node = data
        for k in section:
            node = node.get(k, {}) if isinstance(node, dict) else {}
        file = node.get(f"{key}_file") if isinstance(node, dict) else None
        if file and key not in node:
            try:
                node[key] = Path(file).read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise EdgeferError(
                    f"{file}: cannot read the {'.'.join(section)}.{key}_file ({exc.strerror})"
                ) from None
    return data
