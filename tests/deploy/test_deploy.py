"""`edgefer deploy` end to end against a real OpenSSH server (tests/deploy/conftest.py): first
deploy, upgrade, a failed health check rolled back, status/logs/rollback, one of two hosts down,
host keys and keys, a bundle that does not verify, and the dry run.

The tests share one device (its venv is made once) and each starts from whatever release the
device runs, so they hold in any order; each leaves the device running a healthy release.
"""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
from pathlib import Path

import pytest

from edgefer.device.manifest import load_manifest
from edgefer.hashing import sha256_file
from tests.deploy.devices import (
    alive,
    copy_bundle,
    current,
    daemon_config,
    daemon_pid,
    previous,
    status_row,
    tree,
)
from tests.deploy.sshd import keygen
from tests.device.mqtt_broker import free_port
from tests.polling import wait_for


def test_first_deploy_ships_the_release_makes_the_venv_and_starts_a_healthy_daemon(
    first_deploy, deployer
):
    result, config = first_deploy
    server = deployer.server
    root = server.home / ".edgefer"
    row = status_row(result, server)
    assert row[1] == "deployed" and row[-2:] == ["new", "venv"]
    release = root / "releases" / row[2]  # current then; later tests deploy more
    assert "x86_64, Python 3.11" in result.output and "runtime: ai-edge-litert" in result.output
    assert "making the venv" in result.output and "pip: Successfully installed" in result.output
    meta = json.loads((release / "release.json").read_text())
    bundle = release / "bundle"
    assert meta["bundle"]["sha256"] == sha256_file(bundle / "manifest.json")
    assert (release / "edgefer.toml").read_text() == config.read_text()
    assert (release / "venv").resolve() == root / "venvs" / meta["venv"]
    assert (root / "venvs" / meta["venv"] / ".complete").exists()
    assert meta["id"] == release.name
    # The unit the release ships starts exactly this release's daemon through `current`.
    unit = (release / "edgefer.service").read_text()
    exec_start = next(line for line in unit.splitlines() if line.startswith("ExecStart="))
    argv = exec_start.removeprefix("ExecStart=").split()
    assert argv[0] == f"{root}/current/venv/bin/edgefer" and argv[1] == "daemon"
    printed = subprocess.run([*argv, "--print-config"], capture_output=True, text=True, check=True)
    assert json.loads(printed.stdout)["bundle"] == f"{root}/current/bundle"


def test_status_and_logs_report_the_running_release(first_deploy, deployer):
    server = deployer.server
    result = deployer("status")
    assert result.exit_code == 0, result.output
    row = status_row(result, server)
    meta = json.loads((server.home / ".edgefer/current/release.json").read_text())
    bundle = [meta["bundle"]["name"], meta["bundle"]["sha256"][:12]]
    assert row[1] == current(server) and row[2:4] == bundle
    assert row[4:7] == ["none", "running", "ok"]  # service, state, health
    logs = deployer("logs", "-n", "20")
    assert logs.exit_code == 0 and f"[{server.address}]" in logs.stdout
    assert "status server on http://127.0.0.1" in logs.stdout


def test_an_upgrade_sends_only_what_changed_and_keeps_the_venv(first_deploy, deployer, face_video):
    server = deployer.server
    before, pid = current(server), daemon_pid(server)
    venvs = set((server.home / ".edgefer/venvs").iterdir())
    config = daemon_config(server, face_video, "upgrade.toml", extra="[tracking]\nlost_after = 2\n")
    result = deployer.push(config)
    assert result.exit_code == 0, result.output
    # The new config and the new release.json: the bundle, unit and wheels are there already.
    sent = re.search(r"sent (\d+) new files \(([\d.]+) (kB|MB)\)", result.output)
    assert sent and sent[1] == "2" and sent[3] == "kB"
    assert "making the venv" not in result.output
    assert current(server) != before and previous(server) == before
    assert set((server.home / ".edgefer/venvs").iterdir()) == venvs
    assert not alive(pid) and alive(daemon_pid(server))
    assert status_row(deployer("status"), server)[6] == "ok"
    # The same release again: nothing to do.
    again = deployer.push(config)
    assert again.exit_code == 0 and "up to date" in again.stdout
    assert daemon_pid(server) != pid


