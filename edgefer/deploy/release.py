"""A release: every file one device gets (bundle, config, unit, wheels), named by content.

Built here: the bundle is verified against its manifest (every model's sha256) before any host is
touched, and only what the manifest lists is shipped (notes, a stray wheel or a scratch folder
beside the models stay here); each file is known by its sha256, so the device is asked only for
what it lacks. The release id is the time plus a hash of the content; the venv key is a hash of
what the venv installs, so releases that install the same wheels on the same Python share one
venv.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from edgefer import __version__
from edgefer.bundled import bundle_name
from edgefer.device.backends import verify_file
from edgefer.device.manifest import Manifest, load_manifest
from edgefer.errors import EdgeferError
from edgefer.hashing import sha256_file

EDGEFER_WHEEL = re.compile(r"^edgefer-[^-]+-.+\.whl$")  # edgefer-VERSION-TAGS.whl


@dataclass(frozen=True)
class Item:
    """One file of a release: where it goes in the release, and its content (a local file)."""

    path: str
    source: Path
    sha256: str
    size: int


def size_text(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 100_000 else f"{n / 1e3:.1f} kB"


def item(path: str, source: Path) -> Item:
    return Item(path, source, sha256_file(source), source.stat().st_size)


@dataclass(frozen=True)
class Bundle:
    path: Path
    manifest: Manifest
    sha256: str  # of manifest.json, which holds every model's sha256
    items: tuple[Item, ...]


def verify_bundle(path: str | Path) -> Bundle:
    """The bundle's manifest and the files it lists, once each matches its sha256: a bundle
    that does not verify is refused before any host is touched. Nothing else in the folder is
    shipped: the device reads a bundle only through its manifest."""
    path = Path(path)
    if not path.is_dir():
        raise EdgeferError(f"{path}: not a bundle directory (make one with `edgefer convert`)")
    manifest = load_manifest(path)
    listed = (*manifest.artifacts, *manifest.detectors)
    for artifact in listed:
        verify_file(path, artifact)
    items = []
    for name in sorted({"manifest.json", *(a.file for a in listed)}):
        file = path / name
        if not file.resolve().is_relative_to(path.resolve()):
            raise EdgeferError(f"{file}: leads outside the bundle directory")
        items.append(item(f"bundle/{name}", file))
    sha = sha256_file(path / "manifest.json")
    return Bundle(path, manifest, sha, tuple(items))


@dataclass
class Release:
    """What one host gets. `extra` holds generated files (config, unit, release.json)."""

    items: list[Item]
    venv_key: str
    service: str
    bundle: Bundle
    config_name: str
    offline: bool
    system_site: bool  # the venv sees the system's packages (Picamera2 comes from apt)
    content: str = ""
    id: str = ""
    meta: dict = field(default_factory=dict)

    @property
    def edgefer_wheel(self) -> str:
        """The edgefer wheel pip installs, as a path in the release: looked for in wheels/ only,
        so no bundle file that happens to be called edgefer-* is ever taken for it."""
        return next(
            i.path
            for i in self.items
            if posixpath.dirname(i.path) == "wheels"
            and EDGEFER_WHEEL.match(posixpath.basename(i.path))
        )


def venv_key(python: str, arch: str, wheels: list[Item], offline: bool, system_site: bool) -> str:
    """Names the venv by what it installs: the same key on a device means the same venv."""
    doc = {
        "python": python,
        "arch": arch,
        "wheels": sorted(w.sha256 for w in wheels),
        "offline": offline,
        "system_site": system_site,
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]


def content_hash(items: list[Item], venv: str, service: str) -> str:
    h = hashlib.sha256(f"{venv}\0{service}\0".encode())
    for i in sorted(items, key=lambda i: i.path):
        h.update(f"{i.path}\0{i.sha256}\0".encode())
    return h.hexdigest()


def make_release(
    bundle: Bundle,
    generated: dict[str, Path],
    wheels: list[Item],
    key: str,
    service: str,
    config_name: str,
    offline: bool,
    system_site: bool,
    workdir: Path,
) -> Release:
    """The release, its id and its release.json (written into `workdir`)."""
    items = [*bundle.items, *(item(name, src) for name, src in generated.items()), *wheels]
    content = content_hash(items, key, service)
    release_id = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + content[:8]
    meta = {
        "id": release_id,
        "content": content,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "edgefer": __version__,
        "bundle": {
            "name": bundle_name(bundle.path),
            "arch": bundle.manifest.arch,
            "sha256": bundle.sha256,
            "from": str(bundle.path),
        },
        "config": config_name,
        "service": service,
        "venv": key,
        "offline": offline,
        "system_site": system_site,
        "files": {i.path: i.sha256 for i in items},
    }
    record = workdir / f"release-{content[:16]}.json"
    record.write_text(json.dumps(meta, indent=1) + "\n")
    items.append(item("release.json", record))
    return Release(
        items, key, service, bundle, config_name, offline, system_site, content, release_id, meta
    )


def wheel_items(wheels: list[Path]) -> list[Item]:
    if not any(EDGEFER_WHEEL.match(w.name) for w in wheels):
        raise EdgeferError("no edgefer wheel (edgefer-VERSION-TAGS.whl) to install on the device")
    return [item(f"wheels/{w.name}", w) for w in sorted(wheels)]
