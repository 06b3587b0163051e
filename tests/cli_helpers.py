"""The one way tests invoke the `edgefer` command in-process."""

from __future__ import annotations

from click.testing import CliRunner, Result

from edgefer.cli import main


def run(*args) -> Result:
    """`edgefer ARGS` in-process; arguments may be paths or numbers."""
    return CliRunner().invoke(main, [str(a) for a in args])
