"""The systemd unit a deploy installs, rendered from the one that ships with edgefer
(device/daemon/edgefer.service), so its hardening, watchdog and restart policy are the same whoever
installs it; only what must differ does: ExecStart runs the release's venv through `current`, a
system unit runs as the deploying account, and a user unit leaves out what only a system manager
can do.
"""

from __future__ import annotations

from importlib import resources

from edgefer.deploy.layout import Layout

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
    "ProtectClock",
    "ProtectHostname",
    "ProtectKernelLogs",
    "ProtectProc",
    "CapabilityBoundingSet",
    "Wants",  # network-online.target exists only in the system manager
    "After",
}


def _systemd_word(word: str) -> str:
    word = word.replace("%", "%%")
    if any(c in word for c in " \t\"'\\"):
        return '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return word


def unit_text(mode: str, layout: Layout, user: str, group: str) -> str:
    """The unit `mode` installs ("none" gets the user unit, shipped for reference)."""
    template = (resources.files("edgefer.device.daemon") / UNIT).read_text(encoding="utf-8")
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
