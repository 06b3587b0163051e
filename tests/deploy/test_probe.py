"""What a device must have for a deploy: the probe's verdicts, one line each that says what to
do (the probe itself runs against a real device in test_deploy.py)."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest

from edgefer.deploy.errors import HostError
from edgefer.deploy.layout import Layout
from edgefer.deploy.plan import VENV_BYTES
from edgefer.deploy.preflight import RESERVE_BYTES, check_disk, check_fit
from edgefer.deploy.probe import Probe, check_supported
from edgefer.device.daemon.config import DaemonConfig

PI5 = Probe(
    home="/home/pi",
    user="pi",
    group="pi",
    os="Debian GNU/Linux 12 (bookworm)",
    system="Linux",
    machine="aarch64",
    python=(3, 11, 2),
    python_path="/usr/bin/python3",
    venv=True,
    libc="glibc",
    libc_version="2.36",
    disk_free=20_000_000_000,
    mem_total=8_000_000_000,
    mem_available=7_000_000_000,
    usb=("1d6b:0002",),
    apex=False,
    libedgetpu=False,
    cameras=(("/dev/video0", "unicam"),),
    systemd=True,
)


def test_a_64_bit_pi_on_bookworm_gets_ai_edge_litert():
    assert check_supported(PI5) == "ai-edge-litert"
    assert "aarch64, Python 3.11.2" in PI5.summary() and "/dev/video0" in PI5.summary()


@pytest.mark.parametrize(
    "change, message",
    [
        (
            {"machine": "armv7l"},
            "armv7l (32-bit): ai-edge-litert has no wheel for it; install a 64-bit OS",
        ),
        ({"machine": "armv6l"}, "install a 64-bit OS"),
        ({"machine": "riscv64"}, "architecture riscv64: ai-edge-litert has no wheel"),
        ({"python": (3, 9, 2)}, "Python 3.9 on the device; edgefer needs 3.11 or newer"),
        ({"python": (3, 15, 0)}, "ai-edge-litert has wheels up to Python 3.14"),
        ({"libc_version": "2.24"}, "need glibc 2.27 or newer"),
        ({"libc": "", "libc_version": ""}, "C library unknown"),  # musl (Alpine)
        ({"venv": False}, "sudo apt install python3-venv"),
        ({"system": "Darwin"}, "Linux devices only"),
    ],
)
def test_a_device_without_a_runtime_wheel_is_told_what_to_do(change, message):
    with pytest.raises(HostError, match=re.escape(message)) as err:
        check_supported(replace(PI5, **change))
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    "change, where",
    [
        ({"apex": True}, "PCIe /dev/apex_0"),
        ({"usb": ("18d1:9302",)}, "USB 18d1:9302"),
        ({"usb": ("1a6e:089a",)}, "USB 1a6e:089a"),
        ({}, None),
    ],
)
def test_an_edge_tpu_is_found_on_pcie_or_usb(change, where):
    assert replace(PI5, **change).edge_tpu == where


def test_the_config_must_fit_the_device():
    edgetpu = DaemonConfig(backend="edgetpu")
    with pytest.raises(HostError, match="no Edge TPU found"):
        check_fit(PI5, edgetpu, "user")
    with pytest.raises(HostError, match="sudo apt install libedgetpu1-std"):
        check_fit(replace(PI5, apex=True), edgetpu, "user")
    check_fit(replace(PI5, apex=True, libedgetpu=True), edgetpu, "user")
    with pytest.raises(
        HostError, match="no systemd on the device for --service user: use --service none"
    ):
        check_fit(replace(PI5, systemd=False), DaemonConfig(), "user")
    check_fit(replace(PI5, systemd=False), DaemonConfig(), "none")


def test_a_device_without_room_for_the_release_is_refused_before_anything_is_sent():
    layout = Layout("/home/pi")
    need = 5_000_000 + VENV_BYTES
    check_disk(replace(PI5, disk_free=need + RESERVE_BYTES), need, layout)
    with pytest.raises(
        HostError, match=r"not enough disk space: this release needs about 405.0 MB"
    ):
        check_disk(replace(PI5, disk_free=need + RESERVE_BYTES - 1), need, layout)
