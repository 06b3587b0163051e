"""The offline wheelhouse builder (edgefer/deploy/wheelhouse.py), without the network: the tags
it asks pip for, the requirement set it resolves for the target (not for this machine), the
wheels it accepts, and its refusals. tests/arm64 installs a real one on an emulated Pi."""

from __future__ import annotations

import importlib.metadata
import platform
import sys
from pathlib import Path

import pytest
from packaging import tags
from packaging.requirements import Requirement

from edgefer.deploy import wheelhouse
from edgefer.deploy.wheelhouse import (
    build_wheelhouse,
    check_wheels,
    download_command,
    platform_tags,
    target_requirements,
)
from edgefer.errors import EdgeferError

PI = {"arch": "aarch64", "python": "3.11", "glibc": (2, 36)}


def test_pi_tags_cover_every_glibc_level_newest_first():
    got = platform_tags("aarch64", (2, 36))
    levels = [f"manylinux_2_{m}_aarch64" for m in range(36, 16, -1)]
    assert got == [*levels, "manylinux2014_aarch64", "linux_aarch64"]


def test_x86_tags_include_the_legacy_aliases_after_their_level():
    got = platform_tags("x86_64", (2, 17))
    assert got.index("manylinux2014_x86_64") == got.index("manylinux_2_17_x86_64") + 1
    assert got.index("manylinux2010_x86_64") == got.index("manylinux_2_12_x86_64") + 1
    assert got[-2:] == ["manylinux1_x86_64", "linux_x86_64"]


@pytest.mark.skipif(
    sys.platform != "linux" or platform.libc_ver()[0] != "glibc", reason="needs a glibc Linux"
)
def test_tags_are_what_pip_accepts_on_this_machine_in_the_order_it_prefers_them():
    """The same function for this machine's own architecture and glibc must give the tags that
    pip's tag logic (packaging.tags) gives for the running interpreter, and prefer among
    manylinux wheels as pip does: the newest glibc level first (pip installs the wheel whose tag
    comes first). Where the plain linux_<arch> tag goes differs between packaging versions
    (26.4 puts it first) and decides nothing: no package index serves linux_* wheels."""
    glibc = tuple(int(p) for p in platform.libc_ver()[1].split(".")[:2])
    ours, pips = platform_tags(platform.machine(), glibc), list(tags.platform_tags())
    assert set(ours) == set(pips) and len(ours) == len(pips)
    assert glibc_levels(ours) == glibc_levels(pips)
    assert glibc_levels(ours) == sorted(glibc_levels(ours), reverse=True)


def glibc_levels(platforms: list[str]) -> list[int]:
    """The glibc minor version of each manylinux tag, in the tags' order, a legacy alias counted
    as the level it names (manylinux2014 is manylinux_2_17) and a repeated level once."""
    aliases = {"manylinux1": 5, "manylinux2010": 12, "manylinux2014": 17}
    levels = []
    for tag in platforms:
        legacy = aliases.get(tag.split("_")[0])
        level = legacy or (int(tag.split("_")[2]) if tag.startswith("manylinux_") else None)
        if level is not None and (not levels or levels[-1] != level):
            levels.append(level)
    return levels


REQUIRES = [
    "numpy>=1.24",
    'ai-edge-litert>=1.2,<2.2; platform_machine == "aarch64"',
    'ai-edge-litert>=1.2; platform_machine != "aarch64"',
    'tomli>=2; python_version < "3.11"',
    'pywin32; sys_platform == "win32"',
    'tensorflow>=2.18; extra == "train"',
    'edgefer[train]; extra == "all"',
]


def test_markers_are_evaluated_for_the_target_not_this_machine():
    assert target_requirements(REQUIRES, "aarch64", "3.11") == [
        "numpy>=1.24",
        "ai-edge-litert<2.2,>=1.2",
    ]
    assert target_requirements(REQUIRES, "x86_64", "3.11") == [
        "numpy>=1.24",
        "ai-edge-litert>=1.2",
    ]
    assert "tomli>=2" in target_requirements(REQUIRES, "aarch64", "3.10")


def test_the_base_requirements_are_edgefers_non_extra_dependencies():
    got = {Requirement(r).name for r in wheelhouse.base_requirements("aarch64", "3.11")}
    declared = [Requirement(r) for r in importlib.metadata.requires("edgefer")]
    base = {r.name for r in declared if r.marker is None or "extra" not in str(r.marker)}
    assert got == base
    assert {"numpy", "ai-edge-litert", "opencv-python-headless"} <= got
    assert not got & {"tensorflow", "onnxruntime", "pytest"}


def test_download_command_asks_for_wheels_of_the_target_only(tmp_path):
    cmd = download_command(tmp_path, ["numpy>=1.24"], "aarch64", "3.11", (2, 36))
    assert cmd[:4] == [sys.executable, "-m", "pip", "download"]
    assert "--only-binary=:all:" in cmd and cmd[-1] == "numpy>=1.24"
    for flag, value in [("--python-version", "3.11"), ("--abi", "cp311"), ("--dest", tmp_path)]:
        assert cmd[cmd.index(flag) + 1] == str(value)
    asked = [cmd[i + 1] for i, c in enumerate(cmd) if c == "--platform"]
    assert asked == platform_tags("aarch64", (2, 36))


