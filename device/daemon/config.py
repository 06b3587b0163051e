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
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from edgefer.device.pipeline_config import DetectorConfig, PipelineConfig, Section, invalid
from edgefer.errors import EdgeferError, shown, validation_line

ENV_PREFIX = "EDGEFER_"


def state_directory(environ: dict | None = None) -> Path:
    """Where the daemon's relative state paths (events, the MQTT spool) go. Under systemd it is
    the unit's StateDirectory= ($STATE_DIRECTORY), which systemd creates writable for the
    daemon and keeps out of the sandbox: /var/lib/edgefer for a system unit, and under the
    user's home for a user unit (~/.config/edgefer with systemd 252, as on Debian 12 and Pi OS
    Bookworm; ~/.local/state/edgefer from systemd 254), where /var/lib is not the user's to
    write (an absolute /var/lib path crash-looped a user unit). Started by hand or by `--service none`: the XDG
    state home, ~/.local/state/edgefer."""
    env = os.environ if environ is None else environ
    given = env.get("STATE_DIRECTORY", "").split(":")[0]
    if given:
        return Path(given)
    xdg = env.get("XDG_STATE_HOME", "")
    return (Path(xdg) if xdg.startswith("/") else Path.home() / ".local/state") / "edgefer"


def _on_device(info: ValidationInfo | None) -> bool:
    """Validated on the workstation for a device (context `{"device": True}`): `~` and relative
    paths stay as they are, for the device's daemon to resolve in its own home and state
    directory."""
    return bool(info and info.context and info.context.get("device"))


def _input(path: Path, info: ValidationInfo | None) -> Path:
    """A file the daemon reads (a secret, a CA): `~` expanded, a relative path refused, since
    it would resolve against the daemon's working directory, a release that a later deploy
    prunes."""
    if not (_on_device(info) and path.parts[:1] == ("~",)):
        path = path.expanduser()
    if not path.is_absolute() and path.parts[:1] != ("~",):
        raise ValueError(f"expected an absolute path or one starting with ~/, got {path}")
    return path


def _state(path: Path, info: ValidationInfo | None) -> Path:
    """A path the daemon writes: absolute, `~/...`, or relative to its state directory, which
    is the default (each kind of service has one that it can write; see state_directory)."""
    if _on_device(info) or path.is_absolute():
        return path
    if path.parts[:1] == ("~",):
        return path.expanduser()
    given = info.context.get("state_directory") if info and info.context else None
    return (given or state_directory()) / path


# What the daemon reads: `~/token` means the daemon user's home.
InputPath = Annotated[Path, AfterValidator(_input)]
# Where the daemon writes: `events.jsonl` means the daemon's state directory.
StatePath = Annotated[Path, AfterValidator(_state)]


class SourceConfig(Section):
    """A camera index, /dev/videoN, an RTSP/HTTP URL, a video file, or "picamera2"."""

    uri: str = "0"
    loop: bool = False  # restart a video file at its end (tests, demos); no effect on a camera
    # A video file plays at its own frame rate, as a camera would deliver it; false: every frame,
    # as fast as the daemon processes them (benchmarks, a batch run over recorded video).
    pace: bool = True
    max_fps: float = Field(0, ge=0)  # 0 = as fast as frames come
    stall_seconds: float = Field(5, gt=0)  # no frame for this long = reconnect
    # Backoff ceiling: a camera plugged back in is read again within this (plus its open time).
    reconnect_max_seconds: float = Field(10, gt=0)


class FaceTrackConfig(Section):
    """[tracking]: how detections become face tracks over time (device/daemon/tracks.py); how
    faces are found between full scans is the detector's ROI search (device/detector.py)."""

    iou_threshold: float = Field(0.3, gt=0, le=1)  # a box continues a track if they overlap this
    lost_after: float = Field(1.0, gt=0)  # seconds without a match before a track is closed
    smoothing: Literal["ema", "vote"] = "ema"
    ema_alpha: float = Field(0.3, gt=0, le=1)  # weight of the newest frame's scores
    vote_window: int = Field(10, ge=1)  # frames in the majority vote


class EventsConfig(Section):
    min_hold: float = Field(1.0, ge=0)
    summary_interval: float = Field(60, gt=0)


class JsonlConfig(Section):
    path: StatePath
    max_bytes: int = Field(10_000_000, ge=1024)
    backups: int = Field(5, ge=0)


class MqttConfig(Section):
    host: str
    port: int = Field(1883, ge=1, le=65535)
    topic_prefix: str = "edgefer"
    client_id: str | None = None
    username: str | None = None
    password: SecretStr | None = None  # from password_file or EDGEFER_OUTPUTS__MQTT__PASSWORD
    password_file: InputPath | None = None
    tls: bool = False
    ca_file: InputPath | None = None
    spool_dir: StatePath = Field(Path("spool"), validate_default=True)
    spool_max_bytes: int = Field(50_000_000, ge=1024)
    # Home Assistant MQTT discovery: each camera a device with its entities (README "Home
    # Assistant"); the prefix is the one set in HA's MQTT options (HA's default: homeassistant).
    homeassistant: bool = False
    homeassistant_prefix: str = "homeassistant"

    @field_validator("topic_prefix", "homeassistant_prefix")
    @classmethod
    def _plain_topic(cls, prefix: str) -> str:
        """A wildcard in a topic that is published to makes the broker refuse every publish
        (MQTT 3.1.1, 4.7.1); paho would only log it, so nothing would ever be delivered."""
        if not prefix or "+" in prefix or "#" in prefix or "\0" in prefix:
            raise ValueError(f"expected a topic without + or # (and not empty), got {prefix!r}")
        return prefix