def test_a_failed_health_check_rolls_back_and_the_old_release_keeps_serving(
    first_deploy, deployer, tmp_path
):
    server = deployer.server
    before = current(server)
    prev = previous(server) if (server.home / ".edgefer/previous").exists() else None
    releases = set((server.home / ".edgefer/releases").iterdir())
    config = daemon_config(server, tmp_path / "no-such-camera.mp4", "broken.toml")
    result = deployer.push(config, "--health-timeout", "6")
    assert result.exit_code == 1
    line = next(x for x in result.stderr.splitlines() if "FAILED:" in x)
    assert "health check failed: /healthz" in line and "503 no frames within 6 s" in line
    assert f"rolled back to {before}, which is healthy again" in line
    assert "no-such-camera.mp4" in result.stderr  # the failed daemon's last log lines
    assert "FAILED" in status_row(result, server)
    assert current(server) == before
    assert (previous(server) if prev else None) == prev  # the links are as they were
    assert set((server.home / ".edgefer/releases").iterdir()) == releases  # failed one removed
    status = deployer("status")
    assert status.exit_code == 0 and status_row(status, server)[6] == "ok"


def test_rollback_restores_the_previous_release_and_a_second_one_undoes_it(
    first_deploy, deployer, face_video
):
    server = deployer.server
    config = daemon_config(server, face_video, "rollback.toml", extra="threads = 2\n")
    assert deployer.push(config).exit_code == 0
    newest, older = current(server), previous(server)
    result = deployer("rollback")
    assert result.exit_code == 0, result.output
    assert f"rolled back  {older}" in result.stdout
    assert current(server) == older and previous(server) == newest
    assert status_row(deployer("status"), server)[6] == "ok"
    assert deployer("rollback").exit_code == 0
    assert current(server) == newest and previous(server) == older


def test_one_of_two_hosts_unreachable_the_other_is_deployed_and_the_exit_code_says_so(
    first_deploy, deployer, tmp_path
):
    """Through an inventory: the live device with a config of its own (a path relative to the
    inventory), and a device on a port where nothing listens."""
    _, config = first_deploy
    server = deployer.server
    (tmp_path / "kitchen.toml").write_text(config.read_text() + "[tracking]\nlost_after = 1.5\n")
    inventory = tmp_path / "hosts.toml"
    inventory.write_text(
        '[defaults]\nconfig = "no-such.toml"\n'
        f'[hosts.kitchen]\naddress = "{server.address}"\nconfig = "kitchen.toml"\n'
        f'[hosts.garage]\naddress = "{server.user}@127.0.0.1:{free_port()}"\n'
    )
    (tmp_path / "no-such.toml").write_text(config.read_text())
    result = deployer.push(config, "--inventory", inventory, "--parallel", "2", hosts=())
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["HOST", "RESULT", "RELEASE", "DETAIL"]
    rows = {line.split()[0]: line for line in lines[1:]}
    assert rows["kitchen"].split()[1] == "deployed"
    assert "FAILED" in rows["garage"] and "unreachable (Connection refused)" in rows["garage"]
    assert "1 of 2 host(s) failed" in result.stderr
    meta = json.loads((server.home / ".edgefer/current/release.json").read_text())
    assert meta["config"] == str(tmp_path / "kitchen.toml")


def test_an_unknown_host_key_is_refused_and_accepted_only_when_asked(
    first_deploy, deployer, tmp_path
):
    _, config = first_deploy
    server = deployer.server
    before = tree(server.home / ".edgefer")
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    stranger = deployer.using(known=empty)
    result = stranger.push(config)
    assert result.exit_code == 1
    assert f"unknown host key for {server.address}" in result.stdout
    assert "--accept-new-host-key" in result.stdout
    assert tree(server.home / ".edgefer") == before
    # A dry run may look, but writes no key down.
    assert stranger.push(config, "--accept-new-host-key", "--dry-run").exit_code == 0
    assert empty.read_text() == ""
    assert stranger.push(config, "--accept-new-host-key").exit_code == 0
    assert empty.read_text() == server.known_hosts_line()
    assert stranger("status").exit_code == 0  # known now, no flag needed


