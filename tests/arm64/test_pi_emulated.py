"""The base runtime on an emulated Raspberry Pi 4 (Cortex-A72) and Pi 5 (Cortex-A76): Debian
bookworm arm64, Python 3.11.2, glibc 2.36, installed offline from the wheelhouse that
`edgefer deploy --offline` ships. Every TFLite format of the known-answer bundle, the bundled
model on real faces and `edgefer detect` on a group photo must give x86's labels, boxes and (within
tolerance) scores. Needs debootstrap, qemu-user-static and proot (.ci/run installs them); it
fails, never skips, without them. About 5 minutes from nothing, 2 with .cache/arm64."""

from __future__ import annotations

import copy
import sys

import pytest

from tests.arm64 import pi_root
from tests.arm64.emulated import Results, compare, run_all, summary
from tests.arm64.pi_root import CPUS, HarnessError

GROUPS = ("platform", "known", "frames", "bundled", "detect-haar", "detect-blazeface")


@pytest.fixture(scope="module")
def emulated(known_bundle, tmp_path_factory) -> Results:
    def log(message):
        print(f"arm64: {message}", file=sys.stderr, flush=True)

    try:
        res = run_all(tmp_path_factory.mktemp("arm64"), known_bundle, log=log)
    except HarnessError as exc:
        pytest.fail(str(exc), pytrace=False)
    print(summary(res), file=sys.stderr)
    return res


@pytest.mark.parametrize("group", GROUPS)
@pytest.mark.parametrize("cpu", CPUS)
def test_the_emulated_pi_gives_what_x86_gives(emulated, cpu, group):
    checks = [c for c in emulated.checks if c.cpu == cpu and c.group == group]
    assert checks, f"no {group} check ran on {cpu}"
    failed = [c for c in checks if not c.ok]
    assert not failed, "\n".join(f"{c.name}: {c.detail}" for c in failed)


def broken(emulated, change) -> list[str]:
    """The groups that fail once `change` is applied to a copy of the Cortex-A72 results."""
    pi = copy.deepcopy(emulated.pi["cortex-a72"])
    change(pi)
    checks = compare(emulated.x86, pi, "cortex-a72", emulated.inputs)
    return sorted({c.group for c in checks if not c.ok})


def swap_columns(scores, i, j):
    for row in scores:
        row[i], row[j] = row[j], row[i]


def test_the_comparison_catches_what_it_must(emulated):
    """Each way a Pi could differ from x86, applied to real results, fails its own check."""

    def bundled_label_swap(pi):
        swap_columns(pi["bundled"]["scores"], 3, 6)  # happy <-> neutral

    def int8_one_step(pi):
        pi["known"]["scores"]["tflite-int8"][0][0] += 1 / 256

    def fp32_off(pi):
        pi["known"]["scores"]["tflite-fp32"][5][2] += 1e-3

    def frame_label(pi):
        pi["known"]["frames"]["tflite-int8"][2][0][0] = "angry"

    def face_missing(pi):
        pi["detect"]["haar"].pop()

    def box_moved(pi):
        pi["detect"]["haar"][0]["box"][0] += 1

    def face_label(pi):
        pi["detect"]["blazeface"][0]["label"] = "sad"

    def other_cpu(pi):
        pi["features"] = list(CPUS["cortex-a76"].features)

    def onnx_only(pi):
        del pi["known"]["scores"]["tflite-fp16"]

    assert broken(emulated, lambda pi: None) == []
    assert broken(emulated, bundled_label_swap) == ["bundled"]
    assert broken(emulated, int8_one_step) == ["known"]
    assert broken(emulated, fp32_off) == ["known"]
    assert broken(emulated, frame_label) == ["frames"]
    assert broken(emulated, face_missing) == ["detect-haar"]
    assert broken(emulated, box_moved) == ["detect-haar"]
    assert broken(emulated, face_label) == ["detect-blazeface"]
    assert broken(emulated, other_cpu) == ["platform"]
    assert "known" in broken(emulated, onnx_only)


def test_a_missing_tool_fails_with_the_package_to_install(monkeypatch):
    monkeypatch.setattr(pi_root, "which", lambda tool: None if tool == "proot" else "/bin/true")
    with pytest.raises(HarnessError, match=r"needs proot: apt-get install proot \(.ci/run"):
        pi_root.require_tools()


def test_only_a_pis_core_is_emulated(tmp_path):
    """qemu's default `max` runs kernels no Pi has (and qemu 7.2 gets int8 ones wrong there)."""
    with pytest.raises(HarnessError, match="cpu 'max': expected one of cortex-a72, cortex-a76"):
        pi_root.PiRoot(tmp_path).guest_command(["/bin/true"], "max")
