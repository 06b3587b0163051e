"""The device side of a release: what is there, what to send, and the steps that change it.

Everything under ~/.edgefer is the deploying account's alone (files 0600, directories 0700): a
release's edgefer.toml may name the status server's token file, its daemon.log says what the
camera saw, and nobody else on the device needs to read either.

Files go to ~/.edgefer/blobs/<sha256> under a temporary name, renamed into place once complete
and synced to disk, and only when no earlier release sent the same bytes; before a release is
assembled every blob it uses is hashed on the device and a damaged one sent again; the release directory is then assembled from
hard links in a hidden directory and renamed to its id, so a release either exists whole or not
at all. `current` and `previous` are switched with rename(2): whoever reads them, the daemon
included, sees the old link or the new one, never none. Venvs are marked complete only after pip
succeeds; a half-made one is rebuilt, never used.
"""

from __future__ import annotations

import contextlib
import json
import posixpath
from dataclasses import dataclass

from edgefer.deploy.errors import HostError
from edgefer.deploy.layout import Layout
from edgefer.deploy.release import Release, size_text
from edgefer.deploy.ssh import Remote, cut, quote
from edgefer.errors import shown

COMPLETE = ".complete"  # in a venv: pip finished


@dataclass(frozen=True)
class DeviceState:
    """What the device has before anything is changed."""

    current: str | None
    previous: str | None
    current_meta: dict | None
    current_config: str | None  # the real path of current's edgefer.toml, as the daemon sees it
    blobs: frozenset[str]
    venvs: frozenset[str]  # complete ones


@contextlib.asynccontextmanager
async def device_lock(remote: Remote, layout: Layout):
    """One deploy or rollback at a time on a device (a fleet has more than one operator): flock
    held by a process on the device for as long as this connection lives, so the device itself
    releases it if the deploying machine vanishes."""
    lock = posixpath.join(layout.root, ".lock")
    proc = await remote.conn.create_process(
        f"umask 077 && mkdir -p {quote(layout.root)} && "
        f"exec flock -n {quote(lock)} sh -c 'echo locked; exec cat'"
    )
    if (await proc.stdout.readline()).strip() != "locked":
        await proc.wait()
        if cut(proc):
            raise remote.lost()
        if proc.exit_status == 1:
            raise HostError(
                f"another deploy or rollback is running on the device ({lock} is held); "
                "try again when it has finished"
            )
        why = (await proc.stderr.read()).strip() or f"exit status {proc.exit_status}"
        raise HostError(f"cannot lock {lock}: {shown(why, 200)}")
    try:
        yield
    finally:
        proc.stdin.write_eof()
        await proc.wait()


async def device_state(remote: Remote, layout: Layout) -> DeviceState:
    script = (
        f"cd {quote(layout.root)} 2>/dev/null || exit 0; "
        "echo current=$(readlink current 2>/dev/null); "
        "echo previous=$(readlink previous 2>/dev/null); "
        "echo config=$(readlink -f current/edgefer.toml 2>/dev/null); "
        'for b in blobs/*; do [ -f "$b" ] && echo blob=${b#blobs/}; done; '
        f'for v in venvs/*; do [ -e "$v/{COMPLETE}" ] && echo venv=${{v#venvs/}}; done; '
        # printf, not echo: dash's echo would unescape the JSON's backslashes
        "printf 'meta=%s\\n' \"$(tr -d '\\n' < current/release.json 2>/dev/null)\""
    )
    out = await remote.run(script)
    found: dict[str, list[str]] = {}
    for line in out.splitlines():
        key, _, value = line.partition("=")
        if value:
            found.setdefault(key, []).append(value)

    def release_id(key: str) -> str | None:
        return posixpath.basename(found[key][0]) if key in found else None

    try:
        meta = json.loads(found["meta"][0]) if "meta" in found else None
    except ValueError:
        meta = None
    return DeviceState(
        release_id("current"),
        release_id("previous"),
        meta,
        found["config"][0] if "config" in found else None,
        frozenset(found.get("blob", ())),
        frozenset(found.get("venv", ())),
    )


