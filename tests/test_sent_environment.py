"""What of the orchestrator's environment reaches a server: a hostile sshd that accepts
every variable (``AcceptEnv *``) and records each session's environment, and an
orchestrator holding a cloud key, whose own ssh config says ``SendEnv *`` and
``SetEnv``. Through every path that connects (server add then test, import, connect,
fleet run, put, detect, health set and read, deploy), the server sees only what sshd
itself sets, the pty's ``TERM``, the locale and sane's constant ``SANE_SSH``
(``sane.fleet.ssh.sent_environment``): never the key. Before, the user's ``SendEnv *``
sent the whole environment, ``AWS_SECRET_ACCESS_KEY`` included.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import yaml

from sane.fleet.ssh import LOCALE_VARIABLES, SANE_SETENV
from sane.testing.pytest_plugin import FleetFactory, TmuxTestServer

from .conftest import cli

SECRET = "sane-env-secret-" + os.urandom(8).hex()
SET_SECRET = "sane-setenv-secret-" + os.urandom(8).hex()
# Recorded for every session, before the session's shell or command: sshd runs
# ~/.ssh/rc with the environment it built (its own variables and what it accepted).
RC = 'mkdir -p "$HOME/envlog" && env -0 > "$HOME/envlog/$$"\n'


def recorded(home: Path) -> list[dict[str, str]]:
    """Each recorded session's environment."""
    sessions = []
    for path in sorted((home / "envlog").glob("*")):
        pairs = [item.partition("=") for item in path.read_bytes().decode().split("\0") if item]
        sessions.append({name: value for name, _, value in pairs})
    return sessions


def test_a_hostile_sshd_accepting_every_variable_gets_only_the_locale(
    make_fleet: FleetFactory,
    cli_env: dict[str, str],
    tmux_server: TmuxTestServer,
    tmp_path: Path,
) -> None:
    fleet = make_fleet(1)
    srv = fleet["s1"]
    fleet.configure_sshd("s1", "AcceptEnv *")
    (srv.home / ".ssh").mkdir(exist_ok=True)
    (srv.home / ".ssh" / "rc").write_text(RC)
    # What sshd sets by itself: a session started with nothing in its environment.
    bare = subprocess.run(
        [*fleet.ssh_argv("s1"), "true"],
        env={"PATH": os.environ["PATH"]},
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert bare.returncode == 0, bare.stderr
    [baseline] = recorded(srv.home)
    for path in (srv.home / "envlog").iterdir():
        path.unlink()
    allowed = set(baseline) | {"TERM", "SSH_TTY", SANE_SETENV[0], *LOCALE_VARIABLES}

    # The orchestrator: a secret in its environment and in the tmux server's (a pane's
    # ssh inherits that one), and an ssh config of its own that sends everything.
    tmux_server.run("set-environment", "-g", "AWS_SECRET_ACCESS_KEY", SECRET)
    own = tmp_path / "ssh_config"
    own.write_text(f"SendEnv *\nSetEnv SANE_LEAK={SET_SECRET}\nHost *\n    SendEnv AWS_*\n")
    env = dict(
        cli_env,
        AWS_SECRET_ACCESS_KEY=SECRET,
        SANE_TEST_TOKEN=SECRET,
        LC_MESSAGES=SECRET,  # not a locale name: not sent either
        SANE_SSH_CONFIG=str(own),
    )

    def sane(*argv: str) -> dict[str, Any]:
        code, doc, _ = cli(["sane.cli.main", *argv], env)
        assert code == 0, doc
        return doc

    sane(
        "server", "add", "s1", "--host", srv.host, "--port", str(srv.port), "--user", "root",
        "--identity", str(fleet.client_key),
        "--ssh-option", f"UserKnownHostsFile={fleet.known_hosts}",
    )  # fmt: skip
    sane("server", "test", "s1")
    imported = tmp_path / "imported_config"
    imported.write_text(
        f"Host s2\n    HostName {srv.host}\n    Port {srv.port}\n    User root\n"
        f"    IdentityFile {fleet.client_key}\n    UserKnownHostsFile {fleet.known_hosts}\n"
        f"    SendEnv *\n    SetEnv SANE_LEAK={SET_SECRET}\n"
    )
    doc = sane("server", "import", "--format", "ssh-config", str(imported))
    assert {(s["name"], s["option"]) for s in doc["skipped"] if "option" in s} >= {
        ("s2", "sendenv"),
        ("s2", "setenv"),
    }, doc
    sane("connect", "--all")
    doc = sane("fleet", "run", "--all", "env")
    assert doc["status"] == "completed", doc
    payload = tmp_path / "payload"
    payload.write_text("data\n")
    sane("fleet", "put", "--all", str(payload), "/root/sane-env-payload")
    sane("fleet", "detect", "--all")
    for name in ("s1", "s2"):
        sane("health", "set", "--server", name, "--status", "healthy")
    sane("health")
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        yaml.safe_dump(
            {
                "files": [{"source": "payload", "path": "/root/sane-env-placed"}],
                "steps": [{"name": "one", "run": "env > /dev/null", "undo": "true"}],
            }
        )
    )
    assert sane("deploy", str(plan), "--all")["status"] == "completed"

    sessions = recorded(srv.home)
    # Each path above connected at least once (panes, side channels, probes).
    assert len(sessions) >= 6, sessions
    for session in sessions:
        assert not [k for k, v in session.items() if SECRET in v or SET_SECRET in v], session
        assert set(session) <= allowed, set(session) - allowed
        assert session.get(SANE_SETENV[0]) == SANE_SETENV[1]
        assert "LC_MESSAGES" not in session
    # The locale does cross (a shell in the C locale cannot hold a non-ASCII byte).
    assert any(s.get("LANG") == env.get("LANG") for s in sessions if "LANG" in env)
