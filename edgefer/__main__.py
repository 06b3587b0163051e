from edgefer.cli import run

run()
