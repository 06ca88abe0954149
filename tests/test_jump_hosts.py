"""Jump hosts (issue 18, repro 4): a bastion and two servers reached through it, the
ProxyJump given by the entry (``--ssh-option ProxyJump=``) or by the user's ssh config.
Unknown host keys on each hop are ``host_key_unknown`` naming that hop, fast (nothing is
ever typed into ssh's host-key question: sane used to type its takeover there and end in
``timeout``); ``--accept-new`` trusts a new key on every hop. Real sshd servers
(sane.testing.fleet) in network namespaces: s2 and s3 sit on a network only the bastion
has a leg in, so the host cannot reach them but through it (shown by a direct connection
failing). Real ssh, real tmux."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sane import errors
from sane.fleet.importers import from_ssh_config
from sane.fleet.panes import open_server_pane
from sane.fleet.registry import Registry, Server
from sane.fleet.run import fleet_run
from sane.fleet.ssh import USER_CONFIG_ENV, probe_connection
from sane.ops.context import Context

pytestmark = [pytest.mark.ssh]


@pytest.fixture
def jump(
    make_fleet: Callable[..., Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> dict[str, Any]:
    """s1 is the bastion; s2 and s3 are reachable only through it. The user's ssh config
    names the bastion (its key, user, port) and ``behind3`` (s3, whose ProxyJump is
    written there); every hop checks keys against one known_hosts that starts empty."""
    fleet = make_fleet(3, "netns", bastion="s1")
    known = tmp_path / "known_hosts"
    known.write_text("")
    bastion, s3 = fleet["s1"], fleet["s3"]
    config = tmp_path / "ssh_config"
    config.write_text(
        f"Host bastion\n  HostName {bastion.host}\n  Port {bastion.port}\n"
        f"Host behind3\n  HostName {s3.host}\n  Port {s3.port}\n  ProxyJump bastion\n"
        f"Host *\n  User root\n  IdentityFile {fleet.client_key}\n"
        f"  UserKnownHostsFile {known}\n"
    )
    monkeypatch.setenv(USER_CONFIG_ENV, str(config))
    return {"fleet": fleet, "known": known, "bastion": bastion.known_hosts_name, "config": config}


def _from_entry(jump: dict[str, Any]) -> Server:
    s2 = jump["fleet"]["s2"]
    return Server(
        name="s2",
        host=s2.host,
        port=s2.port,
        user="root",
        identity_file=str(jump["fleet"].client_key),
        ssh_options={"ProxyJump": "bastion", "UserKnownHostsFile": str(jump["known"])},
    )


def _from_config() -> Server:
    return Server(name="s3", host="behind3")


@pytest.mark.parametrize(
    "make",
    [_from_entry, lambda jump: _from_config()],
    ids=["ProxyJump of the entry", "ProxyJump of the ssh config"],
)
def test_an_unknown_key_on_each_hop_is_named(
    sane_ctx: Context, jump: dict[str, Any], make: Callable[[dict[str, Any]], Server]
) -> None:
    server = make(jump)
    Registry(sane_ctx.home).add(server)
    started = time.monotonic()
    with pytest.raises(errors.HostKeyUnknown) as info:
        open_server_pane(sane_ctx, server)  # a pane: where sane used to type into ssh
    assert time.monotonic() - started < 10  # ssh's answer, not a timeout
    assert info.value.details["hop"] == jump["bastion"]
    assert jump["bastion"] in info.value.message and "--accept-new" in info.value.details["hint"]
    with pytest.raises(errors.HostKeyUnknown) as again:
        probe_connection(server)
    assert again.value.details["hop"] == jump["bastion"]
    assert jump["known"].read_text() == ""  # nothing trusted without --accept-new
    # --accept-new: every hop's new key is trusted (never a changed one).
    pane = open_server_pane(sane_ctx, server, accept_new=True)
    assert not pane.dead
    target = jump["fleet"]["s2"] if server.name == "s2" else jump["fleet"]["s3"]
    for hop in (jump["bastion"], target.known_hosts_name):  # (hashed names)
        assert (
            subprocess.run(
                ["ssh-keygen", "-F", hop, "-f", str(jump["known"])],
                capture_output=True,
                check=False,
            ).returncode
            == 0
        ), hop
    result = fleet_run(sane_ctx, [server], "echo $FLEET_HOST")
    assert result["results"][0]["output"] == f"{'s2' if server.name == 's2' else 's3'}\n"


def test_the_target_behind_the_bastion_is_named_once_the_bastion_is_known(
    sane_ctx: Context, jump: dict[str, Any]
) -> None:
    server = _from_entry(jump)
    probe_connection(Server(name="b", host="bastion"), accept_new=True)
    with pytest.raises(errors.HostKeyUnknown) as info:
        probe_connection(server)
    s2 = jump["fleet"]["s2"]
    assert info.value.details["hop"] == s2.known_hosts_name


def test_the_connection_goes_through_the_bastion(sane_ctx: Context, jump: dict[str, Any]) -> None:
    server = _from_config()
    probe_connection(server, accept_new=True)
    jump["fleet"].stop("s1")
    with pytest.raises(errors.ConnectionFailed) as info:
        probe_connection(server)
    assert isinstance(info.value, errors.ConnectionRefused), info.value.to_dict()
    bastion = jump["fleet"]["s1"]
    assert f"connect to host {bastion.host} port {bastion.port}" in info.value.message


def test_the_hosts_behind_the_bastion_are_reachable_only_through_it(
    sane_ctx: Context, jump: dict[str, Any]
) -> None:
    """What makes the other tests prove routing: a direct connection, sane's or plain
    ssh's, to a host behind the bastion fails; the same entry through it answers."""
    fleet = jump["fleet"]
    s2 = fleet["s2"]
    direct = Server(
        name="direct", host=s2.host, port=s2.port, user="root", identity_file=str(fleet.client_key)
    )
    with pytest.raises(errors.ConnectionFailed) as info:
        probe_connection(direct, accept_new=True)
    assert s2.host in info.value.message, info.value.to_dict()
    plain = subprocess.run(
        [
            "ssh",
            "-F",
            "/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=5",
            f"root@{s2.host}",
            "true",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert plain.returncode == 255 and s2.host in plain.stderr, plain.stderr
    probe_connection(_from_entry(jump), accept_new=True)  # through the bastion
    # The fleet's own config jumps through the bastion as well.
    assert (
        subprocess.run(
            fleet.ssh_argv("s3", "echo $FLEET_HOST"),
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        ).stdout
        == "s3\n"
    )


def test_an_imported_jump_alias_reaches_the_host_through_the_bastion(
    sane_ctx: Context, jump: dict[str, Any], tmp_path: Path
) -> None:
    """A config imported from a file that is not the user's ssh config: its ProxyJump
    alias (``edge``, unknown to the user's config) is stored as the host it names there,
    so the entry still connects through the bastion (it used to connect to "edge")."""
    fleet = jump["fleet"]
    bastion, s2 = fleet["s1"], fleet["s2"]
    imported_file = tmp_path / "team_config"
    imported_file.write_text(
        f"Host edge\n  HostName {bastion.host}\n  User root\n"
        f"Host app\n  HostName {s2.host}\n  ProxyJump edge\n  User root\n"
        f"  IdentityFile {fleet.client_key}\n  UserKnownHostsFile {jump['known']}\n"
    )
    imported = from_ssh_config(imported_file)
    app = next(s for s in imported.servers if s.name == "app")
    assert app.ssh_options["ProxyJump"] == f"root@{bastion.host}:22"
    Registry(sane_ctx.home).add(app)
    probe_connection(app, accept_new=True)
    result = fleet_run(sane_ctx, [app], "echo $FLEET_HOST")
    assert result["results"][0]["output"] == "s2\n"


def test_a_hop_takes_its_key_from_the_users_config_not_the_entry(
    sane_ctx: Context, jump: dict[str, Any], tmp_path: Path
) -> None:
    """The documented rule (docs/commands.md): the entry's ``--identity`` is for the target
    only; a hop is reached as ``ssh -J`` reaches it, with the user's config. A bastion
    that accepts only the entry's key refuses the hop (``auth_failed`` quoting the
    bastion), until the user's config gives that host the key."""
    fleet = jump["fleet"]
    hop_key = tmp_path / "hop_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(hop_key)], check=True)
    fleet["s1"].authorized_keys.write_text((tmp_path / "hop_key.pub").read_text())
    fleet.authorize("s2", (tmp_path / "hop_key.pub").read_text())
    server = Server(
        name="s2",
        host=fleet["s2"].host,
        user="root",
        identity_file=str(hop_key),
        ssh_options={
            "ProxyJump": "bastion",
            "IdentitiesOnly": "yes",
            "UserKnownHostsFile": str(jump["known"]),
        },
    )
    with pytest.raises(errors.AuthFailed) as info:
        probe_connection(server, accept_new=True)
    assert fleet["s1"].host in info.value.message, info.value.to_dict()
    config = Path(str(jump["config"]))
    config.write_text(f"Host bastion\n  IdentityFile {hop_key}\n" + config.read_text())
    probe_connection(server, accept_new=True)
