import json
import subprocess
import sys

from tests.cli_helpers import run


def test_help_lists_commands():
    res = run("--help")
    assert res.exit_code == 0 and "data" in res.output and "calib" in res.output


def test_base_cli_never_imports_tensorflow():
    """`edgefer --help` must work on a Pi, where TensorFlow is not installed."""
    code = (
        "import sys; from edgefer.cli import main; import edgefer.device\n"
        "heavy = [m for m in ('tensorflow', 'keras', 'onnx', 'tf2onnx') if m in sys.modules]\n"
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_missing_extra_names_the_extra():
    import pytest

    from edgefer.errors import MissingExtraError, require

    with pytest.raises(MissingExtraError, match=r"pip install 'edgefer\[train\]'"):
        require("no_such_module_edgefer", "train")


def _without_tensorflow(*argv) -> subprocess.CompletedProcess:
    code = (
        "import sys\n"
        "for name in ('tensorflow', 'keras'):\n"
        "    sys.modules[name] = None\n"
        "from edgefer.cli import main\n"
        f"main({list(argv)!r})\n"
    )
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)


def test_training_commands_name_the_extra_on_a_base_install():
    proc = _without_tensorflow("models")
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: this command needs 'tensorflow'")
    assert "pip install 'edgefer[train]'" in proc.stderr and "Traceback" not in proc.stderr


def test_benchmark_runs_converted_formats_without_tensorflow(tiny_bundle, tiny_csv):
    proc = _without_tensorflow(
        "benchmark", str(tiny_bundle), "--data", str(tiny_csv), "--latency-runs", "2"
    )
    assert proc.returncode == 0, proc.stderr[-1500:]
    assert "not scored here: " in proc.stderr and "model.keras" in proc.stderr
    assert "drop vs tflite-fp32" in proc.stdout


def test_detect_works_with_no_model_argument_on_a_base_install(tmp_path, astronaut_bgr):
    """Right after `pip install .`: the bundled model, no TensorFlow, nothing else to pass."""
    import cv2

    photo = tmp_path / "photo.jpg"
    cv2.imwrite(str(photo), astronaut_bgr)
    faces = []
    for extra in (
        [],
        ["--detector", "blazeface"],
        ["--model", "edge-fast", "--detector", "blazeface"],  # the other bundled model, by name
    ):
        proc = _without_tensorflow("detect", "--source", str(photo), "--json", *extra)
        assert proc.returncode == 0, proc.stderr[-1500:]
        (face,) = json.loads(proc.stdout.splitlines()[-1])["faces"]
        assert face["label"] in face["scores"] and len(face["scores"]) == 7
        faces.append(face)
    assert faces[2]["box"] == faces[1]["box"] and faces[2]["scores"] != faces[1]["scores"]
