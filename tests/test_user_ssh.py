"""sane uses the user's own ssh: their config (aliases, ports, ``Host *``), agent keys,
older servers; one connection per registry entry; ssh's own reason for every failure.
Real sshd servers (sane.testing.fleet), real ssh, real tmux."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sane import errors
from sane.fleet.panes import open_server_pane, pane_for_server
from sane.fleet.registry import Registry, Server
from sane.fleet.ssh import probe_connection
from sane.ops.context import Context
from sane.ops.run.command import run_command
from sane.ops.run.options import RunOptions
from sane.testing import retry_until

from .conftest import cli


def entry(fleet: Any, name: str, server: str = "s1", **fields: Any) -> Server:
    srv = fleet[server]
    values: dict[str, Any] = {
        "host": srv.host,
        "port": srv.port,
        "user": "root",
        "identity_file": str(fleet.client_key),
        "ssh_options": {"UserKnownHostsFile": str(fleet.known_hosts)},
    }
    values.update(fields)
    return Server(name=name, **values)


def keygen(path: Path) -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return path


def test_entries_on_one_host_never_share_a_connection(
    sane_ctx: Context, ssh_fleet: Any, tmp_path: Path
) -> None:
    """#18.1: an entry with a missing or wrong key, or without the known host key, fails
    alone while another entry of the same host/port/user is connected."""
    good = entry(ssh_fleet, "good")
    typo = entry(ssh_fleet, "typo", identity_file="/nonexistent/key")
    other = entry(ssh_fleet, "other", identity_file=str(keygen(tmp_path / "other")))
    stranger = entry(ssh_fleet, "stranger", ssh_options={"UserKnownHostsFile": "/dev/null"})
    registry = Registry(sane_ctx.home)
    for server in (good, typo, other, stranger):
        registry.add(server)
    open_server_pane(sane_ctx, good)  # its ControlMaster is up from here on
    with pytest.raises(errors.AuthFailed) as missing:
        probe_connection(typo)
    assert "/nonexistent/key" in missing.value.details["hint"]
    with pytest.raises(errors.AuthFailed) as wrong:
        probe_connection(other)
    assert "Permission denied" in wrong.value.message
    with pytest.raises(errors.AuthFailed):
        open_server_pane(sane_ctx, other)
    with pytest.raises(errors.HostKeyUnknown):
        probe_connection(stranger)
    assert probe_connection(good) > 0
    done = run_command(
        sane_ctx,
        "echo still",
        pane=pane_for_server(sane_ctx, "good"),
        options=RunOptions(timeout=20),
    )
    assert (done["status"], done["output"]) == ("completed", "still\n")


def test_an_older_server_and_the_entrys_own_options(
    sane_ctx: Context, make_fleet: Callable[..., Any]
) -> None:
    """#18.2: a server offering only diffie-hellman-group14-sha256 connects (sane puts
    its fast algorithms first with ``^`` instead of replacing ssh's list); one offering
    nothing ssh accepts fails with ssh's reason and a hint; the entry's own
    KexAlgorithms and StrictHostKeyChecking are used, not stored and ignored."""
    fleet = make_fleet(1)
    fleet.configure_sshd("s1", "KexAlgorithms diffie-hellman-group14-sha256")
    old = entry(fleet, "old")
    Registry(sane_ctx.home).add(old)
    assert probe_connection(old) > 0
    done = run_command(
        sane_ctx, "echo old", pane=pane_for_server(sane_ctx, "old"), options=RunOptions(timeout=30)
    )
    assert (done["status"], done["output"]) == ("completed", "old\n")

    fleet.configure_sshd("s1", "KexAlgorithms diffie-hellman-group1-sha1")
    ancient = entry(fleet, "ancient")
    with pytest.raises(errors.ConnectionFailed) as refused:
        probe_connection(ancient)
    assert refused.value.code == "connection_failed"
    assert "no matching key exchange method found" in refused.value.message
    assert "diffie-hellman-group1-sha1" in refused.value.message
    assert "KexAlgorithms=+" in refused.value.details["hint"]
    allowed = entry(
        fleet,
        "allowed",
        ssh_options={
            "UserKnownHostsFile": str(fleet.known_hosts),
            "KexAlgorithms": "+diffie-hellman-group1-sha1",
        },
    )
    assert probe_connection(allowed) > 0

    fleet.configure_sshd("s1", "")
    lax = entry(
        fleet, "lax", ssh_options={"UserKnownHostsFile": "/dev/null", "StrictHostKeyChecking": "no"}
    )
    assert probe_connection(lax) > 0


def test_a_host_alias_keeps_the_port_and_user_of_the_users_config(
    cli_env: dict[str, str], ssh_fleet: Any, tmp_path: Path
) -> None:
    """#18.3: ``server add web1 --host web1`` uses the alias's Port (and ``Host *``
    defaults) from the user's ssh config; sane adds no ``-p 22``."""
    s2 = ssh_fleet["s2"]
    config = tmp_path / "config"
    config.write_text(
        f"Host web1\n  HostName {s2.host}\n  Port {s2.port}\n\n"
        f"Host *\n  User root\n  IdentityFile {ssh_fleet.client_key}\n"
        f"  UserKnownHostsFile {ssh_fleet.known_hosts}\n"
    )
    env = {**cli_env, "SANE_SSH_CONFIG": str(config)}
    status, doc, _ = cli(["sane.cli.main", "server", "add", "web1", "--host", "web1"], env)
    assert status == 0 and doc["server"]["port"] is None and doc["warnings"] == []
    status, doc, _ = cli(["sane.cli.main", "server", "test", "web1"], env)
    assert status == 0 and doc["reachable"] is True, doc
    status, doc, _ = cli(["sane.cli.run_command", "--server", "web1", "echo $FLEET_HOST"], env)
    assert (status, doc["output"]) == (0, "s2\n")


