import subprocess
import sys

from click.testing import CliRunner

from edgefer.cli import main


def test_help_lists_commands():
    res = CliRunner().invoke(main, ["--help"])
    assert res.exit_code == 0 and "data" in res.output and "calib" in res.output


def test_base_cli_never_imports_tensorflow():
    """`edgefer --help` must work on a Pi, where TensorFlow is not installed."""
    code = ("import sys; from edgefer.cli import main; import edgefer.device\n"
            "heavy = [m for m in ('tensorflow', 'keras', 'onnx', 'tf2onnx') if m in sys.modules]\n"
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_missing_extra_names_the_extra():
    from edgefer.errors import MissingExtraError, require
    import pytest

    with pytest.raises(MissingExtraError, match=r"pip install 'edgefer\[train\]'"):
        require("no_such_module_edgefer", "train")


def _without_tensorflow(*argv) -> subprocess.CompletedProcess:
    code = ("import sys\n"
            "for name in ('tensorflow', 'keras'):\n"
            "    sys.modules[name] = None\n"
            "from edgefer.cli import main\n"
            f"main({list(argv)!r})\n")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)


def test_training_commands_name_the_extra_on_a_base_install():
    proc = _without_tensorflow("models")
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: this command needs 'tensorflow'")
    assert "pip install 'edgefer[train]'" in proc.stderr and "Traceback" not in proc.stderr


def test_benchmark_runs_converted_formats_without_tensorflow(tiny_bundle, tiny_csv):
    proc = _without_tensorflow("benchmark", str(tiny_bundle), "--data", str(tiny_csv),
                               "--latency-runs", "2")
    assert proc.returncode == 0, proc.stderr[-1500:]
    assert "skipping keras" in proc.stderr and "drop vs tflite-fp32" in proc.stdout
