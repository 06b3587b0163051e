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
