"""How the daemon runs on a device: one small protocol, one implementation per `--service` mode,
so a deploy, its health check and `status`/`logs`/`rollback` never ask which mode a release uses.

A systemd service (the user's own manager, or the system's) supervises the daemon: it restarts
it after a crash and starts it at boot. Where there is no systemd (containers, CI) the daemon is
a plain process started under the release, unsupervised.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from typing import Protocol

from edgefer.deploy.errors import HostError
from edgefer.deploy.layout import Layout
from edgefer.deploy.ssh import Remote, quote
from edgefer.deploy.unit import UNIT

STOP_SECONDS = 10  # as the unit's TimeoutStopSec


class DaemonService(Protocol):
    """What a deploy needs of whatever runs the daemon of `current`."""

    async def ensure_linger(self, remote: Remote, dry_run: bool = False) -> str | None:
        """Arrange, before anything is sent, what the account must allow for the daemon to start
        at boot; what was done, None if nothing was needed."""

    async def install(self, remote: Remote, release_dir: str) -> None:
        """The release's way of starting the daemon in place, so a restart starts it."""

    async def restart(self, remote: Remote) -> None:
        """The daemon (re)started. One that does not come up is for the health check to report,
        with its log lines, so this does not fail for it."""

    async def stop(self, remote: Remote) -> None: ...

    async def running(self, remote: Remote) -> bool: ...

    async def down(self, remote: Remote) -> str | None:
        """Why the daemon is not running, or None while it runs or starts."""

    async def logs(self, remote: Remote, lines: int) -> list[str]:
        """The daemon's last `lines` log lines."""


@dataclass(frozen=True)
class SystemdService:
    """A systemd unit, started and watched with systemctl: `user` in the account's own manager
    (lingering, so it starts at boot with nobody logged in), `system` in the system's (through
    passwordless sudo)."""

    mode: str  # user, system
    layout: Layout

    @property
    def _system(self) -> bool:
        return self.mode == "system"

    @property
    def _systemctl(self) -> str:
        if self._system:
            return "sudo -n systemctl"
        # Over SSH without pam_systemd, systemctl --user still finds the user manager this way.
        return 'XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/run/user/$(id -u)}" systemctl --user'

    @property
    def _unit_path(self) -> str:
        if self._system:
            return f"/etc/systemd/system/{UNIT}"
        return posixpath.join(self.layout.home, ".config/systemd/user", UNIT)

    async def ensure_linger(self, remote: Remote, dry_run: bool = False) -> str | None:
        """A user service runs from boot, with nobody logged in, only while the account lingers.
        Turn it on if it is off: `loginctl enable-linger` (polkit lets a user do that for
        itself on a desktop, but a minimal Debian or Raspberry Pi OS Lite has no polkit and
        logind says "Access denied"), else `sudo -n loginctl enable-linger USER` (Raspberry Pi
        OS's first user has passwordless sudo). Neither: a HostError that says what to run,
        raised before anything is sent (it used to come after the whole upload and pip install,
        from the unit's install). Returns what was done, None if nothing was needed; a dry run
        only checks."""
        if self.mode != "user":
            return None
        linger = '/var/lib/systemd/linger/"$(id -un)"'
        if (await remote.run(f"test -e {linger} && echo yes", check=False)).strip() == "yes":
            return None
        if dry_run:
            return "lingering is off for this account; the deploy will turn it on"
        out = await remote.run(
            'loginctl enable-linger 2>&1 || sudo -n loginctl enable-linger "$(id -un)" 2>&1; '
            f"test -e {linger} && echo LINGER-ON",
            check=False,
        )
        if out.strip().endswith("LINGER-ON"):
            return "turned on lingering, so the daemon starts at boot without a login"
        user = (await remote.run("id -un", check=False)).strip() or "$USER"
        said = " / ".join(line.strip() for line in out.splitlines() if line.strip())
        raise HostError(
            f"--service user needs lingering (the daemon must start at boot with nobody logged "
            f"in), and {user} may not turn it on ({said or 'loginctl failed'}): run "
            f"`sudo loginctl enable-linger {user}` once on the device, then deploy again "
            "(or use --service system)"
        )

    async def install(self, remote: Remote, release_dir: str) -> None:
        """The release's unit in place, loaded and enabled at boot."""
        src, unit = posixpath.join(release_dir, UNIT), self._unit_path
        folder = posixpath.dirname(unit)
        # Whole or not at all, even across a power cut: a unit file cut to 0 bytes would leave
        # nothing to start the daemon at boot.
        steps = " && ".join(
            [
                quote("mkdir", "-p", folder),
                quote("install", "-m", "0644", src, f"{unit}.new"),
                quote("sync", "--", f"{unit}.new"),
                quote("mv", "-f", f"{unit}.new", unit),
                quote("sync", "--", folder),
            ]
        )
        copy = f"sudo -n sh -c {quote(steps)}" if self._system else steps
        try:
            await remote.run(
                f"{copy} && {self._systemctl} daemon-reload && {self._systemctl} enable {UNIT}"
            )
        except HostError as exc:
            hint = (
                "needs passwordless sudo for install and systemctl (or use --service user)"
                if self._system
                else "needs a systemd user manager (systemctl --user; or use --service system)"
            )
            raise HostError(f"installing the {self.mode} service failed ({exc}); {hint}") from None

    async def restart(self, remote: Remote) -> None:
        await remote.run(f"{self._systemctl} restart {UNIT}", check=False)

    async def stop(self, remote: Remote) -> None:
        await remote.run(f"{self._systemctl} stop {UNIT}", check=False)

    async def running(self, remote: Remote) -> bool:
        out = await remote.run(f"{self._systemctl} is-active {UNIT}", check=False)
        return out.strip() in ("active", "activating", "reloading")

    async def down(self, remote: Remote) -> str | None:
        """A unit that failed and waits out RestartSec is "activating" to `is-active`, which a
        health wait would take for a slow start until its timeout, however often the daemon
        dies: so the unit's state is read instead, and a crash loop is reported at the first
        exit (polled every second, RestartSec is 5)."""
        out = await remote.run(
            f"{self._systemctl} show {UNIT} -p ActiveState,SubState,Result,ExecMainCode,"
            "ExecMainStatus",
            check=False,
        )
        unit = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
        state, sub = unit.get("ActiveState", ""), unit.get("SubState", "")
        if state in ("active", "reloading", "activating") and sub != "auto-restart":
            return None
        if not state:
            return "the daemon's unit is not loaded"
        # ExecMainCode is 1 when it exited (ExecMainStatus: the exit status), 2 or 3 when a
        # signal killed it (ExecMainStatus: the signal).
        code, status = unit.get("ExecMainCode"), unit.get("ExecMainStatus", "?")
        how = {"1": f"exit status {status}", "2": f"signal {status}", "3": f"signal {status}"}
        exited = how.get(code, f"result {unit.get('Result', '?')}")
        again = "; systemd is restarting it" if sub == "auto-restart" else ""
        return f"the daemon exited ({exited}, unit {state}/{sub}){again}"

    async def logs(self, remote: Remote, lines: int) -> list[str]:
        sudo = "sudo -n " if self._system else ""
        scope = "" if self._system else "--user "
        out = await remote.run(
            f"{sudo}journalctl {scope}-u {UNIT} -n {int(lines)} --no-pager -o cat", check=False
        )
        return out.splitlines()[-lines:]


