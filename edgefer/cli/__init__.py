"""The `edgefer` command. Subcommands import heavy libraries (TensorFlow, ONNX) only when run,
so `edgefer --help` and the device commands work on the base install."""

from __future__ import annotations

import os
import sys

import click

from edgefer import __version__
from edgefer.allocator import reexec_with_tcmalloc
from edgefer.cli.benchmark_cmd import benchmark_cmd
from edgefer.cli.calib_cmd import calib
from edgefer.cli.convert_cmd import convert
from edgefer.cli.daemon_cmd import daemon
from edgefer.cli.data_cmd import data
from edgefer.cli.demo_cmd import demo
from edgefer.cli.deploy_cmd import deploy
from edgefer.cli.device_cmd import bench, detect
from edgefer.cli.evaluate_cmd import evaluate
from edgefer.cli.models_cmd import models
from edgefer.cli.sweep_cmd import sweep
from edgefer.cli.teach_cmd import teach
from edgefer.cli.train_cmd import train
from edgefer.errors import EdgeferError


class EdgeferGroup(click.Group):
    """Turns EdgeferError into one line on stderr and its exit code, never a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except EdgeferError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(exc.exit_code)


@click.group(cls=EdgeferGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="edgefer")
@click.option(
    "--verbose",
    is_flag=True,
    help="Show the native libraries' own log lines (TensorFlow start-up, converter notes).",
)
def main(verbose):
    """Facial-expression recognition from training to the edge device."""
    if verbose:
        os.environ["EDGEFER_VERBOSE"] = "1"


main.add_command(demo)
main.add_command(data)
main.add_command(calib)
main.add_command(models)
main.add_command(train)
main.add_command(evaluate)
main.add_command(sweep)
main.add_command(teach)
main.add_command(convert)
main.add_command(benchmark_cmd)
main.add_command(detect)
main.add_command(daemon)
main.add_command(bench)
main.add_command(deploy)


def run():
    """The console script: the long TensorFlow commands restart once under tcmalloc (see
    edgefer/allocator.py), then the click group runs. Tests call `main` and never re-exec."""
    reexec_with_tcmalloc(sys.argv)
    main()