class WebhookConfig(Section):
    url: str
    timeout: float = Field(5, gt=0)
    retries: int = Field(5, ge=0)

    @field_validator("url")
    @classmethod
    def _postable(cls, url: str) -> str:
        """Checked here, not at the first POST: urllib would refuse it then with an error that
        quotes the URL, secret path and all, into the log."""
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - raises ValueError for a port that is not a number
        except ValueError:
            raise ValueError("expected an http:// or https:// URL") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("expected an http:// or https:// URL with a host")
        if not url.isprintable() or " " in url:
            raise ValueError("the URL has spaces or control characters; percent-encode them")
        if parts.username is not None:
            raise ValueError(
                "user:password@ in a webhook URL is never sent; put the secret "
                "in the path or query, as webhook services do"
            )
        return url


class OutputsConfig(Section):
    jsonl: JsonlConfig | None = None
    mqtt: MqttConfig | None = None
    webhook: WebhookConfig | None = None


class ServerConfig(Section):
    bind: str = "127.0.0.1"
    port: int = Field(8765, ge=0, le=65535)
    token: SecretStr | None = None  # required for any non-loopback bind
    token_file: InputPath | None = None
    preview: bool = False  # the annotated camera image on the status page
    # Host names the server answers to besides IP addresses, localhost and this machine's name
    # (and NAME.local): a request for any other name is refused, so a web page cannot reach
    # the server through DNS rebinding.
    allowed_hosts: tuple[str, ...] = ()

    @field_validator("token")
    @classmethod
    def _token_not_blank(cls, token: SecretStr | None) -> SecretStr | None:
        """An empty token would turn authentication off while looking like it is on."""
        if token is not None and not token.get_secret_value().strip():
            raise ValueError("the token is empty: put a long random secret in token_file")
        return token

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


DEFAULT_CAMERA = "default"  # the one camera of a config without [cameras.NAME] tables
# A camera's name goes into MQTT topics, Home Assistant ids and Prometheus labels; lower case,
# because EDGEFER_CAMERAS__NAME__... variables name it in whatever case they are written.
CAMERA_NAME = re.compile(r"[a-z0-9_-]{1,32}")
CAMERA_KEYS = ("source", "detector", "tracking")  # a camera's own tables; the top level's are
# every camera's defaults


class CameraConfig(Section):
    """[cameras.NAME]: one camera: where its frames come from, how faces are found in them and
    how they become tracks. A key it leaves out comes from the top-level [source], [detector] or
    [tracking] table, which hold what all cameras share."""

    source: SourceConfig = SourceConfig()
    detector: DetectorConfig = DetectorConfig()
    tracking: FaceTrackConfig = FaceTrackConfig()


class DaemonConfig(PipelineConfig):
    """The pipeline's options (backend, threads, delegate, margin, [detector] ...: the same as
    `edgefer detect`'s flags) at the top level, and the daemon's own sections. Each camera is a
    [cameras.NAME] table; without any, the top-level [source] is the one camera, `default`."""

    # A directory or a bundled name (edge, edge-fast); default: edge. A str, not a Path: Path would
    # turn ./edge into the name edge.
    bundle: str | None = None
    source: SourceConfig = SourceConfig()
    tracking: FaceTrackConfig = FaceTrackConfig()
    cameras: dict[str, CameraConfig] = Field(
        default_factory=lambda: {DEFAULT_CAMERA: CameraConfig()},
        json_schema_extra={"propertyNames": {"pattern": f"^{CAMERA_NAME.pattern}$"}},
    )
    events: EventsConfig = EventsConfig()
    outputs: OutputsConfig = OutputsConfig()
    server: ServerConfig = ServerConfig()

    @model_validator(mode="before")
    @classmethod
    def _cameras_over_defaults(cls, data):
        """Each camera's tables over the top-level ones, key by key: what the cameras share is
        written once. No [cameras.NAME] at all: the top level's [source] is camera `default`."""
        if not isinstance(data, dict):
            return data  # pydantic says that a table was expected
        cameras = data.get("cameras", {DEFAULT_CAMERA: {}})
        if not isinstance(cameras, dict):
            return data
        if not cameras:
            raise invalid(("cameras",), "expected at least one [cameras.NAME] table", cameras)
        merged = {}
        for name, table in cameras.items():
            if not CAMERA_NAME.fullmatch(name):
                raise invalid(
                    ("cameras", name),
                    "a camera's name goes into MQTT topics and metric labels: expected 1 to 32 "
                    "lower-case letters, digits, _ or -",
                    name,
                )
            if isinstance(table, dict):
                table = {
                    **table,
                    **{k: _over(data.get(k), table.get(k)) for k in CAMERA_KEYS if k in data},
                }
            merged[name] = table
        return {**data, "cameras": merged}

    @model_validator(mode="after")
    def _one_reader_per_device(self):
        """A camera device (an index, /dev/videoN, a /dev/v4l/by-id link to one, the Pi camera)
        gives its frames to one reader: two cameras on one device would fight over it, and one
        would never stream."""
        owner: dict[str, str] = {}
        for name, camera in self.cameras.items():
            uri = camera.source.uri
            device = _device(uri)
            if device is None:
                continue
            if device in owner:
                raise invalid(
                    ("cameras", name, "source", "uri"),
                    f"{uri} is camera {owner[device]}'s device already: a device has one reader",
                    uri,
                )
            owner[device] = name
        return self

    def masked(self) -> dict:
        """The resolved config as JSON-ready data, secrets shown as '***'."""
        data = json.loads(self.model_dump_json())  # SecretStr dumps as '**********'
        data["source"]["uri"] = redact_uri(self.source.uri)
        for name, camera in self.cameras.items():
            data["cameras"][name]["source"]["uri"] = redact_uri(camera.source.uri)
        if self.outputs.webhook is not None:
            data["outputs"]["webhook"]["url"] = redact_url(self.outputs.webhook.url)
        return data