def test_a_changed_host_key_is_refused_even_with_accept_new(first_deploy, deployer, tmp_path):
    _, config = first_deploy
    server = deployer.server
    other = keygen(tmp_path / "other_host_key")
    kind, blob = other.with_suffix(".pub").read_text().split()[:2]
    forged = tmp_path / "known_hosts"
    forged.write_text(f"[127.0.0.1]:{server.port} {kind} {blob}\n")
    liar = deployer.using(known=forged)
    result = liar.push(config, "--accept-new-host-key")
    assert result.exit_code == 1
    assert f"host key of {server.address} does not match" in result.stdout
    assert forged.read_text() == f"[127.0.0.1]:{server.port} {kind} {blob}\n"


def test_a_key_the_device_does_not_know_fails_authentication(first_deploy, deployer, tmp_path):
    result = deployer.using(key=keygen(tmp_path / "id_other"))("status")
    assert result.exit_code == 1
    assert "authentication failed" in result.stdout and "publickey only" in result.stdout


def test_a_bundle_that_does_not_verify_is_refused_before_any_host_is_touched(
    first_deploy, deployer, tmp_path
):
    _, config = first_deploy
    server = deployer.server
    bundle = copy_bundle(tmp_path / "bundle")
    model = bundle / "model_int8.tflite"
    model.write_bytes(model.read_bytes()[:-1] + b"\0")
    before = tree(server.home / ".edgefer")
    down = f"{server.user}@127.0.0.1:{free_port()}"
    result = deployer.push(config, bundle=bundle, hosts=(server.address, down))
    assert result.exit_code == 2
    assert result.output.strip() == (
        f"error: {model}: sha256 differs from manifest.json; the file is corrupt or replaced"
    )  # not a word about the host that is down: no host was contacted
    assert tree(server.home / ".edgefer") == before


