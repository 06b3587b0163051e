"""The base runtime on an emulated Raspberry Pi (arm64 Debian bookworm under qemu-user), checked
against this machine's run of the same inputs. See emulated.py."""
