import subprocess
import sys

from edgefer.bundled import default_bundle
from edgefer.device.manifest import load_manifest
from edgefer.hashing import sha256_file


def test_demo_runs_offline_from_the_bundled_model(tmp_path):
    """The README's main job, as a user runs it: a fresh process, no data, no network."""
    out = tmp_path / "demo"
    proc = subprocess.run(
        [sys.executable, "-m", "edgefer", "demo", "--out", str(out), "--frames", "20"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = {line.split()[0]: line.split() for line in proc.stdout.splitlines() if line.strip()}
    assert rows["keras"][5] == "100.00"  # the float reference agrees with itself
    for fmt in ("tflite-int8", "onnx-int8"):
        assert float(rows[fmt][5]) >= 90, proc.stdout  # agreement with float, on LFW faces
    assert "20 frames" in proc.stdout and "inference" in rows
    assert "face.mp4#0: " in proc.stdout and "no face" not in proc.stdout
    # TensorFlow's native start-up lines stay off the terminal without --verbose
    assert "cuda" not in proc.stderr.lower() and "absl" not in proc.stderr
    manifest = load_manifest(out / "bundle")
    assert [a.format for a in manifest.artifacts] == ["keras", "tflite-int8", "onnx-int8"]
    assert manifest.source_model.sha256 == sha256_file(default_bundle() / "model.keras")
    assert {p.name for p in out.iterdir()} == {
        "bundle",
        "calibration.npz",
        "calibration.json",
        "face.mp4",
    }
