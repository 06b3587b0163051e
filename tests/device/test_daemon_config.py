import json

import pytest

from edgefer.device.daemon_config import load_config
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
        ('[detector]\nkind = "yolo"\n', "key detector.kind: Input should be 'haar' or 'blazeface'"),
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