def private_dirs(layout: Layout) -> str:
    """Shell: ~/.edgefer and its folders, made owner-only. Devices deployed to before files were
    kept private have 0644 blobs and 0755 release folders: chmod -R takes those back too (it
    never follows the releases' venv links; the venvs hold nothing secret and sit in the 0700
    root)."""
    return " && ".join(
        [
            "umask 077",
            quote("mkdir", "-p", layout.blobs, layout.releases, layout.venvs),
            quote("chmod", "go=", layout.root),
            quote("chmod", "-R", "go=", layout.blobs, layout.releases),
        ]
    )


async def upload(remote: Remote, layout: Layout, release: Release, have, say) -> tuple[int, int]:
    """Send the blobs the device lacks, each 0600 before it gets its name; returns the files and
    bytes sent."""
    missing = {i.sha256: i for i in release.items if i.sha256 not in have}
    await remote.run(private_dirs(layout))
    total, sent = sum(i.size for i in missing.values()), 0
    sftp = await remote.sftp()
    parts: list[tuple[str, str]] = []
    for n, (sha, it) in enumerate(sorted(missing.items(), key=lambda kv: kv[1].path), 1):
        if it.size >= 1_000_000:  # the long transfers get a line each
            say(
                f"sending {it.path} ({size_text(it.size)}; file {n} of {len(missing)}, "
                f"{size_text(sent)} of {size_text(total)} sent)"
            )
        tmp = posixpath.join(layout.blobs, f".{sha}.part")
        await sftp.put(str(it.source), tmp)  # SFTP creates it 0666 less the server's umask
        await sftp.chmod(tmp, 0o600)
        parts.append((tmp, posixpath.join(layout.blobs, sha)))
        sent += it.size
    if parts:
        # Durable before it is named: a blob's bytes reach the disk before its final name does,
        # and the names before any release links them. Without it, a power cut seconds after a
        # deploy left 0-byte blobs under their full names (ext4 commits the rename first), which
        # every later deploy trusted. `sync FILE...` fsyncs each file, `sync DIR` the directory.
        lines = ["set -e", quote("sync", "--", *(tmp for tmp, _ in parts))]
        lines += [quote("mv", "-f", tmp, final) for tmp, final in parts]
        lines.append(quote("sync", "--", layout.blobs))
        await remote.run("sh -s", input="\n".join(lines) + "\n")
    return len(missing), sent


async def damaged_blobs(remote: Remote, layout: Layout, release: Release) -> set[str]:
    """The blobs `release` uses whose content on the device is not what their name says
    (missing, cut short, 0 bytes after a power cut): each is hashed there, since a blob's name
    alone proves nothing. Bad ones are removed, for the caller to send again."""
    shas = sorted({i.sha256 for i in release.items})
    # sha256sum prints "<hash>  <name>" for each file it could read; a missing one is not listed.
    out = await remote.run(
        f"cd {quote(layout.blobs)} && sha256sum -- {quote(*shas)} 2>/dev/null", check=False
    )
    good = set()
    for line in out.splitlines():
        digest, _, name = line.partition("  ")
        if digest == name:
            good.add(name)
    bad = set(shas) - good
    if bad:
        await remote.run(quote("rm", "-f", *(posixpath.join(layout.blobs, b) for b in bad)))
    return bad


async def assemble(remote: Remote, layout: Layout, release: Release) -> None:
    """releases/<id> from hard links to the blobs, appearing whole (one rename)."""
    final = layout.release(release.id)
    tmp = posixpath.join(layout.releases, f".{release.id}.partial")
    dirs = sorted({posixpath.dirname(i.path) for i in release.items} - {""})
    lines = ["set -e", "umask 077", quote("rm", "-rf", tmp), quote("mkdir", "-p", tmp)]
    lines += [quote("mkdir", "-p", posixpath.join(tmp, d)) for d in dirs]
    lines += [
        quote("ln", posixpath.join(layout.blobs, i.sha256), posixpath.join(tmp, i.path))
        for i in release.items
    ]
    lines.append(quote("ln", "-s", f"../../venvs/{release.venv_key}", posixpath.join(tmp, "venv")))
    lines.append(quote("mv", "-T", tmp, final))
    await remote.run("sh -s", input="\n".join(lines) + "\n")


