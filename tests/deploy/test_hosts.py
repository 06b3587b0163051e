"""Which devices a deploy goes to: --host addresses and the inventory file, refused with one line
that names the file and key before any host is touched."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgefer.deploy.hosts import load_inventory, parse_address, resolve_targets
from edgefer.errors import EdgeferError


@pytest.mark.parametrize(
    "text, expected",
    [
        ("pi@kitchen.local", ("pi", "kitchen.local", 22)),
        ("pi@10.0.0.5:2222", ("pi", "10.0.0.5", 2222)),
        ("kitchen", (None, "kitchen", 22)),
        ("pi@[fe80::1]:22", ("pi", "fe80::1", 22)),
        ("edge_user@cam-01", ("edge_user", "cam-01", 22)),
    ],
)
def test_addresses(text, expected):
    assert parse_address(text) == expected


@pytest.mark.parametrize(
    "text", ["pi@", "@host", "pi@host:0", "pi@host:65536", "pi@ho st", "a@b@c"]
)
def test_bad_addresses_are_refused(text):
    with pytest.raises(EdgeferError, match="expected USER@HOST\\[:PORT\\]"):
        parse_address(text)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "hosts.toml"
    path.write_text(text)
    return path


def test_inventory_paths_are_relative_to_it_and_defaults_fill_in(tmp_path):
    inv = write(
        tmp_path,
        '[defaults]\nconfig = "base.toml"\nidentity = "keys/fleet"\n'
        '[hosts.kitchen]\naddress = "pi@kitchen.local"\n'
        '[hosts.garage]\naddress = "pi@garage:2200"\nconfig = "garage.toml"\n',
    )
    kitchen, garage = load_inventory(inv)
    assert (kitchen.name, kitchen.config, kitchen.identity) == (
        "kitchen",
        tmp_path / "base.toml",
        tmp_path / "keys/fleet",
    )
    assert (garage.port, garage.config, garage.address) == (
        2200,
        tmp_path / "garage.toml",
        "pi@garage:2200",
    )


@pytest.mark.parametrize(
    "text, message",
    [
        ('[hosts.a]\naddres = "pi@a"\n', "key hosts.a.address: Field required"),
        ('[hosts.a]\naddress = "pi@a"\npassword = "x"\n', "key hosts.a.password: Extra inputs"),
        ("[hosts]\n", "key hosts: Dictionary should have at least 1 item"),
        ('[hosts.a]\naddress = "pi@"\n', "hosts.a.address pi@: expected USER@HOST[:PORT]"),
        ('[hosts."a b"]\naddress = "pi@a"\n', "host name a b: use letters, digits"),
        ("[hosts\n", "not valid TOML"),
    ],
)
def test_a_bad_inventory_is_one_line_naming_the_file_and_key(tmp_path, text, message):
    inv = write(tmp_path, text)
    with pytest.raises(EdgeferError) as err:
        load_inventory(inv)
    assert str(err.value).startswith(f"{inv}: ") and message in str(err.value)
    assert "\n" not in str(err.value)


def test_command_line_options_fill_in_what_the_inventory_leaves_open(tmp_path):
    inv = write(
        tmp_path, '[hosts.a]\naddress = "pi@a"\n[hosts.b]\naddress = "pi@b"\nconfig = "b.toml"\n'
    )
    targets = resolve_targets(("root@c:2222",), inv, Path("all.toml"), Path("id"))
    assert [(t.name, t.config, t.identity) for t in targets] == [
        ("root@c:2222", Path("all.toml"), Path("id")),
        ("a", Path("all.toml"), Path("id")),
        ("b", tmp_path / "b.toml", Path("id")),
    ]


def test_a_host_given_twice_is_refused(tmp_path):
    inv = write(tmp_path, '[hosts.kitchen]\naddress = "pi@Kitchen.local"\n')
    with pytest.raises(EdgeferError, match=r"given twice \(pi@kitchen.local and kitchen\)"):
        resolve_targets(("pi@kitchen.local",), inv, None, None)


def test_the_documented_inventory_is_valid():
    example = Path(__file__).resolve().parents[2] / "docs/fleet/hosts.example.toml"
    targets = load_inventory(example)
    assert [t.name for t in targets] == ["kitchen", "hall", "warehouse"]
    assert targets[1].config == example.parent / "hall.toml" and targets[2].port == 2222
