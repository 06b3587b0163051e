import json
from pathlib import Path

import pytest

from edgefer.device.daemon.config import DaemonConfig, load_config
from edgefer.errors import EdgeferError


def write(tmp_path, text):
    path = tmp_path / "edgefer.toml"
    path.write_text(text)
    return path


def test_file_then_environment_then_flags(tmp_path):
    path = write(
        tmp_path,
        'threads = 1\n[source]\nuri = "cam.mp4"\nloop = true\n'
        '[outputs.jsonl]\npath = "/tmp/events.jsonl"\n',
    )
    env = {
        "EDGEFER_THREADS": "2",
        "EDGEFER_SOURCE__MAX_FPS": "12.5",
        "EDGEFER_VERBOSE": "1",
        "HOME": "/root",
    }
    cfg = load_config(path, ["source.uri=rtsp://cam/1", "tracking.smoothing=vote"], env)
    assert cfg.threads == 2 and cfg.source.max_fps == 12.5 and cfg.source.loop is True
    assert cfg.source.uri == "rtsp://cam/1" and cfg.tracking.smoothing == "vote"
    assert str(cfg.outputs.jsonl.path) == "/tmp/events.jsonl" and cfg.outputs.mqtt is None


@pytest.mark.parametrize(
    "text, message",
    [
        ("threads = 0\n", "key threads: Input should be greater than or equal to 1"),
        ("[source]\nurl = 1\n", "key source.url: Extra inputs are not permitted"),
        (
            '[detector]\nkind = "yolo"\n',
            "key detector.kind: Input should be 'auto', 'haar', 'blazeface' or 'blazeface-track'",
        ),
        ("[tracking\n", "not valid TOML"),
        ('[server]\nbind = "0.0.0.0"\n', "bind 0.0.0.0 is not loopback: set token_file"),
    ],
)
def test_a_bad_config_names_the_file_and_the_key(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(EdgeferError, match=message) as err:
        load_config(path, environ={})
    assert str(err.value).startswith(str(path)) or "not valid TOML" in str(err.value)
    assert "\n" not in str(err.value)


def test_secrets_come_from_files_or_environment_never_flags_and_are_masked(tmp_path):
    (tmp_path / "pw").write_text("hunter2\n")
    path = write(
        tmp_path,
        f'[outputs.mqtt]\nhost = "127.0.0.1"\npassword_file = "{tmp_path / "pw"}"\n'
        '[server]\nbind = "0.0.0.0"\n',
    )
    cfg = load_config(path, environ={"EDGEFER_SERVER__TOKEN": "s3cret"})
    assert cfg.outputs.mqtt.password.get_secret_value() == "hunter2"
    assert cfg.server.token.get_secret_value() == "s3cret"
    shown = json.dumps(cfg.masked())
    assert "hunter2" not in shown and "s3cret" not in shown and "**********" in shown
    camera = load_config(
        path, ["source.uri=rtsp://admin:pa:ss@cam:554/1"], {"EDGEFER_SERVER__TOKEN": "t"}
    )
    assert camera.masked()["source"]["uri"] == "rtsp://admin:***@cam:554/1"
    with pytest.raises(EdgeferError, match="secrets never go on the command line"):
        load_config(path, ["server.token=abc"], environ={})


@pytest.mark.parametrize("how", ["file", "blank file", "environment"])
def test_an_empty_token_is_refused_at_load_not_taken_for_no_authentication(tmp_path, how):
    """SecretStr("") is falsy: an empty token once switched authentication off on 0.0.0.0."""
    token = tmp_path / "token"
    token.write_text({"file": "", "blank file": " \n\t\n", "environment": "unused"}[how])
    path = write(tmp_path, f'[server]\nbind = "0.0.0.0"\ntoken_file = "{token}"\n')
    env = {"EDGEFER_SERVER__TOKEN": ""} if how == "environment" else {}
    with pytest.raises(EdgeferError, match="key server.token: .*the token is empty"):
        load_config(path, environ=env)


@pytest.mark.parametrize(
    "override",
    [
        'server={token="abc"}',
        'server={bind="127.0.0.1", token="abc"}',
        'outputs.mqtt={host="h", password="pw"}',
        'outputs={mqtt={host="h", password="pw"}}',
        "server.token=abc",
    ],
)
def test_a_secret_inside_a_table_on_the_command_line_is_refused(tmp_path, override):
    with pytest.raises(EdgeferError, match="secrets never go on the command line"):
        load_config(None, [override], environ={})


def test_a_table_without_secrets_may_still_be_set(tmp_path):
    cfg = load_config(None, ['server={bind="127.0.0.1", port=0}'], environ={})
    assert cfg.server.port == 0


def test_secrets_from_the_environment_are_raw_text():
    env = {"EDGEFER_SERVER__TOKEN": "123456", "EDGEFER_OUTPUTS__MQTT__PASSWORD": '"abc"'}
    cfg = load_config(None, ["outputs.mqtt.host=h"], environ=env)
    assert cfg.server.token.get_secret_value() == "123456"
    assert cfg.outputs.mqtt.password.get_secret_value() == '"abc"'


def test_print_config_masks_a_webhook_secret_in_path_and_query():
    url = "https://hooks.example.com:8443/services/T0/B0/s3cretpath?token=s3cretq"
    shown = json.dumps(load_config(None, [f'outputs.webhook.url="{url}"'], environ={}).masked())
    assert "s3cret" not in shown
    assert "https://hooks.example.com:8443/***" in shown


@pytest.mark.parametrize("prefix", ["home/+/edgefer", "edgefer/#", ""])
def test_an_mqtt_prefix_with_a_wildcard_is_refused(prefix):
    with pytest.raises(EdgeferError, match="key outputs.mqtt.topic_prefix: .*without \\+ or #"):
        load_config(None, ["outputs.mqtt.host=h", f'outputs.mqtt.topic_prefix="{prefix}"'], {})


def test_a_misspelt_required_key_is_named_beside_the_missing_one(tmp_path):
    path = write(tmp_path, '[outputs.mqtt]\nhots = "broker"\n')
    with pytest.raises(EdgeferError) as err:
        load_config(path, environ={})
    message = str(err.value)
    assert "outputs.mqtt.host: Field required" in message and "outputs.mqtt.hots" in message


def test_written_paths_expand_the_home_directory_and_relative_ones_go_to_the_state_directory(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path / "..")  # never the working directory: a release, pruned later
    path = write(tmp_path, '[outputs.jsonl]\npath = "~/edgefer/events.jsonl"\n')
    assert load_config(path, environ={}).outputs.jsonl.path == tmp_path / "edgefer/events.jsonl"
    path = write(
        tmp_path, '[outputs.jsonl]\npath = "edgefer/events.jsonl"\n[outputs.mqtt]\nhost = "b"\n'
    )
    # Under a systemd unit: its StateDirectory= (the first, if it names several).
    unit = load_config(path, environ={"STATE_DIRECTORY": "/var/lib/edgefer:/var/lib/other"})
    assert unit.outputs.jsonl.path == Path("/var/lib/edgefer/edgefer/events.jsonl")
    assert unit.outputs.mqtt.spool_dir == Path("/var/lib/edgefer/spool")  # the default
    # By hand or --service none: the XDG state home.
    xdg = load_config(path, environ={"XDG_STATE_HOME": "/srv/state"})
    assert xdg.outputs.mqtt.spool_dir == Path("/srv/state/edgefer/spool")
    plain = load_config(path, environ={"XDG_STATE_HOME": "relative/is/ignored"})
    assert plain.outputs.jsonl.path == tmp_path / ".local/state/edgefer/edgefer/events.jsonl"


def test_a_device_config_keeps_home_and_relative_paths_for_the_device(tmp_path):
    """Checked on the workstation for a device: the device's daemon resolves them."""
    data = {"outputs": {"jsonl": {"path": "events.jsonl"}, "mqtt": {"host": "b"}}}
    data["server"] = {"token_file": "~/token"}
    config = DaemonConfig.model_validate(data, context={"device": True})
    assert config.outputs.jsonl.path == Path("events.jsonl")
    assert config.outputs.mqtt.spool_dir == Path("spool")
    assert config.server.token_file == Path("~/token")


def test_secret_files_expand_the_home_directory_and_must_be_absolute(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "tok").write_text("s3cret\n")
    monkeypatch.chdir(tmp_path)
    home = write(tmp_path, '[server]\nbind = "0.0.0.0"\ntoken_file = "~/tok"\n')
    assert load_config(home, environ={}).server.token.get_secret_value() == "s3cret"
    relative = write(tmp_path, '[server]\nbind = "0.0.0.0"\ntoken_file = "tok"\n')
    with pytest.raises(EdgeferError, match="key server.token_file: expected an absolute path"):
        load_config(relative, environ={})


@pytest.mark.parametrize(
    "url, message",
    [
        ("ftp://host/x", "expected an http:// or https:// URL"),
        ("https:///path-only", "with a host"),
        ("https://host:port/x", "expected an http:// or https:// URL"),
        ("https://host/services/T0/SEKRET here", "spaces or control characters"),
        ("https://user:pw@host/x", "user:password@ in a webhook URL is never sent"),
    ],
)
def test_a_webhook_url_that_cannot_be_posted_to_is_refused_at_load(url, message):
    with pytest.raises(EdgeferError, match=message) as err:
        load_config(None, [f'outputs.webhook.url="{url}"'], environ={})
    assert "SEKRET" not in str(err.value) and "pw" not in str(err.value)


@pytest.mark.parametrize(
    "uri, shown",
    [
        ("rtsp://admin:p@ss@cam:554/stream", "rtsp://admin:***@cam:554/stream"),
        ("rtsp://admin:secret@cam/1", "rtsp://admin:***@cam/1"),
        ("http://cam/video?user=a&pwd=secret", "http://cam/video?***"),
        ("/srv/video?.mp4", "/srv/video?.mp4"),
        ("rtsp://cam/1", "rtsp://cam/1"),
    ],
)
def test_camera_uris_are_shown_without_their_secrets(uri, shown):
    from edgefer.device.daemon.config import redact_uri

    assert redact_uri(uri) == shown


@pytest.mark.parametrize(
    "first, second", [("0", "/dev/video0"), ("picamera2", "picamera2"), ("/dev/video2", "2")]
)
def test_one_device_is_read_by_one_camera_however_it_is_written(first, second):
    with pytest.raises(EdgeferError) as err:
        load_config(
            None, [f'cameras.a.source.uri="{first}"', f'cameras.b.source.uri="{second}"'], {}
        )
    assert str(err.value).startswith("key cameras.b.source.uri: ")
    assert "camera a's device already" in str(err.value)


def test_camera_names_are_lower_case_as_environment_variables_name_them():
    config = load_config(None, [], {"EDGEFER_CAMERAS__DOOR__SOURCE__URI": "rtsp://cam/1"})
    assert list(config.cameras) == ["door"]
    with pytest.raises(EdgeferError, match="key cameras.Door: .*lower-case"):
        load_config(None, ["cameras.Door.source.uri=1"], {})
