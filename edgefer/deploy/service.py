"""How the daemon runs on a device: a systemd service (system-wide or the user's own), or, where
there is no systemd (containers, CI), a process started directly under the release.

The unit is rendered from the one that ships with edgefer (device/edgefer.service), so its
hardening, watchdog and restart policy are the same whoever installs it; only what must differ
does: ExecStart runs the release's venv through `current`, a system unit runs as the deploying
account, and a user unit leaves out what only a system manager can do.
"""

from __future__ import annotations

import posixpath
from importlib import resources

from edgefer.deploy.errors import HostError
from edgefer.deploy.layout import Layout
from edgefer.deploy.ssh import Remote, quote

MODES = ("user", "system", "none")
UNIT = "edgefer.service"
HEADER = (
    "# Installed by `edgefer deploy` from edgefer's own edgefer.service; the daemon runs the\n"
    "# release that ~/.edgefer/current points at. Change the config and deploy again rather\n"
    "# than editing this file.\n"
)
# A user manager can neither switch users nor set up the mount namespaces these need.
SYSTEM_ONLY = {
    "User",
    "Group",
    "SupplementaryGroups",
    "ProtectSystem",
    "ProtectHome",
    "ReadWritePaths",
    "PrivateTmp",
    "ProtectKernelTunables",
    "ProtectKernelModules",
    "ProtectControlGroups",
    "Wants",  # network-online.target exists only in the system manager
    "After",
}
STOP_SECONDS = 10  # as the unit's TimeoutStopSec


def _systemd_word(word: str) -> str:
    word = word.replace("%", "%%")
    if any(c in word for c in " \t\"'\\"):
        return '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return word


def unit_text(mode: str, layout: Layout, user: str, group: str) -> str:
    """The unit `mode` installs ("none" gets the user unit, shipped for reference)."""
    template = (resources.files("edgefer.device") / UNIT).read_text(encoding="utf-8")
    system = mode == "system"
    lines = []
    for line in template.splitlines():
        key = line.split("=", 1)[0].strip() if "=" in line and not line.startswith("#") else None
        if line.startswith("#"):
            continue
        if key == "ExecStart":
            line = "ExecStart=" + " ".join(_systemd_word(w) for w in layout.daemon_command())
        elif key in SYSTEM_ONLY and not system:
            continue
        elif key == "User":
            line = f"User={user}"
        elif key == "Group":
            line = f"Group={group}"
        elif key == "ProtectHome":
            line = "ProtectHome=read-only"  # the releases live in the deploying account's home
        elif key == "WantedBy" and not system:
            line = "WantedBy=default.target"
        lines.append(line)
    return HEADER + "\n".join(lines).lstrip("\n") + "\n"