@dataclass(frozen=True)
class PlainProcess:
    """--service none: the daemon started directly, its process id in ~/.edgefer/daemon.pid and
    its output in the release's daemon.log. Nothing restarts it after a crash or a reboot."""

    layout: Layout

    @property
    def _log(self) -> str:
        return posixpath.join(self.layout.current, "daemon.log")

    @property
    def _pid(self) -> str:
        """Shell: the daemon's pid, only if that process is still an edgefer daemon."""
        return (
            f'pid=$(cat {quote(self.layout.pidfile)} 2>/dev/null) && [ -n "$pid" ] && '
            "tr '\\0' ' ' < /proc/$pid/cmdline 2>/dev/null | grep -q 'edgefer daemon'"
        )

    async def ensure_linger(self, remote: Remote, dry_run: bool = False) -> str | None:
        return None  # nothing starts a plain process at boot

    async def install(self, remote: Remote, release_dir: str) -> None:
        pass  # `restart` starts the daemon through `current`; there is nothing to install

    async def restart(self, remote: Remote) -> None:
        await self.stop(remote)
        command = quote(*self.layout.daemon_command())
        # A plain command in the background, not a list: its pid is $!, and no shell waits on
        # it holding the SSH channel open. umask 077: as the units' UMask=0077, what the daemon
        # writes (its log, events) is the account's alone.
        await remote.run(
            f"umask 077; cd {quote(self.layout.current)} || exit 1; "
            f"setsid nohup {command} >> {quote(self._log)} 2>&1 < /dev/null & "
            f"echo $! > {quote(self.layout.pidfile)}"
        )

    async def stop(self, remote: Remote) -> None:
        await remote.run(
            f"if {self._pid}; then kill $pid; "
            f"for i in $(seq {STOP_SECONDS * 5}); do kill -0 $pid 2>/dev/null || break; "
            "sleep 0.2; done; kill -9 $pid 2>/dev/null; fi; "
            f"rm -f {quote(self.layout.pidfile)}",
            check=False,
        )

    async def running(self, remote: Remote) -> bool:
        out = await remote.run(f"if {self._pid}; then echo yes; fi", check=False)
        return out.strip() == "yes"

    async def down(self, remote: Remote) -> str | None:
        return None if await self.running(remote) else "the daemon exited"

    async def logs(self, remote: Remote, lines: int) -> list[str]:
        out = await remote.run(f"tail -n {int(lines)} {quote(self._log)}", check=False)
        return out.splitlines()


def service_for(mode: str, layout: Layout) -> DaemonService:
    """What runs the daemon for a release deployed with `--service mode`."""
    return PlainProcess(layout) if mode == "none" else SystemdService(mode, layout)
