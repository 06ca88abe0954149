"""``sane server import --format ssh-config``: each host as ``ssh -G`` resolves it
(issue 18, repro 6). The check is ssh itself: for every imported entry, ssh resolving the
entry alone (``-F none`` plus its fields and options) must give what ssh resolves for
the host from the original file, except the options listed in ``skipped``."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from sane import errors
from sane.fleet.importers import from_ssh_config
from sane.fleet.registry import Server
from sane.fleet.ssh import USER_CONFIG_ENV

from .conftest import cli

# Realistic configs: a Host * block of defaults, aliases with %h tokens, several
# IdentityFile lines, a bastion, Include of a directory of files, Match blocks.
MAIN = """\
# company defaults
Include {inc}/*.conf

Host bastion
    HostName bastion.example.com
    User jump
    Port 2202
    IdentityFile ~/.ssh/bastion_ed25519

Host web1 web2
    HostName %h.internal.example.com
    ProxyJump bastion
    IdentityFile ~/.ssh/deploy_ed25519
    IdentityFile ~/.ssh/deploy_rsa
    StrictHostKeyChecking yes

Host db1
    HostName=10.0.0.21
    Port 5022
    User postgres
    ConnectTimeout 5
    ForwardAgent yes

Host tmux-box
    HostName 10.0.0.30
    RemoteCommand tmux new -A -s main
    RequestTTY yes

Host legacy
    HostName 10.0.0.40
    KexAlgorithms +diffie-hellman-group14-sha1
    ProxyCommand nc %h %p

Host *.example.org !skip.example.org
    User ops

Match host db1 user root
    ServerAliveInterval 15

Host *
    User deploy
    ServerAliveInterval 30
    ControlMaster auto
"""
INCLUDED = """\
Host git-mirror
    HostName git.internal.example.com
    Port 2222
"""


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The file imported; the user's own ssh config (read at connect time) is empty."""
    (tmp_path / "user_config").write_text("")
    monkeypatch.setenv(USER_CONFIG_ENV, str(tmp_path / "user_config"))
    inc = tmp_path / "conf.d"
    inc.mkdir()
    (inc / "10-git.conf").write_text(INCLUDED)
    (inc / "README").write_text("not matched by *.conf\nHost nope\n")
    path = tmp_path / "config"
    path.write_text(MAIN.format(inc=inc))
    return path


def _ssh_g(*args: str) -> dict[str, list[str]]:
    proc = subprocess.run(
        ["ssh", "-G", *args], capture_output=True, text=True, check=True, stdin=subprocess.DEVNULL
    )
    values: dict[str, list[str]] = {}
    for line in proc.stdout.splitlines():
        key, _, value = line.partition(" ")
        values.setdefault(key, []).append(value)
    return values


def _entry_alone(server: Server) -> dict[str, list[str]]:
    """What ssh resolves from the entry alone, as sane passes its fields."""
    argv = ["-F", "none"]
    if server.port is not None:
        argv += ["-p", str(server.port)]
    if server.user is not None:
        argv += ["-l", server.user]
    for key in [server.identity_file, *server.extra_identity_files]:
        if key:  # (-i drops a file that does not exist here; ssh -G keeps -o's)
            argv += ["-o", f"IdentityFile={key}"]
    for option, value in server.ssh_options.items():
        argv += ["-o", f"{option}={value}"]
    return _ssh_g(*argv, "--", server.host)


def test_every_host_is_what_ssh_G_resolves(config: Path) -> None:
    imported = from_ssh_config(config)
    by_name = {s.name: s for s in imported.servers}
    assert sorted(by_name) == ["bastion", "db1", "git-mirror", "web1", "web2"]
    dropped: dict[str, set[str]] = {}
    for item in imported.skipped:
        if "option" in item:
            dropped.setdefault(item["name"], set()).add(item["option"])
    for name, server in by_name.items():
        expected = _ssh_g("-F", str(config), "--", name)
        got = _entry_alone(server)
        differ = {
            key
            for key in expected.keys() | got.keys()
            if key != "host" and expected.get(key) != got.get(key)
        }  # host: the alias
        assert differ <= dropped.get(name, set()), (
            name,
            {key: (expected.get(key), got.get(key)) for key in differ},
        )
    # What the issue measured, one by one:
    assert by_name["web1"].host == "web1.internal.example.com"  # %h, not stored literally
    assert (by_name["web1"].identity_file, by_name["web1"].extra_identity_files) == (
        "~/.ssh/deploy_ed25519",
        ["~/.ssh/deploy_rsa"],
    )  # both IdentityFile lines
    assert by_name["web1"].user == "deploy"  # from Host *
    # A jump alias this file defines but the user's config does not: stored as the host
    # it is here (at connect time the hop resolves through the user's config).
    assert by_name["web1"].ssh_options["ProxyJump"] == "jump@bastion.example.com:2202"
    assert by_name["web1"].ssh_options["StrictHostKeyChecking"] == "yes"
    assert by_name["db1"].ssh_options == {"ConnectTimeout": "5", "ServerAliveInterval": "30"}
    assert (by_name["db1"].port, by_name["db1"].user) == (5022, "postgres")
    assert (by_name["git-mirror"].host, by_name["git-mirror"].port) == (
        "git.internal.example.com",
        2222,
    )  # from the Include
    reasons = {(s["name"], s.get("option")): s["reason"] for s in imported.skipped}
    assert "RemoteCommand" in reasons[("tmux-box", None)]
    assert "ProxyCommand" in reasons[("legacy", None)]
    assert "allow-list" in reasons[("db1", "forwardagent")]
    assert "sane itself" in reasons[("db1", "controlmaster")]
    assert "Host pattern" in reasons[("*.example.org", None)]
    assert "Host pattern" in reasons[("!skip.example.org", None)]
    assert "Host pattern" in reasons[("*", None)]
    assert "Match block" in reasons[("Match host db1 user root", None)]
    assert "nope" not in by_name
    assert "bastion_ed25519" in reasons[("web1", "proxyjump")]  # the hop's key: not carried


def test_a_jump_alias_the_users_config_resolves_alike_is_kept(
    config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Importing the user's own config: its ProxyJump aliases stay aliases (the hop keeps
    its key, user and port from that config at connect time), nothing is listed."""
    monkeypatch.setenv(USER_CONFIG_ENV, str(config))
    imported = from_ssh_config(config)
    web1 = next(s for s in imported.servers if s.name == "web1")
    assert web1.ssh_options["ProxyJump"] == "bastion"
    assert not [s for s in imported.skipped if s.get("option") == "proxyjump"]


def test_match_exec_is_refused_before_anything_runs(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    path = tmp_path / "config"
    path.write_text(f'Host a\n  HostName 10.0.0.1\nMatch exec "touch {marker}"\n  User x\n')
    with pytest.raises(errors.InvalidArgument) as info:
        from_ssh_config(path)
    assert "Match exec" in info.value.message and not marker.exists()


def test_cli_import_lists_what_it_skipped(config: Path, cli_env: dict[str, str]) -> None:
    status, doc, _ = cli(
        ["sane.cli.main", "server", "import", "--format", "ssh-config", str(config)], cli_env
    )
    assert status == 0, doc
    assert sorted(s["name"] for s in doc["imported"]) == [
        "bastion",
        "db1",
        "git-mirror",
        "web1",
        "web2",
    ]
    assert any(s["name"] == "tmux-box" for s in doc["skipped"])
    status, doc, _ = cli(["sane.cli.main", "server", "show", "web2"], cli_env)
    assert doc["server"]["extra_identity_files"] == ["~/.ssh/deploy_rsa"]
    assert json.dumps(doc).count("deploy_ed25519") == 1