class Service:
    """A systemd unit, started and watched with systemctl."""

    def __init__(self, mode: str, layout: Layout):
        self.mode = mode
        self.layout = layout

    @property
    def _systemctl(self) -> str:
        if self.mode == "system":
            return "sudo -n systemctl"
        # Over SSH without pam_systemd, systemctl --user still finds the user manager this way.
        return 'XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/run/user/$(id -u)}" systemctl --user'

    def _unit_path(self) -> str:
        if self.mode == "system":
            return f"/etc/systemd/system/{UNIT}"
        return posixpath.join(self.layout.home, ".config/systemd/user", UNIT)

    async def install(self, remote: Remote, release_dir: str) -> None:
        """The release's unit in place, loaded and enabled at boot."""
        src = posixpath.join(release_dir, UNIT)
        if self.mode == "system":
            copy = f"sudo -n install -m 0644 {quote(src, self._unit_path())}"
        else:
            copy = f"mkdir -p {quote(posixpath.dirname(self._unit_path()))} && " + quote(
                "cp", src, self._unit_path()
            )
        try:
            await remote.run(
                f"{copy} && {self._systemctl} daemon-reload && {self._systemctl} enable {UNIT}"
            )
        except HostError as exc:
            hint = (
                "needs passwordless sudo for install and systemctl (or use --service user)"
                if self.mode == "system"
                else "needs a systemd user manager (systemctl --user; or use --service system)"
            )
            raise HostError(f"installing the {self.mode} service failed ({exc}); {hint}") from None

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

    async def restart(self, remote: Remote) -> None:
        # A unit that does not come up is for the health check to report, with its log lines.
        await remote.run(f"{self._systemctl} restart {UNIT}", check=False)

    async def stop(self, remote: Remote) -> None:
        await remote.run(f"{self._systemctl} stop {UNIT}", check=False)

    async def running(self, remote: Remote) -> bool:
        out = await remote.run(f"{self._systemctl} is-active {UNIT}", check=False)
        return out.strip() in ("active", "activating", "reloading")

    async def down(self, remote: Remote) -> str | None:
        """Why the daemon is not running, or None while it runs or starts. A unit that failed
        and waits out RestartSec is "activating" to `is-active`, which a health wait would take
        for a slow start until its timeout, however often the daemon dies: so the unit's state
        is read instead, and a crash loop is reported at the first exit (polled every second,
        RestartSec is 5)."""
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
        sudo = "sudo -n " if self.mode == "system" else ""
        scope = "" if self.mode == "system" else "--user "
        out = await remote.run(
            f"{sudo}journalctl {scope}-u {UNIT} -n {int(lines)} --no-pager -o cat", check=False
        )
        return out.splitlines()[-lines:]


class Process(Service):
    """--service none: the daemon started directly, its process id in ~/.edgefer/daemon.pid and
    its output in the release's daemon.log. Nothing restarts it after a crash or a reboot."""

    def __init__(self, layout: Layout):
        super().__init__("none", layout)

    def _pid(self) -> str:
        """Shell: the daemon's pid, only if that process is still an edgefer daemon."""
        return (
            f'pid=$(cat {quote(self.layout.pidfile)} 2>/dev/null) && [ -n "$pid" ] && '
            "tr '\\0' ' ' < /proc/$pid/cmdline 2>/dev/null | grep -q 'edgefer daemon'"
        )

    async def install(self, remote: Remote, release_dir: str) -> None:
        pass

    async def restart(self, remote: Remote) -> None:
        await self.stop(remote)
        log = posixpath.join(self.layout.current, "daemon.log")
        command = quote(*self.layout.daemon_command())
        # A plain command in the background, not a list: its pid is $!, and no shell waits on
        # it holding the SSH channel open. umask 077: as the units' UMask=0077, what the daemon
        # writes (its log, events) is the account's alone.
        await remote.run(
            f"umask 077; cd {quote(self.layout.current)} || exit 1; "
            f"setsid nohup {command} >> {quote(log)} 2>&1 < /dev/null & "
            f"echo $! > {quote(self.layout.pidfile)}"
        )

    async def stop(self, remote: Remote) -> None:
        await remote.run(
            f"if {self._pid()}; then kill $pid; "
            f"for i in $(seq {STOP_SECONDS * 5}); do kill -0 $pid 2>/dev/null || break; "
            "sleep 0.2; done; kill -9 $pid 2>/dev/null; fi; "
            f"rm -f {quote(self.layout.pidfile)}",
            check=False,
        )

    async def running(self, remote: Remote) -> bool:
        out = await remote.run(f"if {self._pid()}; then echo yes; fi", check=False)
        return out.strip() == "yes"

    async def down(self, remote: Remote) -> str | None:
        return None if await self.running(remote) else "the daemon exited"

    async def logs(self, remote: Remote, lines: int) -> list[str]:
        log = posixpath.join(self.layout.current, "daemon.log")
        out = await remote.run(f"tail -n {int(lines)} {quote(log)}", check=False)
        return out.splitlines()


def service_for(mode: str, layout: Layout) -> Service:
    return Process(layout) if mode == "none" else Service(mode, layout)
