"""`edgefer deploy` against a machine that boots like a Pi: systemd, sshd, lingering, a watchdog,
reboots (tests/field/machine.py)."""
