"""One SSH connection per device, through asyncssh: commands, SFTP, and a tunnel to the device's
loopback (where the daemon's status server listens).

Trust is OpenSSH's: the host key must be in known_hosts; an unknown host is added only with
`--accept-new-host-key` (like `StrictHostKeyChecking=accept-new`), and a key that differs from the
known one is always refused. Authentication is by key or agent only: passwords and keyboard-
interactive prompts are never offered, so no secret can end up on a command line or in a config.
Every failure becomes one HostError line that says what to do.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import socket
from dataclasses import dataclass
from pathlib import Path

from edgefer.deploy.errors import HostError
from edgefer.deploy.hosts import Target
from edgefer.errors import require, shown


@dataclass(frozen=True)
class Trust:
    """How host keys are checked, for every host of a run."""

    known_hosts: Path
    accept_new: bool = False
    read_only: bool = False  # --dry-run: an accepted new key is used but not written down
    timeout: float = 15.0


class Remote:
    """An open connection to one device."""

    def __init__(self, conn, target: Target):
        self.conn = conn
        self.target = target
        self._sftp = None

    async def run(self, command: str, *, input: str | None = None, check: bool = True) -> str:
        """stdout of a shell command; a non-zero exit is a HostError with its last stderr line. A
        command cut off by a lost connection is always an error, even unchecked: its empty
        output would otherwise read as an answer (no daemon running, say)."""
        res = await self.conn.run(command, input=input, check=False)
        if cut(res):
            raise self.lost()
        if check and res.exit_status != 0:
            lines = (res.stderr or res.stdout or "").strip().splitlines()
            why = lines[-1] if lines else f"exit status {res.exit_status}"
            name = command.split()[0]
            raise HostError(shown(why if why.startswith(f"{name}:") else f"{name}: {why}", 300))
        return res.stdout or ""

    def lost(self) -> HostError:
        """A command cut off by the connection going down, as the same line a broken connection
        gets (see `broken`)."""
        return HostError(
            f"lost the SSH connection to {self.target.address} (a command was cut off)"
        )

    async def sftp(self):
        if self._sftp is None:
            self._sftp = await self.conn.start_sftp_client()
        return self._sftp

    @contextlib.asynccontextmanager
    async def tunnel(self, host: str, port: int):
        """A 127.0.0.1 port here that leads to host:port as the device sees it."""
        listener = await self.conn.forward_local_port("127.0.0.1", 0, host, port)
        try:
            yield listener.get_port()
        finally:
            listener.close()

    async def close(self) -> None:
        if self._sftp is not None:
            self._sftp.exit()
        self.conn.close()
        await self.conn.wait_closed()


def quote(*words: str) -> str:
    return " ".join(shlex.quote(str(w)) for w in words)


def cut(process) -> bool:
    """Whether a finished command ended without an exit status or signal: OpenSSH always sends
    one or the other, so the connection went down under it."""
    return process.exit_status is None and process.exit_signal is None


def broken(asyncssh, exc: Exception, target: Target) -> HostError:
    """An SSH failure after connecting (the device rebooted, the network or sshd went away), as
    one line naming the host."""
    why = shown(getattr(exc, "reason", None) or exc, 200)
    if isinstance(exc, asyncssh.DisconnectError | asyncssh.ChannelOpenError | ConnectionError):
        return HostError(f"lost the SSH connection to {target.address} ({why})")
    return HostError(f"SSH to {target.address} failed ({why})")


@contextlib.asynccontextmanager
async def connect(target: Target, trust: Trust):
    """An open Remote for `target`, closed on exit; every way in which that fails is a HostError."""
    asyncssh = require("asyncssh", "deploy")
    known_hosts = str(trust.known_hosts)
    if not _is_known(asyncssh, target, trust.known_hosts):
        key = await _server_key(asyncssh, target, trust)  # a host that is down says so here
        if not trust.accept_new:
            raise HostError(
                f"unknown host key for {target.address} ({key.get_algorithm()} "
                f"{key.get_fingerprint()}, not in {trust.known_hosts}): check it on the device "
                "(ssh-keygen -lf /etc/ssh/ssh_host_*.pub), then rerun with --accept-new-host-key"
            )
        if trust.read_only:
            known_hosts = ([key], [], [])
        else:
            _record(key, target, trust.known_hosts)
    options = dict(
        host=target.host,
        port=target.port,
        known_hosts=known_hosts,
        preferred_auth="publickey",
        password_auth=False,
        kbdint_auth=False,
        ignore_encrypted=True,  # a passphrase-protected key is used through the agent, if loaded
        connect_timeout=trust.timeout,
        login_timeout=trust.timeout,
        keepalive_interval=15,
    )
    if target.user:
        options["username"] = target.user
    if target.identity is not None:
        options["client_keys"] = [str(target.identity.expanduser())]
    try:
        conn = await asyncssh.connect(**options)
    except (asyncssh.Error, OSError, ValueError) as exc:  # ValueError: a key or ssh_config
        raise _connect_error(asyncssh, exc, target, trust) from None
    remote = Remote(conn, target)
    try:
        yield remote
    finally:
        await remote.close()


def _is_known(asyncssh, target: Target, path: Path) -> bool:
    """Whether known_hosts names this host at all (a key or a CA). Whether the server's key is one
    of them, or revoked, asyncssh checks at connect."""
    if not path.is_file():
        return False
    try:
        keys, cas, *_ = asyncssh.read_known_hosts(str(path)).match(target.host, "", target.port)
    except (OSError, ValueError) as exc:
        raise HostError(f"{path}: cannot read known_hosts ({shown(exc, 200)})") from None
    return bool(keys or cas)


async def _server_key(asyncssh, target: Target, trust: Trust):
    """The key the server offers, before any authentication."""
    try:
        key = await asyncio.wait_for(
            asyncssh.get_server_host_key(target.host, target.port), trust.timeout
        )
    except (asyncssh.Error, OSError, ValueError) as exc:
        raise _connect_error(asyncssh, exc, target, trust) from None
    if key is None:
        raise HostError(f"{target.address}: the server offered no host key")
    return key


def _record(key, target: Target, known_hosts: Path) -> None:
    """Append the accepted key to known_hosts, as OpenSSH writes it."""
    name = target.host if target.port == 22 else f"[{target.host}]:{target.port}"
    kind, blob = key.export_public_key("openssh").decode().split()[:2]
    known_hosts.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(known_hosts, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "a") as f:
        f.write(f"{name} {kind} {blob}\n")


def _connect_error(asyncssh, exc: Exception, target: Target, trust: Trust) -> HostError:
    where = target.address
    if isinstance(exc, asyncssh.HostKeyNotVerifiable):
        return HostError(
            f"host key of {where} does not match {trust.known_hosts}: refused (if the device was "
            f"reinstalled, remove the old key with ssh-keygen -R and deploy again)"
        )
    if isinstance(exc, asyncssh.PermissionDenied):
        key = f"the key {target.identity}" if target.identity else "the agent's and default keys"
        return HostError(
            f"authentication failed for {where} with {key} (publickey only; add the public key "
            f"to ~/.ssh/authorized_keys on the device, or load a passphrase-protected key with "
            f"ssh-add)"
        )
    if isinstance(exc, socket.gaierror):
        return HostError(f"{where}: unknown host name ({exc.strerror})")
    if isinstance(exc, TimeoutError):
        return HostError(f"{where}: unreachable (no answer in {trust.timeout:g} s)")
    if isinstance(exc, OSError):
        # asyncio words a refused connection "Connect call failed (...)": say what errno says.
        why = os.strerror(exc.errno) if exc.errno else shown(exc, 200)
        return HostError(f"{where}: unreachable ({why})")
    return HostError(f"{where}: SSH failed ({shown(exc, 200)})")
