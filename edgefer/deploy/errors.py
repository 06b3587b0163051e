"""The deploy's own error: what one host failed at. Every step of a deploy raises it (the probe,
the preflight checks, SSH, shipping, the service, the health check), so it lives here rather than
in any one of them."""

from __future__ import annotations

from edgefer.errors import EdgeferError


class HostError(EdgeferError):
    """One host failed; the others carry on. The message is that host's line in the summary;
    `details` (the daemon's last log lines, say) are shown under it."""

    exit_code = 1

    def __init__(self, message: str, details: list[str] = ()):
        super().__init__(message)
        self.details = list(details)
