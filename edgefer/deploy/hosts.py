"""Which devices to deploy to: `--host USER@HOST[:PORT]` and the inventory file, checked before any
host is touched, so a typo in host 37 of 50 stops the run at the start, not half-way.

Inventory (`hosts.toml`), paths relative to the file:

    [defaults]
    config = "edgefer.toml"          # the daemon config every host gets unless it names its own
    identity = "~/.ssh/id_ed25519"   # optional: the key to offer (else the agent and default keys)

    [hosts.kitchen]
    address = "pi@kitchen.local"     # USER@HOST[:PORT]
    config = "kitchen.toml"          # optional, this host's own daemon config
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edgefer.errors import EdgeferError, shown, validation_line

ADDRESS = re.compile(
    r"^(?:(?P<user>[A-Za-z0-9._][A-Za-z0-9._-]*)@)?"
    r"(?:\[(?P<ipv6>[0-9A-Fa-f:.]+)\]|(?P<host>[A-Za-z0-9._-]+))"
    r"(?::(?P<port>\d{1,5}))?$"
)
NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"


@dataclass(frozen=True)
class Target:
    """One device and what it gets."""

    name: str
    host: str
    port: int = 22
    user: str | None = None  # None: the SSH config's or the local user name
    identity: Path | None = None
    config: Path | None = None

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        user = f"{self.user}@" if self.user else ""
        return f"{user}{host}" + (f":{self.port}" if self.port != 22 else "")


def parse_address(text: str, where: str = "--host") -> tuple[str | None, str, int]:
    """(user, host, port) from USER@HOST[:PORT]; [IPv6] in brackets."""
    m = ADDRESS.match(text.strip())
    port = int(m["port"]) if m and m["port"] else 22
    if not m or not 1 <= port <= 65535:
        raise EdgeferError(
            f"{where} {shown(text)}: expected USER@HOST[:PORT], e.g. pi@kitchen.local"
        )
    return m["user"], m["ipv6"] or m["host"], port


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    config: Path | None = None
    identity: Path | None = None


class _Host(_Entry):
    address: str


class _Inventory(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    defaults: _Entry = _Entry()
    hosts: dict[str, _Host] = Field(min_length=1)


def load_inventory(path: str | Path) -> list[Target]:
    path = Path(path)
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
        inv = _Inventory.model_validate(doc)
    except OSError as exc:
        raise EdgeferError(f"{path}: cannot read ({exc.strerror})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise EdgeferError(f"{path}: not valid TOML ({shown(exc, 200)})") from None
    except ValidationError as exc:
        raise EdgeferError(f"{path}: {validation_line(exc)}") from None
    base = path.parent

    def local(p: Path | None) -> Path | None:
        return None if p is None else base / p.expanduser()

    targets = []
    for name, entry in inv.hosts.items():
        if not re.match(NAME, name):
            raise EdgeferError(f"{path}: host name {shown(name)}: use letters, digits, . _ -")
        user, host, port = parse_address(entry.address, f"{path}: hosts.{name}.address")
        targets.append(
            Target(
                name=name,
                host=host,
                port=port,
                user=user,
                identity=local(entry.identity or inv.defaults.identity),
                config=local(entry.config or inv.defaults.config),
            )
        )
    return targets


def resolve_targets(
    addresses: tuple[str, ...],
    inventory: str | Path | None,
    config: Path | None,
    identity: Path | None,
) -> list[Target]:
    """Every target once: `--host` ones (named by their address) then the inventory's.

    `--config` and `--identity` fill in what the inventory leaves open; a host named twice is
    refused (it would be deployed to twice, in parallel)."""
    targets = []
    for text in addresses:
        user, host, port = parse_address(text)
        targets.append(Target(text, host, port, user))
    if inventory is not None:
        targets += load_inventory(inventory)
    if not targets:
        raise EdgeferError("no host: pass --host USER@HOST[:PORT] or --inventory hosts.toml")
    targets = [
        replace(t, identity=t.identity or identity, config=t.config or config) for t in targets
    ]
    seen: dict[tuple, str] = {}
    for t in targets:
        key = (t.user, t.host.lower(), t.port)
        if key in seen:
            raise EdgeferError(f"host {t.address} is given twice ({seen[key]} and {t.name})")
        seen[key] = t.name
    return targets
