"""servers.json: validation, atomic locked writes under concurrency, importers."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from sane import errors
from sane.fleet.importers import from_ansible_inventory, from_ssh_config
from sane.fleet.registry import Registry, Server

from .conftest import cli


def test_add_list_show_remove(sane_home: Path) -> None:
    reg = Registry(sane_home)
    reg.add(Server(name="web1", host="10.0.0.1", user="deploy", tags=["web", "eu"]))
    reg.add(Server(name="db1", host="db.example", port=2222))
    assert [s.name for s in reg.servers()] == ["web1", "db1"]
    assert reg.get("db1").port == 2222 and reg.get("web1").tags == ["eu", "web"]
    assert [s.name for s in reg.select(tag="web")] == ["web1"]
    with pytest.raises(errors.ServerExists):
        reg.add(Server(name="web1", host="other"))
    reg.remove("web1")
    with pytest.raises(errors.ServerNotFound):
        reg.get("web1")
    assert stat.S_IMODE((sane_home / "servers.json").stat().st_mode) == 0o600
    assert stat.S_IMODE(sane_home.stat().st_mode) == 0o700


@pytest.mark.parametrize(
    "content,field",
    [
        (b'{"version": 1, "servers": [{"name": "a", "host": "h", "port": 0}]}', "servers.0.port"),
        (b'{"version": 1, "servers": [{"name": "a", "hots": "h"}]}', "servers.0.host"),
        (b'{"version": 1, "servers": [{"name": "-bad", "host": "h"}]}', "servers.0.name"),
        (b'{"version": 2, "servers": []}', "version"),
    ],
)
def test_malformed_registry_names_the_field_and_is_left_untouched(
    sane_home: Path, content: bytes, field: str
) -> None:
    sane_home.mkdir(mode=0o700)
    (sane_home / "servers.json").write_bytes(content)
    reg = Registry(sane_home)
    with pytest.raises(errors.ConfigInvalid) as info:
        reg.add(Server(name="new", host="h"))
    assert info.value.details["field"] == field
    assert (sane_home / "servers.json").read_bytes() == content


def test_broken_json_names_the_line(sane_home: Path, cli_env: dict[str, str]) -> None:
    sane_home.mkdir(mode=0o700)
    content = b'{"version": 1,\n "servers": [\n  {"name": "a" "host": "h"}]}'
    (sane_home / "servers.json").write_bytes(content)
    status, doc, _ = cli(["sane.cli.main", "server", "list"], cli_env)
    error = doc["error"]
    assert (status, error["code"], error["details"]["line"]) == (7, "config_invalid", 3)
    assert (sane_home / "servers.json").read_bytes() == content


@pytest.mark.slow
def test_fifty_concurrent_adds_lose_nothing(sane_home: Path) -> None:
    env = dict(os.environ, SANE_HOME=str(sane_home))
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sane.cli.main",
                "server",
                "add",
                f"s{i:02d}",
                "--host",
                f"10.1.0.{i}",
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for i in range(50)
    ]
    for proc in procs:
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0, out
        assert json.loads(out)["ok"] is True
    names = sorted(s.name for s in Registry(sane_home).servers())
    assert names == [f"s{i:02d}" for i in range(50)]
    leftovers = [p for p in sane_home.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []


def test_no_secrets_accepted(sane_home: Path, cli_env: dict[str, str]) -> None:
    status, doc, _ = cli(
        ["sane.cli.main", "server", "add", "x", "--host", "h", "--ssh-option", "Password=hunter2"],
        cli_env,
    )
    assert (status, doc["error"]["code"]) == (2, "invalid_argument")
    assert not (sane_home / "servers.json").exists()
    status, doc, _ = cli(["sane.cli.main", "server", "add", "x", "--host", "h; rm -rf /"], cli_env)
    assert (status, doc["error"]["code"]) == (2, "invalid_argument")


def test_unknown_server_cli(cli_env: dict[str, str]) -> None:
    status, doc, _ = cli(["sane.cli.main", "server", "show", "ghost"], cli_env)
    assert (status, doc["error"]["code"]) == (3, "server_not_found")


SSH_CONFIG = """\
Host *
    ServerAliveInterval 30
