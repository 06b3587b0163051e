"""`python -m tests.field [--cpus N] [--memory MB] [--shell]`: build (or reuse) the field
machine's image, boot it, print the timings; with --shell, print how to log in and keep it
running until Ctrl-C."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from tests.field.machine import Image, Machine, MachineError


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.field")
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--memory", type=int, default=2048)
    parser.add_argument("--shell", action="store_true")
    args = parser.parse_args()
    try:
        image = Image().ensure()
        print(f"image: {image.dir} {image.timings or '(cached)'}")
        with tempfile.TemporaryDirectory() as work:
            machine = Machine(image, Path(work), args.cpus, args.memory).start()
            try:
                print(f"boot to SSH: {machine.timings['boot']:.1f} s")
                if args.shell:
                    print(" ".join(machine.ssh_command("pi", "")[:-1]))
                    try:
                        machine.proc.wait()
                    except KeyboardInterrupt:
                        pass
            finally:
                machine.stop()
    except MachineError as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
