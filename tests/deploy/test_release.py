"""What a release holds (edgefer/deploy/release.py), without a device: only the files the
bundle's manifest lists, and the edgefer wheel pip installs taken from wheels/ alone."""

from __future__ import annotations

from edgefer.bundled import bundled_path
from edgefer.deploy.release import make_release, verify_bundle, wheel_items
from tests.cli_helpers import run
from tests.deploy.devices import copy_bundle


def test_a_bundle_ships_its_manifest_and_what_it_lists_nothing_else(tmp_path):
    bundle = copy_bundle(tmp_path / "edge-fast", bundled_path("edge-fast"))
    (bundle / "edgefer-notes.txt").write_text("notes\n")
    (bundle / "edgefer-9.9.9-py3-none-any.whl").write_bytes(b"PK stray")
    (bundle / "scratch").mkdir()
    (bundle / "scratch/draft.txt").write_text("draft\n")
    verified = verify_bundle(bundle)
    listed = [a.file for a in (*verified.manifest.artifacts, *verified.manifest.detectors)]
    assert sorted(i.path for i in verified.items) == sorted(
        f"bundle/{name}" for name in ["manifest.json", *listed]
    )


def test_the_edgefer_wheel_is_taken_from_wheels_only(tmp_path):
    """A bundle file named edgefer-* (a manifest may list any file name) sorts before wheels/:
    it must not be what pip is told to install."""
    bundle = copy_bundle(tmp_path / "bundle", bundled_path("edge-fast"))
    verified = verify_bundle(bundle)
    (tmp_path / "edgefer-notes.txt").write_text("notes\n")
    (tmp_path / "stray").mkdir()
    (tmp_path / "stray/edgefer-9.9.9-py3-none-any.whl").write_bytes(b"PK stray")
    wheel = tmp_path / "edgefer-0.1.0-py3-none-any.whl"
    wheel.write_bytes(b"PK wheel")
    other = tmp_path / "click-8.5.1-py3-none-any.whl"
    other.write_bytes(b"PK click")
    release = make_release(
        verified,
        {
            "bundle/edgefer-notes.txt": tmp_path / "edgefer-notes.txt",
            "bundle/edgefer-9.9.9-py3-none-any.whl": tmp_path
            / "stray/edgefer-9.9.9-py3-none-any.whl",
        },
        wheel_items([other, wheel]),
        "venvkey",
        "none",
        "edgefer.toml",
        False,
        False,
        tmp_path,
    )
    assert release.edgefer_wheel == "wheels/edgefer-0.1.0-py3-none-any.whl"


def test_a_wheel_that_is_not_edgefers_is_refused_before_any_host_is_touched(tmp_path):
    config = tmp_path / "edgefer.toml"
    config.write_text("")
    wheel = tmp_path / "notes-1.0-py3-none-any.whl"
    wheel.write_bytes(b"PK")
    result = run("deploy", "edge", "--host", "pi@kitchen", "--config", config, "--wheel", wheel)
    assert result.exit_code == 2
    assert result.output.strip() == (
        f"error: --wheel {wheel}: expected the edgefer wheel, edgefer-VERSION-TAGS.whl"
    )
