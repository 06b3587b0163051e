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
    """`edgefer deploy ...` against the machine as `pi`, the way a person runs it."""

    def __init__(self, vm: Machine, wheel: Path, cache: Path):
        self.vm = vm
        self.wheel = wheel
        self.env = {**os.environ, "XDG_CACHE_HOME": str(cache)}

    def host_args(self) -> list[str]:
        return [
            "--host", self.vm.address("pi"),
            "--identity", str(self.vm.image.key),
            "--known-hosts", str(self.vm.known_hosts),
        ]  # fmt: skip

    def __call__(self, *args, timeout: float = 1200) -> subprocess.CompletedProcess:
        """`edgefer deploy ARGS --host pi@...`. Its lines are echoed as they come (a deploy under
        TCG takes minutes; pytest -s shows where it is) and kept apart as stdout and stderr."""
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

    def push(self, config: Path, *args, timeout: float = 1200):
        return self(
            "edge", "--config", config, "--wheel", self.wheel, "--offline", *args, timeout=timeout
        )


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