async def make_venv(remote: Remote, layout: Layout, release: Release, python: str, say) -> None:
    """The release's venv, made from scratch with `python` and its wheels installed, marked
    complete only when pip succeeded (removed when it did not). pip's progress is passed on: on a
    Pi this is the long step."""
    venv = layout.venv(release.venv_key)
    wheels = posixpath.join(layout.release(release.id), "wheels")
    target = posixpath.join(layout.release(release.id), release.edgefer_wheel)
    index = ["--no-index", "--find-links", wheels] if release.offline else []
    site = ["--system-site-packages"] if release.system_site else []
    script = " && ".join(
        [
            quote("rm", "-rf", venv),
            quote(python, "-m", "venv", *site, venv),
            quote(
                f"{venv}/bin/pip",
                "install",
                "--progress-bar",
                "off",
                "--disable-pip-version-check",
                *index,
                target,
            ),
            # Its files on the disk before the mark that says they are complete: a power cut
            # must not leave a marked venv with files of 0 bytes (`sync -f`: the filesystem).
            quote("sync", "-f", venv),
            quote("touch", posixpath.join(venv, COMPLETE)),
            quote("sync", "--", venv),
        ]
    )
    script = f"( {script} ) 2>&1 || {{ status=$?; {quote('rm', '-rf', venv)}; exit $status; }}"
    say(
        "making the venv (pip install; minutes on a Pi)"
        + (" from the shipped wheelhouse" if release.offline else "")
    )
    proc = await remote.conn.create_process(script)
    last, error = "", ""
    async for line in proc.stdout:
        line = line.rstrip()
        last = line or last
        error = line if line.startswith("ERROR") else error
        if line.startswith(("Collecting", "Processing", "Installing", "Successfully")):
            say("pip: " + line[:120])
    await proc.wait()
    if cut(proc):
        raise remote.lost()
    if proc.exit_status != 0:
        why = error or last or f"exit status {proc.exit_status}"
        raise HostError(f"pip install failed on the device: {shown(why, 300)}")


async def switch(remote: Remote, layout: Layout, current: str | None, previous: str | None) -> None:
    """Point `current` and `previous` at releases (None: remove the link), each by a rename,
    synced: once a deploy says it is done, a power cut does not take the switch back."""
    lines = []
    for link, release_id in ((layout.previous, previous), (layout.current, current)):
        if release_id is None:
            lines.append(quote("rm", "-f", link))
        else:
            lines.append(
                quote("ln", "-sfn", f"releases/{release_id}", link + ".new")
                + " && "
                + quote("mv", "-T", link + ".new", link)
            )
    lines.append(quote("sync", "--", layout.root))
    await remote.run("set -e; " + "; ".join(lines))


async def read_meta(remote: Remote, layout: Layout, release_id: str) -> dict:
    text = await remote.run(
        quote("cat", posixpath.join(layout.release(release_id), "release.json"))
    )
    return json.loads(text)


async def read_file(remote: Remote, path: str) -> str:
    return await remote.run(quote("cat", path))


async def remove_release(remote: Remote, layout: Layout, release_id: str) -> None:
    await remote.run(quote("rm", "-rf", layout.release(release_id)))


async def prune(remote: Remote, layout: Layout, keep: int) -> list[str]:
    """Remove all but the `keep` newest releases (never current or previous), then the blobs and
    venvs no release uses any more; returns the removed release ids."""
    script = f"""
cd {quote(layout.root)} || exit 0
cur=$(basename "$(readlink current)" 2>/dev/null); prev=$(basename "$(readlink previous)" 2>/dev/null)
ls -1 releases | grep -v '^\\.' | sort -r | tail -n +{keep + 1} | while read r; do
  [ "$r" = "$cur" ] || [ "$r" = "$prev" ] || {{ rm -rf "releases/$r"; echo "$r"; }}
done
find blobs -type f -links 1 -delete
for v in venvs/*; do
  [ -d "$v" ] || continue
  used=; for l in releases/*/venv; do [ "$(readlink "$l")" = "../../$v" ] && used=1; done
  [ -n "$used" ] || rm -rf "$v"
done
"""
    return (await remote.run("sh -s", input=script)).split()