def test_a_config_the_daemon_would_refuse_is_refused_here(first_deploy, deployer, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[server]\nport = 0\n")
    result = deployer.push(bad)
    assert result.exit_code == 2 and "key server.port: 0 picks a random port" in result.output
    bad.write_text("threads = 0\n")
    result = deployer.push(bad)
    assert result.exit_code == 2
    assert f"{bad}: key threads: Input should be greater than or equal to 1" in result.output


def test_a_dry_run_prints_the_plan_and_changes_nothing(first_deploy, deployer, face_video):
    server = deployer.server
    config = daemon_config(server, face_video, "dry.toml", extra="margin = 0.1\n")
    before, pid = tree(server.home / ".edgefer"), daemon_pid(server)
    result = deployer.push(config, "--dry-run")
    assert result.exit_code == 0, result.output
    plan = [x.split("plan: ", 1)[1] for x in result.stderr.splitlines() if "plan: " in x]
    assert plan[1].startswith("send 2 of ") and plan[2].startswith("reuse venv")
    assert plan[3].endswith(f"{current(server)} -> {status_row(result, server)[2]}")
    assert status_row(result, server)[1] == "planned"
    assert tree(server.home / ".edgefer") == before and daemon_pid(server) == pid


@pytest.mark.parametrize(
    "args, message",
    [
        (["--host", "pi@"], "--host pi@: expected USER@HOST[:PORT]"),
        (["--host", "pi@kitchen:99999"], "expected USER@HOST[:PORT]"),
        ([], "no host: pass --host"),
    ],
)
def test_bad_host_arguments_are_one_line(args, message):
    from tests.cli_helpers import run

    result = run("deploy", "status", *args)
    assert result.exit_code == 2 and message in result.output


def test_one_deploy_at_a_time_per_device(first_deploy, deployer):
    """Another operator's deploy holds the device's lock: this one is refused, nothing changes."""
    _, config = first_deploy
    server = deployer.server
    lock = server.home / ".edgefer/.lock"
    holder = subprocess.Popen(["flock", str(lock), "sleep", "60"], start_new_session=True)
    try:
        before = tree(server.home / ".edgefer")
        for result in (deployer.push(config, "--force"), deployer("rollback")):
            assert result.exit_code == 1
            assert "another deploy or rollback is running on the device" in result.stdout
        assert tree(server.home / ".edgefer") == before
    finally:
        os.killpg(holder.pid, signal.SIGKILL)  # flock and the sleep that holds the lock with it
        holder.wait()
    again = deployer.push(config)
    assert again.exit_code == 0, again.output  # released


def test_a_config_that_needs_what_the_bundle_lacks_is_refused_here(first_deploy, deployer):
    _, config = first_deploy
    edgetpu = config.with_name("edgetpu.toml")
    edgetpu.write_text('backend = "edgetpu"\n' + config.read_text())
    result = deployer.push(edgetpu)
    assert result.exit_code == 2
    assert f"error: {edgetpu}: bundle has no model for edgetpu" in result.output


def test_a_bundled_model_is_deployed_by_its_name(first_deploy, deployer):
    """`edgefer deploy edge-fast`: the name is the bundle that ships in the package, verified
    like any directory; an unknown name that is no directory either is one line, exit 2."""
    from edgefer.bundled import bundled_path

    _, config = first_deploy
    result = deployer.push(config, "--dry-run", bundle="edge-fast")
    assert result.exit_code == 0, result.output
    sha = sha256_file(bundled_path("edge-fast") / "manifest.json")
    assert f"(manifest sha256 {sha[:12]})" in result.stderr
    missing = deployer.push(config, "--dry-run", bundle="edge-tiny")
    assert missing.exit_code == 2
    assert "edge-tiny: not a bundle directory" in missing.output


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_what_a_deploy_leaves_on_the_device_is_the_accounts_alone(first_deploy, deployer):
    """Blobs and every release file 0600 (a config may name a token file, the daemon's log says
    what the camera saw), their folders 0700."""
    root = deployer.server.home / ".edgefer"
    release = root / "releases" / current(deployer.server)
    folders = [root, root / "blobs", root / "releases", release, release / "bundle"]
    assert {str(d): oct(mode(d)) for d in folders} == {str(d): "0o700" for d in folders}
    files = [*(root / "blobs").iterdir(), *(f for f in release.rglob("*") if f.is_file())]
    assert "daemon.log" in {f.name for f in files}  # written by the daemon's own umask
    assert {str(f): oct(mode(f)) for f in files} == {str(f): "0o600" for f in files}


@pytest.mark.parametrize(
    "table, lines, key",
    [
        ("[server]", 'token = "s3cret-token"', "server.token"),
        ("[outputs.mqtt]", 'host = "broker"\npassword = "s3cret-token"', "outputs.mqtt.password"),
    ],
)
def test_a_config_with_an_inline_secret_is_refused_before_any_host_is_touched(
    first_deploy, deployer, tmp_path, table, lines, key
):
    _, config = first_deploy
    server = deployer.server

    def with_secret(text: str) -> Path:
        path = tmp_path / "secret.toml"
        base = config.read_text()
        if table in base:
            path.write_text(base.replace(f"{table}\n", f"{table}\n{text}\n"))
        else:
            path.write_text(f"{base}{table}\n{text}\n")
        return path

    before = tree(server.home / ".edgefer")
    inline = with_secret(lines)
    result = deployer.push(inline, "--dry-run")
    assert result.exit_code == 2
    assert result.output.strip() == (
        f"error: {inline}: key {key}: a secret inline would be copied into every release on "
        f"every device; put it in a file on the devices and name that with {key}_file"
    )
    assert tree(server.home / ".edgefer") == before
    name = key.rsplit(".", 1)[1]
    by_file = with_secret(lines.replace(f'{name} = "s3cret-token"', f'{name}_file = "/etc/s"'))
    assert deployer.push(by_file, "--dry-run").exit_code == 0  # a path on the device: fine


def test_only_what_the_manifest_lists_is_shipped_and_status_names_the_bundle(
    first_deploy, deployer, tmp_path
):
    """A bundle folder with notes, a stray edgefer wheel and a scratch folder beside its
    models: the deploy installs the edgefer wheel from wheels/ and ships none of them. Status
    names the bundle edge-fast, not by its arch (edge, as the bundled edge is)."""
    from edgefer.bundled import bundled_path

    _, config = first_deploy
    server = deployer.server
    bundle = tmp_path / "edge-fast"
    copy_bundle(bundle, bundled_path("edge-fast"))
    (bundle / "edgefer-notes.txt").write_text("calibrated on the kitchen camera\n")
    (bundle / "edgefer-9.9.9-py3-none-any.whl").write_bytes(b"PK not a wheel")
    (bundle / "scratch").mkdir()
    (bundle / "scratch/draft.txt").write_text("draft\n")
    result = deployer.push(config, bundle=bundle)
    assert result.exit_code == 0, result.output
    manifest = load_manifest(bundle)
    listed = {"manifest.json", *(a.file for a in (*manifest.artifacts, *manifest.detectors))}
    shipped = server.home / ".edgefer/current/bundle"
    assert {p.relative_to(shipped).as_posix() for p in shipped.rglob("*")} == listed
    status = deployer("status")
    assert status.exit_code == 0, status.output
    sha = sha256_file(bundle / "manifest.json")[:12]
    assert status_row(status, server)[2:4] == ["edge-fast", sha]


def point(server, link: str, release: str) -> None:
    """`current` or `previous` switched by hand, as an interrupted deploy leaves it."""
    root = server.home / ".edgefer"
    (root / f"{link}.new").symlink_to(f"releases/{release}")
    os.replace(root / f"{link}.new", root / link)


def test_a_deploy_goes_by_the_daemon_that_runs_not_by_the_current_link(
    first_deploy, deployer, face_video, tmp_path
):
    """A deploy of A cut off after switching `current` to A, before the restart: B's daemon
    still runs. Status says so, and deploying A again restarts it rather than calling it up to
    date. Then a deploy cut off while stopping the daemon: none runs; deploying A starts it."""
    server = deployer.server
    root = server.home / ".edgefer"
    a = current(server)
    meta = json.loads((root / "releases" / a / "release.json").read_text())
    config_a = tmp_path / "a.toml"
    config_a.write_text((root / "releases" / a / "edgefer.toml").read_text())
    config_b = daemon_config(server, face_video, "b.toml", extra="[tracking]\nlost_after = 4\n")
    assert deployer.push(config_b).exit_code == 0
    b, pid_b = current(server), daemon_pid(server)
    point(server, "current", a)
    point(server, "previous", b)
    status = deployer("status")
    assert status.exit_code == 1
    assert f"the daemon runs {b}, not current (deploy it again)" in status.stdout
    again = deployer.push(config_a, bundle=meta["bundle"]["from"])
    assert again.exit_code == 0, again.output
    assert f"{a} is this release, but the daemon runs {b}: restarting it" in again.stderr
    assert status_row(again, server)[1:3] == ["restarted", a]
    assert current(server) == a and previous(server) == b and not alive(pid_b)
    assert status_row(deployer("status"), server)[6] == "ok"
    pid = daemon_pid(server)
    os.kill(pid, signal.SIGKILL)
    assert wait_for(lambda: not alive(pid), 10)
    started = deployer.push(config_a, bundle=meta["bundle"]["from"])
    assert started.exit_code == 0, started.output
    assert f"{a} is this release, but no daemon is running: restarting it" in started.stderr
    assert alive(daemon_pid(server)) and status_row(deployer("status"), server)[6] == "ok"
