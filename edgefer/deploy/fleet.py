"""Running one job on many hosts: in parallel up to a bound, each host's failure its own line,
the others carrying on; what each host ended with, for the summary table."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from edgefer.deploy.errors import HostError
from edgefer.deploy.hosts import Target
from edgefer.deploy.ssh import broken
from edgefer.errors import EdgeferError, require


@dataclass
class HostResult:
    host: str
    ok: bool
    result: str  # deployed, up to date, restarted, planned, rolled back, ok, FAILED
    release: str = "-"
    detail: str = ""
    details: list[str] = field(default_factory=list)  # shown under the host's line
    columns: dict = field(default_factory=dict)  # `status`: bundle, health, uptime, fps


Say = Callable[[str, str], None]  # (host name, progress line)


def run_on_hosts(
    targets: list[Target],
    job: Callable[[Target], Awaitable[HostResult]],
    parallel: int,
) -> list[HostResult]:
    """`job` for every target, at most `parallel` at once; results in the targets' order."""
    asyncssh = require("asyncssh", "deploy")
    if parallel < 1:
        raise EdgeferError(f"--parallel {parallel}: expected 1 or more")

    async def main() -> list[HostResult]:
        gate = asyncio.Semaphore(parallel)

        async def one(target: Target) -> HostResult:
            async with gate:
                try:
                    return await job(target)
                except EdgeferError as exc:  # a HostError, or the device's own files
                    details = exc.details if isinstance(exc, HostError) else []
                    return HostResult(
                        target.name, False, "FAILED", detail=str(exc), details=details
                    )
                except (asyncssh.Error, OSError) as exc:  # the connection broke mid-way
                    why = broken(asyncssh, exc, target)
                    return HostResult(target.name, False, "FAILED", detail=str(why))

        return await asyncio.gather(*(one(t) for t in targets))

    return asyncio.run(main())