# a comment
Host web1 web2
    HostName 10.0.0.%h
    User deploy
    Port 2200
    IdentityFile ~/.ssh/deploy_ed25519
Host db1
    HostName=db.internal
    ConnectTimeout 5
Host jump
    HostName j.example
    ProxyCommand nc %h %p
Match host foo
    User nobody
"""


def test_import_ssh_config(tmp_path: Path) -> None:
    (tmp_path / "config").write_text(SSH_CONFIG)
    imported = from_ssh_config(tmp_path / "config")
    by_name = {s.name: s for s in imported.servers}
    assert sorted(by_name) == ["db1", "web1", "web2"]
    assert (by_name["web1"].user, by_name["web1"].port) == ("deploy", 2200)
    assert by_name["web1"].host == "10.0.0.web1"  # %h, as ssh expands it
    assert by_name["web1"].identity_file == "~/.ssh/deploy_ed25519"
    assert by_name["db1"].host == "db.internal"
    assert by_name["db1"].ssh_options == {"ConnectTimeout": "5", "ServerAliveInterval": "30"}
    skipped = {s["name"]: s["reason"] for s in imported.skipped}
    assert "ProxyCommand" in skipped["jump"] and "Host pattern" in skipped["*"]


INI = """\
[web]
web1 ansible_host=10.0.0.11 ansible_user=deploy
web2 ansible_host=10.0.0.12 ansible_port=2222

[db]
db1 ansible_host=10.0.0.21 ansible_ssh_private_key_file=/keys/db

[db:vars]
ansible_user=postgres

[secret]
bad1 ansible_host=10.0.0.99 ansible_password=hunter2

[prod:children]
web
db
"""

YAML = """\
all:
  hosts:
    solo:
      ansible_host: 10.0.0.5
  children:
    web:
      vars:
        ansible_user: deploy
      hosts:
        web1:
          ansible_host: 10.0.0.11
        web2:
          ansible_port: 2222
"""


def test_import_ansible_ini(tmp_path: Path) -> None:
    (tmp_path / "hosts").write_text(INI)
    imported = from_ansible_inventory(tmp_path / "hosts")
    by_name = {s.name: s for s in imported.servers}
    assert sorted(by_name) == ["db1", "web1", "web2"]
    assert (by_name["web1"].host, by_name["web1"].user, by_name["web1"].tags) == (
        "10.0.0.11",
        "deploy",
        ["prod", "web"],
    )  # [prod:children] makes web1 a prod host
    assert (by_name["web2"].port, by_name["db1"].user) == (2222, "postgres")
    assert by_name["db1"].identity_file == "/keys/db"
    assert imported.skipped == [
        {"name": "bad1", "reason": "holds a password; sane stores keys only"}
    ]


def test_import_ansible_yaml(tmp_path: Path, cli_env: dict[str, str]) -> None:
    (tmp_path / "inv.yml").write_text(YAML)
    imported = from_ansible_inventory(tmp_path / "inv.yml")
    by_name = {s.name: s for s in imported.servers}
    assert by_name["solo"].host == "10.0.0.5" and by_name["solo"].tags == []
    assert (by_name["web1"].user, by_name["web2"].host, by_name["web2"].port) == (
        "deploy",
        "web2",
        2222,
    )
    inventory = tmp_path / "inv.yml"
    inventory.write_text(YAML)
    status, doc, _ = cli(
        ["sane.cli.main", "server", "import", "--format", "ansible", str(inventory)], cli_env
    )
    assert status == 0 and sorted(s["name"] for s in doc["imported"]) == ["solo", "web1", "web2"]
    status, doc, _ = cli(
        ["sane.cli.main", "server", "import", "--format", "ansible", str(inventory)], cli_env
    )
    assert doc["imported"] == [] and len(doc["skipped"]) == 3
