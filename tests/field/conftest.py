"""The field machine for a whole session (tests/field/machine.py: built once into .cache/field,
booted once per session on a throwaway overlay) and `edgefer deploy` run against it.

The deploy runs as a subprocess of this venv's `edgefer`, as a person would run it, with the
image's key and a known_hosts file holding the image's host key (never --accept-new-host-key).
The wheels come from the same caches as tests/deploy's (pytest's cache folder), so a rerun
downloads nothing.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.field.checks import HEALTH_TIMEOUT, PORT
from tests.field.machine import Image, Machine, MachineError

DEVICE_PYTHON = "3.11"  # Debian bookworm's, as on Raspberry Pi OS Bookworm
EDGEFER = str(Path(sys.executable).with_name("edgefer"))


def say(message: str) -> None:
    print(f"field: {message}", file=sys.stderr, flush=True)


@pytest.fixture(scope="session")
def machine(tmp_path_factory):
    """The booted stand-in; fails (never skips) when it cannot be built or booted."""
    try:
        image = Image(log=say).ensure()
        if image.timings:
            say(f"image built in {image.timings['build']:.0f} s ({image.timings})")
        vm = Machine(image, tmp_path_factory.mktemp("field"), log=say).start()
    except MachineError as exc:
        pytest.fail(str(exc), pytrace=False)
    say(f"booted to SSH in {vm.timings['boot']:.1f} s")
    yield vm
    vm.stop()


class Deployer:
    """`edgefer deploy ...` against the machine as `pi` (or another user), the way a person
    runs it."""

    def __init__(self, vm: Machine, wheel: Path, cache: Path, user: str = "pi"):
        self.vm = vm
        self.wheel = wheel
        self.cache = cache
        self.user = user
        self.env = {**os.environ, "XDG_CACHE_HOME": str(cache)}

    def as_user(self, user: str) -> Deployer:
        return Deployer(self.vm, self.wheel, self.cache, user)

    def host_args(self) -> list[str]:
        return [
            "--host", self.vm.address(self.user),
            "--identity", str(self.vm.image.key),
            "--known-hosts", str(self.vm.known_hosts),
        ]  # fmt: skip

    def __call__(self, *args, timeout: float = 1200, on_line=None) -> subprocess.CompletedProcess:
        """`edgefer deploy ARGS --host pi@...`. Its lines are echoed as they come (a deploy under
        TCG takes minutes; pytest -s shows where it is) and kept apart as stdout and stderr;
        `on_line(line)` sees each as it comes (to pull the plug at a given step)."""
        t0 = time.monotonic()
        cmd = [EDGEFER, "deploy", *map(str, args), *self.host_args()]
        with subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=self.env
        ) as proc:
            kept: dict[str, list[str]] = {"stdout": [], "stderr": []}

            def pump(name):
                for line in getattr(proc, name):
                    kept[name].append(line)
                    sys.stderr.write(line)
                    if on_line is not None:
                        on_line(line)

            threads = [threading.Thread(target=pump, args=(n,), daemon=True) for n in kept]
            for t in threads:
                t.start()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                raise
            for t in threads:
                t.join()
        done = subprocess.CompletedProcess(
            cmd, proc.returncode, "".join(kept["stdout"]), "".join(kept["stderr"])
        )
        done.seconds = time.monotonic() - t0
        say(f"edgefer deploy {args[0]}: exit {done.returncode} in {done.seconds:.0f} s")
        return done

    def push(self, config: Path, *args, bundle: str = "edge", **kw):
        return self(bundle, "--config", config, "--wheel", self.wheel, "--offline", *args, **kw)


@pytest.fixture(scope="session")
def field_deployer(machine, device_wheel, deploy_cache) -> Deployer:
    # Build the offline wheelhouse for the machine here, in-process, so that its download
    # time is not counted as the deploy's.
    from edgefer.deploy.wheelhouse import build_wheelhouse

    glibc = tuple(int(p) for p in platform.libc_ver()[1].split(".")[:2])
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(deploy_cache))
        build_wheelhouse(
            device_wheel, arch=platform.machine(), python=DEVICE_PYTHON, glibc=glibc, reuse=True
        )
    return Deployer(machine, device_wheel, deploy_cache)


@pytest.fixture(scope="session")
def small_video(tmp_path_factory) -> Path:
    """The face video at 320x240 and 10 frames a second: under TCG, decoding the test suite's
    640x480 at 30 took most of the guest's CPU (the capture reads a video file at its own
    rate), leaving the pipeline 0.2-0.35 FPS, too few for the daemon's 5-second FPS gauge."""
    import cv2

    from edgefer.samples import face_video_frames

    path = tmp_path_factory.mktemp("field-video") / "face.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (320, 240))
    for frame in face_video_frames(40):
        writer.write(cv2.resize(frame, (320, 240), interpolation=cv2.INTER_AREA))
    writer.release()
    return path


@pytest.fixture(scope="session")
def config(machine, tmp_path_factory, small_video) -> Path:
    """A Pi's config: the face video on a loop, events and the MQTT spool where the config
    leaves them (relative: the daemon's state directory), the broker on the machine, BlazeFace
    (a full-frame Haar scan is 10-20x slower under TCG). Under TCG on a busy 2-core machine the
    daemon sees well under 1 FPS and its status server can take seconds to answer: max_fps 2
    leaves it some idle time, and a frame every 20 s still counts as frames flowing."""
    machine.put("pi", small_video, "face.mp4")
    path = tmp_path_factory.mktemp("field-config") / "edgefer.toml"
    path.write_text(
        '[source]\nuri = "/home/pi/face.mp4"\nloop = true\nmax_fps = 2\nstall_seconds = 20\n'
        '[detector]\nkind = "blazeface"\n'
        '[outputs.jsonl]\npath = "events.jsonl"\n'
        '[outputs.mqtt]\nhost = "127.0.0.1"\n'
        "[events]\nsummary_interval = 5\n"
        f"[server]\nport = {PORT}\n"
    )
    return path


def variant(config: Path, name: str, old: str, new: str) -> Path:
    """A copy of the config with one change, for a deploy that must differ from the last."""
    text = config.read_text()
    assert old in text, old
    path = config.with_name(name)
    path.write_text(text.replace(old, new))
    return path


@pytest.fixture(scope="session")
def refused(field_deployer, config):
    """The first deploy, with every default (no --service), to a pi that may not turn on its
    own lingering: no polkit (as on Raspberry Pi OS Lite), no sudo."""
    return field_deployer.push(config, "--health-timeout", HEALTH_TIMEOUT)


@pytest.fixture(scope="session")
def deployed(refused, field_deployer, config, machine):
    """The same deploy once pi may run exactly `sudo loginctl enable-linger pi` (Raspberry Pi
    OS's first user may run anything with sudo): the deploy turns lingering on itself."""
    machine.ssh(
        "admin",
        "echo 'pi ALL=(root) NOPASSWD: /usr/bin/loginctl enable-linger pi' | "
        "sudo -n tee /etc/sudoers.d/pi-linger && sudo -n chmod 0440 /etc/sudoers.d/pi-linger",
    )
    return field_deployer.push(config, "--health-timeout", HEALTH_TIMEOUT)
