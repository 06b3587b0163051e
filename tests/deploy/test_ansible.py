"""docs/fleet/deploy.yml, the fleet playbook, run by a real ansible-playbook against both test
devices: two groups (one --offline), a batch at a time, Ansible's own /healthz check over its
own SSH, and a second run that changes nothing."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from edgefer.bundled import default_bundle
from tests.deploy.devices import current, daemon_config, known_hosts

PLAYBOOK = Path(__file__).resolve().parents[2] / "docs/fleet/deploy.yml"
BIN = Path(sys.executable).parent  # ansible-playbook and edgefer, installed with the dev extra


def recap(output: str) -> dict[str, dict[str, int]]:
    """{host: {"ok": n, "changed": n, "failed": n, ...}} from the PLAY RECAP."""
    rows = re.findall(r"^(\w+)\s+:\s+(.*)$", output.split("PLAY RECAP", 1)[1], re.MULTILINE)
    return {host: {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", rest)} for host, rest in rows}


@pytest.fixture
def playbook(first_deploy, offline_first_deploy, deployer, offline_deployer, tmp_path):
    """ansible-playbook with an inventory of the two devices: `online` and `offline` groups."""
    devices = {"kitchen": deployer.server, "garage": offline_deployer.server}
    known = known_hosts(tmp_path / "known_hosts", *devices.values())

    def host(server, config):
        return {
            "ansible_port": server.port,
            "edgefer_config": str(config),
            "edgefer_status_port": server.status_port,
        }

    def run(configs: dict[str, Path]) -> subprocess.CompletedProcess:
        inventory = {
            "all": {
                "children": {
                    "edgefer": {
                        "children": {
                            "online": {
                                "hosts": {"kitchen": host(devices["kitchen"], configs["kitchen"])}
                            },
                            "offline": {
                                "hosts": {"garage": host(devices["garage"], configs["garage"])},
                                "vars": {"edgefer_offline": True},
                            },
                        },
                        "vars": {
                            "ansible_host": "127.0.0.1",
                            "ansible_user": deployer.server.user,
                            "ansible_ssh_private_key_file": str(deployer.key),
                            "ansible_ssh_common_args": f"-o UserKnownHostsFile={known} "
                            "-o StrictHostKeyChecking=yes",
                            "ansible_python_interpreter": "/usr/bin/python3",
                            "edgefer_bundle": str(default_bundle()),
                            "edgefer_known_hosts": str(known),
                            "edgefer_service": "none",
                            "edgefer_deploy_args": ["--wheel", str(deployer.wheel)],
                        },
                    }
                }
            }
        }
        path = tmp_path / "inventory.yml"
        path.write_text(json.dumps(inventory))  # JSON is YAML
        env = {
            **os.environ,
            "PATH": f"{BIN}:{os.environ['PATH']}",
            "ANSIBLE_HOME": str(tmp_path / "ansible"),
            "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible/tmp"),
            "ANSIBLE_NOCOLOR": "1",
            "XDG_CACHE_HOME": str(deployer.cache),  # the wheelhouse cache, as in the other tests
        }
        return subprocess.run(
            # serial is a play keyword: inventory variables do not reach it, -e does.
            [
                str(BIN / "ansible-playbook"),
                "-i",
                str(path),
                "-e",
                "edgefer_batch=2",
                str(PLAYBOOK),
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
            check=False,
        )

    run.devices = devices
    return run


def test_the_playbook_deploys_each_group_and_a_second_run_changes_nothing(playbook, face_video):
    devices = playbook.devices
    before = {name: current(server) for name, server in devices.items()}
    configs = {
        name: daemon_config(
            server, face_video, "fleet.toml", extra="[tracking]\nlost_after = 1.2\n"
        )
        for name, server in devices.items()
    }
    first = playbook(configs)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-2000:]
    assert recap(first.stdout) == {
        name: {
            "ok": 3,
            "changed": 1,
            "unreachable": 0,
            "failed": 0,
            "skipped": 0,
            "rescued": 0,
            "ignored": 0,
        }
        for name in devices
    }
    for name, server in devices.items():
        release = server.home / ".edgefer/releases" / current(server)
        assert current(server) != before[name]
        assert (release / "edgefer.toml").read_text() == configs[name].read_text()
    offline = json.loads((devices["garage"].home / ".edgefer/current/release.json").read_text())
    assert offline["offline"] is True
    again = playbook(configs)
    assert again.returncode == 0, again.stdout[-3000:]
    assert {name: r["changed"] for name, r in recap(again.stdout).items()} == {
        "kitchen": 0,
        "garage": 0,
    }


def test_the_example_inventory_puts_every_device_in_the_playbooks_group(tmp_path):
    example = PLAYBOOK.parent / "inventory.example.yml"
    proc = subprocess.run(
        [str(BIN / "ansible-inventory"), "-i", str(example), "--list"],
        capture_output=True,
        text=True,
        env={**os.environ, "ANSIBLE_HOME": str(tmp_path)},
        check=True,
    )
    inventory = json.loads(proc.stdout)
    hosts = {h for group in ("shop_floor", "warehouse") for h in inventory[group]["hosts"]}
    assert hosts == {"cam-01", "cam-02", "cam-03", "wh-01", "wh-02"}
    assert set(inventory["edgefer"]["children"]) == {"shop_floor", "warehouse"}
    assert inventory["_meta"]["hostvars"]["wh-01"]["edgefer_offline"] is True