def _device(uri: str) -> str | None:
    """The device a source reads, one name however it is written (N, /dev/videoN, a link to
    it); None for a stream or a file, which several readers may open."""
    if uri == "picamera2":
        return uri
    if uri.isdigit():
        uri = f"/dev/video{uri}"
    return os.path.realpath(uri) if uri.startswith("/dev/") else None


def _over(default, own):
    """A camera's table over the shared one: its keys win, the rest are the shared table's."""
    if isinstance(default, dict) and isinstance(own, dict):
        return {**default, **own}
    return default if own is None else own


def redact_uri(uri: str) -> str:
    """`uri` with the password in it, if any, and its query shown as ***: network cameras are
    commonly rtsp://user:password@host/... or http://host/video?user=..&pwd=.., and the URI
    goes to logs, /status and --print-config."""
    # The password runs to the last @ before the path: FFmpeg reads rtsp://u:p@ss@cam/ that way.
    uri = re.sub(r"^([a-z][a-z0-9+.-]*://[^/@:]*):[^/?#]*@", r"\1:***@", uri, flags=re.IGNORECASE)
    return re.sub(r"\?.*$", "?***", uri) if "://" in uri else uri


def redact_url(url: str) -> str:
    """A webhook URL as logs may show it: scheme and host only. Webhook services put the secret
    in the path (Slack's /services/T../B../<secret>, Discord's /api/webhooks/<id>/<token>) or
    the query, so both are masked (user:password@ is refused in the config)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "***"
    host = f"[{host}]" if ":" in host else host
    rest = "/***" if parts.path.strip("/") or parts.query else ""
    return f"{parts.scheme}://{host}{port}{rest}"


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
        _set(data, keys, value, f"--set {key}")
        if _holds_secret(data, keys):
            raise EdgeferError(
                f"--set {key}: secrets never go on the command line (they show in "
                f"ps and shell history); use a *_file key or the environment"
            )
    try:
        config = DaemonConfig.model_validate(
            _with_secret_files(data), context={"state_directory": state_directory(environ)}
        )
    except ValidationError as exc:
        origin = f"{path}: " if path is not None else ""
        raise EdgeferError(origin + validation_line(exc)) from None
    return config


def _holds_secret(data: dict, keys: tuple[str, ...]) -> bool:
    """Whether the override at `keys` set a secret, directly or inside a table value
    (`--set 'server={token="..."}'`)."""
    for secret in SECRET_KEYS:
        if secret[: len(keys)] != keys and keys[: len(secret)] != secret:
            continue
        node = data
        for k in secret:
            if not isinstance(node, dict) or k not in node:
                break
            node = node[k]
        else:
            return True
    return False


def _set(data: dict, keys: tuple[str, ...], value: str, origin: str) -> None:
    """Put a text value at a key path; TOML syntax is tried first so numbers and booleans keep
    their types (EDGEFER_THREADS=2 is the integer 2). A secret is raw text, always: an all-digit
    password stays a string, and quotes in it are part of it."""
    node = data
    for k in keys[:-1]:
        node = node.setdefault(k, {})
        if not isinstance(node, dict):
            raise EdgeferError(f"{origin}: {'.'.join(keys)} goes through a value, not a table")
    if keys in SECRET_KEYS:
        node[keys[-1]] = value
        return
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
            where = f"{'.'.join(section)}.{key}_file"
            try:
                file = _input(Path(str(file)), None)
            except ValueError as exc:
                raise EdgeferError(f"key {where}: {exc}") from None
            try:
                node[key] = file.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise EdgeferError(f"{file}: cannot read the {where} ({exc.strerror})") from None
    return data