@pytest.mark.parametrize(
    "name",
    [
        "numpy-2.4.6-cp311-cp311-manylinux_2_27_aarch64.manylinux_2_28_aarch64.whl",
        "opencv_python_headless-4.14.0.94-cp37-abi3-manylinux2014_aarch64.whl",
        "click-8.5.1-py3-none-any.whl",
        "flatbuffers-25.12.19-py2.py3-none-any.whl",
    ],
)
def test_wheels_the_pi_installs_are_accepted(name):
    check_wheels([Path(name)], **PI)


@pytest.mark.parametrize(
    "name",
    [
        "numpy-2.4.6-cp311-cp311-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl",  # other arch
        "numpy-2.4.6-cp311-cp311-manylinux_2_38_aarch64.whl",  # newer glibc than the Pi's
        "numpy-2.4.6-cp312-cp312-manylinux_2_28_aarch64.whl",  # other Python
        "numpy-2.4.6-cp311-cp311-musllinux_1_2_aarch64.whl",  # other C library
    ],
)
def test_wheels_the_pi_refuses_are_refused_by_name(name):
    with pytest.raises(EdgeferError, match=f"{name}: does not install on aarch64") as exc:
        check_wheels([Path(name)], **PI)
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize(
    "target, message",
    [
        ({"arch": "arm64; rm"}, "architecture"),
        ({"python": "python3"}, "Python 'python3'"),
        ({"glibc": (2, 12)}, "glibc 2.12: manylinux wheels for aarch64 need glibc 2.17"),
    ],
)
def test_a_bad_target_is_one_line(tmp_path, target, message):
    with pytest.raises(EdgeferError, match=message):
        build_wheelhouse(fake_wheel(tmp_path), dest=tmp_path / "wh", requirements=[], **target)


def fake_wheel(where: Path, name="edgefer-0.1.0-py3-none-any.whl") -> Path:
    where.mkdir(parents=True, exist_ok=True)
    (where / name).write_bytes(b"PK fake " + name.encode())
    return where / name


@pytest.fixture
def fake_pip(monkeypatch):
    """pip download replaced by a function that saves named wheels; records what it was asked."""
    calls = []

    def download(dest, requirements, arch, python, glibc, progress):
        calls.append(requirements)
        for name in fake_pip.saves:
            fake_wheel(dest, name)

    fake_pip.saves = ["click-8.5.1-py3-none-any.whl"]
    monkeypatch.setattr(wheelhouse, "_download", download)
    fake_pip.calls = calls
    return fake_pip


def test_the_wheelhouse_holds_the_downloads_and_the_edgefer_wheel(tmp_path, fake_pip):
    ours = fake_wheel(tmp_path / "built")
    got = build_wheelhouse(ours, dest=tmp_path / "wh", **PI)
    assert [w.name for w in got] == ["click-8.5.1-py3-none-any.whl", ours.name]
    assert (tmp_path / "wh" / ours.name).read_bytes() == ours.read_bytes()
    assert fake_pip.calls == [wheelhouse.base_requirements("aarch64", "3.11")]


def test_a_downloaded_wheel_for_another_platform_is_refused(tmp_path, fake_pip):
    fake_pip.saves = ["numpy-2.4.6-cp311-cp311-manylinux_2_28_x86_64.whl"]
    with pytest.raises(EdgeferError, match="numpy-2.4.6.*does not install on aarch64"):
        build_wheelhouse(fake_wheel(tmp_path), dest=tmp_path / "wh", **PI)


def test_a_non_empty_destination_is_refused(tmp_path, fake_pip):
    dest = tmp_path / "wh"
    fake_wheel(dest, "numpy-1.0-py3-none-any.whl")  # stale: could be what the device picks
    with pytest.raises(EdgeferError, match="not an empty directory"):
        build_wheelhouse(fake_wheel(tmp_path / "built"), dest=dest, **PI)
    assert fake_pip.calls == []


def test_not_a_wheel_is_refused(tmp_path, fake_pip):
    (tmp_path / "edgefer.tar.gz").write_bytes(b"")
    with pytest.raises(EdgeferError, match="not a wheel file"):
        build_wheelhouse(tmp_path / "edgefer.tar.gz", dest=tmp_path / "wh", **PI)


def test_the_cache_keeps_one_directory_per_content(tmp_path, fake_pip, monkeypatch):
    """Without dest: same content, same directory (the device reuses its venv); new content, a new
    directory, the old one left intact for a deploy that may still be shipping from it."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    ours = fake_wheel(tmp_path / "built")
    first = build_wheelhouse(ours, **PI)
    assert build_wheelhouse(ours, **PI) == first
    fake_pip.saves = ["click-8.6.0-py3-none-any.whl"]
    second = build_wheelhouse(ours, **PI)
    assert second[0].parent != first[0].parent and all(w.is_file() for w in first + second)
    assert not list(first[0].parent.parent.glob(".build-*"))