def test_server_add_warns_of_a_missing_key_and_refuses_what_ssh_refuses(
    cli_env: dict[str, str], ssh_fleet: Any
) -> None:
    status, doc, _ = cli(
        [
            "sane.cli.main",
            "server",
            "add",
            "k",
            "--host",
            "127.0.0.1",
            "--identity",
            "/nonexistent/key",
        ],
        cli_env,
    )
    assert status == 0 and "/nonexistent/key" in doc["warnings"][0]
    status, doc, _ = cli(
        [
            "sane.cli.main",
            "server",
            "add",
            "bad",
            "--host",
            "127.0.0.1",
            "--ssh-option",
            "ConnectTimeout=soon",
        ],
        cli_env,
    )
    assert (status, doc["error"]["code"]) == (2, "invalid_argument")
    assert "ConnectTimeout" in doc["error"]["message"] or "soon" in doc["error"]["message"]


@pytest.mark.parametrize(
    "option",
    [
        "XAuthLocation=/tmp/x",
        "ForwardX11=yes",
        "SendEnv=*",
        "SetEnv=A=1",
        "ForwardAgent=yes",
        "RemoteForward=9000 localhost:22",
        "LocalForward=9000 localhost:22",
        "LocalCommand=touch /tmp/x",
        "PermitLocalCommand=yes",
        "ProxyCommand=nc %h %p",
        "KnownHostsCommand=/bin/true",
        "PKCS11Provider=/x.so",
        "RemoteCommand=id",
        "ControlPath=/tmp/x",
        "BatchMode=no",
        "Include=/etc/passwd",
        "Port=2222",
        "ProxyJump=a;touch /tmp/x",
        "StrictHostKeyChecking=maybe",
    ],
)
def test_ssh_options_are_an_allow_list(cli_env: dict[str, str], option: str) -> None:
    """#16.1: anything not on the allow-list is refused, naming the option."""
    status, doc, _ = cli(
        ["sane.cli.main", "server", "add", "h", "--host", "127.0.0.1", "--ssh-option", option],
        cli_env,
    )
    assert (status, doc["error"]["code"]) == (2, "invalid_argument")
    assert option.partition("=")[0] in doc["error"]["message"]


def test_an_agent_only_key_is_used_when_the_entry_names_none(
    sane_ctx: Context, make_fleet: Callable[..., Any], tmp_path: Path
) -> None:
    fleet = make_fleet(1)
    key = keygen(tmp_path / "agent_only")
    fleet.authorize("s1", (tmp_path / "agent_only.pub").read_text())
    sock = tmp_path / "agent.sock"
    agent = subprocess.Popen(
        ["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        retry_until(sock.exists, timeout=10, message="ssh-agent did not start")
        subprocess.run(
            ["ssh-add", "-q", str(key)],
            check=True,
            capture_output=True,
            env={**os.environ, "SSH_AUTH_SOCK": str(sock)},
        )
        key.unlink()  # only the agent has it now
        server = entry(
            fleet,
            "agent",
            identity_file=None,
            ssh_options={"UserKnownHostsFile": str(fleet.known_hosts), "IdentityAgent": str(sock)},
        )
        Registry(sane_ctx.home).add(server)
        assert probe_connection(server) > 0
        done = run_command(
            sane_ctx,
            "echo agent",
            pane=pane_for_server(sane_ctx, "agent"),
            options=RunOptions(timeout=30),
        )
        assert (done["status"], done["output"]) == ("completed", "agent\n")
    finally:
        agent.terminate()
        agent.wait(timeout=10)


def test_a_failed_reconnect_says_why_in_ssh_words(
    sane_ctx: Context, cli_env: dict[str, str], make_fleet: Callable[..., Any]
) -> None:
    """#18.5: after a connected server goes away, reconnecting reports ssh's own reason
    (not the dead pane's padding or what sane typed into it), a code and a hint."""
    fleet = make_fleet(1)
    server = entry(fleet, "s1")
    Registry(sane_ctx.home).add(server)
    pane = pane_for_server(sane_ctx, "s1")
    fleet.stop("s1")
    retry_until(
        lambda: sane_ctx.pane_state(pane).dead,
        timeout=30,
        message="the pane's ssh did not notice the server going away",
    )
    with pytest.raises(errors.ConnectionRefused) as refused:
        open_server_pane(sane_ctx, server)
    error = refused.value
    assert error.message.endswith("Connection refused"), error.message
    assert "status 255" not in error.message and error.details["exit_status"] == 255
    lines = error.details["ssh_output"].splitlines()
    assert lines and all(line.strip() for line in lines)
    assert all("sane" not in line for line in lines), lines
    assert "port" in error.details["hint"]
    env = {
        **cli_env,
        "SANE_HOME": str(sane_ctx.home),
        "SANE_TMUX_SOCKET": sane_ctx.server.socket_name or "",
    }
    for argv in (["up"], ["fleet", "run", "true"]):
        status, doc, _ = cli(["sane.cli.main", *argv], env)
        reports = doc.get("servers") or doc.get("results")
        assert status != 0 and reports, doc
        got = reports[0]["error"]
        assert got["code"] == "connection_refused", got
        assert got["message"].endswith("Connection refused") and got["details"]["hint"]
