"""`edgefer deploy`: put a bundle and a configured daemon on devices over SSH, prove it healthy,
and take it back.

Workstation side only (the device needs nothing but `python3` and an SSH server). On each device,
everything lives under `~/.edgefer`:

    blobs/<sha256>      every shipped file once, by content: a new release uploads only what
                        no earlier release had, and hard-links the rest (an SD card holds little)
    venvs/<key>/        Python environments, one per install (Python, platform, wheels), shared
                        by every release that installs the same thing
    releases/<id>/      bundle/, edgefer.toml, edgefer.service, wheels/, release.json, venv ->
    current, previous   links to releases, each switched by an atomic rename

A release is complete before `current` points at it, so a failed or cut deploy never leaves a
half-written release running; a failed health check puts `previous` back.

The package's calls, `push`, `status`, `logs` and `rollback`, are in api.py.
"""

from edgefer.deploy.api import Devices, logs, push, rollback, status
from edgefer.deploy.fleet import HostResult
from edgefer.deploy.rollout import DeployOptions

__all__ = ["DeployOptions", "Devices", "HostResult", "logs", "push", "rollback", "status"]
