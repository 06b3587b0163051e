"""`edgefer deploy --offline`: a device without any package index gets its runtime from a
wheelhouse built on the deploying machine for the device's platform and Python."""

from __future__ import annotations

import json

from tests.deploy.devices import status_row


def test_without_an_index_pip_on_the_device_fails_and_leaves_nothing_behind(
    offline_first_deploy, offline_deployer
):
    online, after, _, _ = offline_first_deploy
    assert online.exit_code == 1
    assert "pip install failed on the device: ERROR: " in online.stdout
    assert "numpy" in online.stdout or "No matching distribution" in online.stdout
    assert after == {"releases": [], "venvs": []}  # no release, no half-made venv


def test_offline_installs_from_the_shipped_wheelhouse(offline_first_deploy, offline_deployer):
    _, _, result, left = offline_first_deploy
    server = offline_deployer.server
    assert "building the wheelhouse x86_64-cp3.11-glibc" in result.output
    assert "making the venv (pip install; minutes on a Pi) from the shipped wheelhouse" in (
        result.output
    )
    release = server.home / ".edgefer/releases" / status_row(result, server)[2]
    assert left["releases"] == [release.name]
    shipped = {w.name.split("-")[0] for w in (release / "wheels").iterdir()}
    assert {"edgefer", "numpy", "ai_edge_litert", "opencv_python_headless"} <= shipped
    # pip took every wheel from the release's own wheelhouse.
    processed = [x for x in result.output.splitlines() if "pip: Processing" in x]
    assert processed and all(f"{release}/wheels/" in x for x in processed)
    assert json.loads((release / "release.json").read_text())["offline"] is True
    status = offline_deployer("status")
    assert status.exit_code == 0 and status_row(status, server)[6] == "ok"
