"""Item 6: the daemon on a real V4L2 camera (the kernel's vivid driver), and that camera
unplugged and plugged back, as a USB camera is: /healthz and /status say the source is down,
a `source_down` event goes out on JSONL and MQTT (with the broker's retained per-source state),
the daemon lets go of the dead device (so the driver can be removed), and frames come back by
themselves within 30 s of the camera's return, with a `source_up` event.

Unplugging is the driver unbinding its device (what a USB disconnect does): the node goes away
under the open file, whose reads then fail. The module can only be removed (`rmmod`) once every
file on it is closed, so `rmmod` succeeding shows that the daemon released the dead handle; it
used to hold it forever ("Module vivid is in use"), and reread a dead camera at 100% CPU.
"""

from __future__ import annotations

import time

import pytest

from tests.field.checks import (
    HEALTH_TIMEOUT,
    daemon_env,
    events,
    healthy_within,
    healthz,
    retained,
    source,
)
from tests.field.conftest import say, variant

pytestmark = pytest.mark.field

UNPLUG = "echo vivid.0 | sudo -n tee /sys/bus/platform/drivers/vivid/unbind"
SOURCE_TOPIC = "edgefer/default/source"  # <topic_prefix>/<camera>/source, retained


def source_events(machine, state_dir: str) -> list[str]:
    kinds = [e["type"] for e in events(machine, f"{state_dir}/events.jsonl")]
    return [k for k in kinds if k.startswith("source_")]


@pytest.fixture(scope="module")
def camera(deployed, field_deployer, machine, config) -> str:
    """A second deploy that switches the source to /dev/video0; the daemon's state directory."""
    cam = variant(
        config, "camera.toml", 'uri = "/home/pi/face.mp4"\nloop = true\n', 'uri = "/dev/video0"\n'
    )
    proc = field_deployer.push(cam, "--health-timeout", HEALTH_TIMEOUT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return daemon_env(machine, "STATE_DIRECTORY")


def test_6_the_daemon_reads_frames_from_a_real_v4l2_camera(camera, machine):
    first = source(machine)
    time.sleep(5)
    then = source(machine)
    assert then["uri"] == "/dev/video0" and then["state"] == "streaming", then
    assert then["frames_read"] > first["frames_read"], (first, then)
    assert retained(machine, SOURCE_TOPIC) == "online"
    say(f"camera: {then['frames_read'] - first['frames_read']} frames read in 5 s")


def test_6_an_unplugged_camera_is_reported_down_and_let_go(camera, machine):
    before = source_events(machine, camera)
    machine.ssh("admin", UNPLUG)
    t0 = time.monotonic()
    while healthz(machine) != 503:
        assert time.monotonic() - t0 < 90, "/healthz did not turn 503 after the unplug"
        time.sleep(2)
    say(f"unplugged -> /healthz 503 in {time.monotonic() - t0:.1f} s")
    said = source(machine)
    assert said["state"] == "reconnecting" and said["error"], said
    t1 = time.monotonic()
    while source_events(machine, camera)[len(before) :] != ["source_down"]:
        assert time.monotonic() - t1 < 60, source_events(machine, camera)
        time.sleep(2)
    assert retained(machine, SOURCE_TOPIC) == "offline"
    # The daemon closed the dead device: the driver can go (retried: a read may be under way).
    for _ in range(15):
        removed = machine.ssh("admin", "sudo -n rmmod vivid", check=False)
        if removed.returncode == 0:
            break
        time.sleep(2)
    assert removed.returncode == 0, removed.stderr


def test_6_a_camera_plugged_back_is_read_within_30_s(camera, machine):
    before = source_events(machine, camera)
    machine.ssh("admin", "sudo -n modprobe vivid")
    took = healthy_within(machine, 30)
    say(f"plugged back -> /healthz 200 in {took:.1f} s")
    assert source(machine)["state"] == "streaming"
    assert source_events(machine, camera)[len(before) :] == ["source_up"]
    assert retained(machine, SOURCE_TOPIC) == "online"
