from pathlib import Path

import pytest

from edgefer.bundled import NAMES, bundled_path, default_bundle, resolve_bundle
from edgefer.deploy.release import verify_bundle
from edgefer.errors import EdgeferError


def test_no_model_means_the_default_bundle():
    assert resolve_bundle(None) == default_bundle() == bundled_path("edge")


@pytest.mark.parametrize("name", NAMES)
def test_a_bundled_name_is_a_verified_bundle_in_the_package(name):
    path = resolve_bundle(name)
    assert path.parent == default_bundle().parent and path.name == name
    manifest = verify_bundle(path).manifest  # every file matches its manifest sha256
    assert {d.variant for d in manifest.detectors} == {"short", "full"}
    assert {a.format for a in manifest.artifacts} >= {"tflite-int8", "onnx-int8", "keras"}


def test_a_bundled_name_wins_over_a_directory_of_that_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "edge").mkdir()
    assert resolve_bundle("edge") == default_bundle()
    assert resolve_bundle("./edge") == Path("./edge")


def test_anything_else_is_a_path():
    assert resolve_bundle("runs/x/bundle") == Path("runs/x/bundle")


def test_an_unknown_bundled_name_is_an_error():
    with pytest.raises(EdgeferError, match="'edge-tiny': expected one of edge, edge-fast"):
        bundled_path("edge-tiny")
