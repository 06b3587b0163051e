"""What the field tests ask the machine, as `admin` (pi must not log in: a login would start
pi's user manager and make "nobody logged in" untrue): the daemon's unit, /healthz, /status,
its events and what the broker on the machine holds."""

from __future__ import annotations

import json
import time

import pytest

# The unit's WatchdogSec (device/daemon/edgefer.service): what the watchdog test allows twice of.
WATCHDOG_SEC = 30
HEALTH_TIMEOUT = 240  # the deploy's --health-timeout: a first start under TCG is slow
PORT = 8765  # the status server's, in the config the tests deploy
USER_SYSTEMCTL = "XDG_RUNTIME_DIR=/run/user/$(id -u pi) systemctl --user"


def as_pi_unseen(command: str) -> str:
    """`command` as pi, run by admin through sudo: no login session for pi is opened (Debian's
    sudo PAM stack has no pam_systemd), so 'nobody logged in' stays true."""
    return f"sudo -n -u pi sh -c '{command}'"


def unit(machine, *props: str) -> dict[str, str]:
    """The user unit's properties, as systemd reports them."""
    out = machine.ssh(
        "admin", as_pi_unseen(f"{USER_SYSTEMCTL} show edgefer.service -p {','.join(props)}")
    ).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def fetch(machine, path: str, port: int = PORT) -> tuple[int, str]:
    """(status code, body) of the daemon's status server, asked on the machine (it listens on
    loopback only); (0, "") when nothing answers."""
    script = (
        "import sys, urllib.request as u, urllib.error as e\n"
        "try: r = u.urlopen(sys.argv[1], timeout=5); print(r.status); print(r.read().decode())\n"
        "except e.HTTPError as x: print(x.code); print(x.read().decode())\n"
        "except OSError: print(0)\n"
    )
    out = machine.ssh(
        "admin", f"python3 -c '{script}' http://127.0.0.1:{port}{path}", check=False
    ).stdout
    code, _, body = out.partition("\n")
    return (int(code) if code.strip().isdigit() else 0), body


def healthz(machine, port: int = PORT) -> int:
    return fetch(machine, "/healthz", port)[0]


def status(machine, port: int = PORT) -> dict:
    code, body = fetch(machine, "/status", port)
    assert code == 200, f"/status: {code} {body[:300]}"
    return json.loads(body)


def source(machine, port: int = PORT, camera: str = "default") -> dict:
    """What /status says of a camera's source."""
    return status(machine, port)["cameras"][camera]["source"]


def healthy_within(machine, seconds: float, port: int = PORT) -> float:
    """Seconds until /healthz says 200; fails after `seconds`."""
    t0 = time.monotonic()
    while healthz(machine, port) != 200:
        assert time.monotonic() - t0 < seconds, f"no /healthz 200 within {seconds:.0f} s"
        time.sleep(2)
    return time.monotonic() - t0


def wait_restarted(machine, old_pid: str, timeout: float) -> float:
    """Seconds until the unit has a main process other than `old_pid` and /healthz is 200."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        now = unit(machine, "MainPID", "ActiveState")
        moved = now["MainPID"] not in ("0", old_pid) and now["ActiveState"] == "active"
        if moved and healthz(machine) == 200:
            return time.monotonic() - t0
        time.sleep(1)
    pytest.fail(f"not restarted and healthy within {timeout:.0f} s: {now}\n{journal(machine)}")


def journal(machine, lines: int = 40, since: str | None = None) -> str:
    when = f"--since @{since}" if since else f"-n {lines}"
    return machine.ssh("admin", f"sudo -n journalctl {when} --no-pager", check=False).stdout


def daemon_env(machine, name: str) -> str:
    """A variable in the running daemon's environment (systemd sets STATE_DIRECTORY)."""
    pid = unit(machine, "MainPID")["MainPID"]
    out = machine.ssh("admin", f"sudo -n cat /proc/{pid}/environ", check=False).stdout
    found = [v.split("=", 1)[1] for v in out.split("\0") if v.startswith(f"{name}=")]
    assert found, f"{name} is not in the daemon's environment"
    return found[0]


def events(machine, path: str) -> list[dict]:
    """The daemon's JSONL events (the newest file), read as root."""
    out = machine.ssh("admin", f"sudo -n cat {path}", check=False).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def retained(machine, topic: str) -> str | None:
    """The broker's retained message on `topic` (the broker on the machine), None if none."""
    out = machine.ssh(
        "admin", f"mosquitto_sub -h 127.0.0.1 -t {topic} -C 1 -W 3 --retained-only", check=False
    )
    return out.stdout.strip() if out.returncode == 0 and out.stdout else None
