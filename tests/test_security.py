"""Security checks behind docs/security.md: a planted secret is never stored or logged
(except where documented: the output of a run left running), state file modes, and
the ssh options that could run local code are refused.

The secret is planted in the orchestrator's environment, in a file's content sent
with create-file, in a command's output, and in refused registry options; then the
usual commands run, and $SANE_HOME, the temp directory, tmux's paste buffers and
scrollback, every JSON answer and every stderr are searched for it (and for its
base64 form, since content travels as base64).
"""

from __future__ import annotations

import base64
import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Any

import pytest

from sane.fleet.registry import Server
from sane.fleet.run import fleet_run
from sane.ops.context import Context
from sane.ops.create_file import create_file
from sane.ops.run.command import run_command
from sane.ops.run.options import RunOptions
from sane.ops.run.resume import run_wait
from sane.testing.fleet import register
from sane.testing.pytest_plugin import TmuxTestServer

from .conftest import cli

SECRET = "sane-planted-" + os.urandom(8).hex()
FORMS = [SECRET.encode(), base64.b64encode(SECRET.encode())]


def holders(root: Path) -> list[str]:
    """Files under ``root`` holding the secret in any form."""
    found = []
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            if any(form in data for form in FORMS):
                found.append(str(path.relative_to(root)))
    return sorted(found)


def temp_entries() -> set[str]:
    return set(os.listdir(tempfile.gettempdir()))


def test_planted_secret_is_not_stored_logged_or_sent(
    monkeypatch: pytest.MonkeyPatch,
    cli_env: dict[str, str],
    sane_home: Path,
    sane_ctx: Context,
    tmux_server: TmuxTestServer,
    ssh_fleet: Any,
) -> None:
    env = dict(cli_env, SANE_TEST_TOKEN=SECRET, AWS_SECRET_ACCESS_KEY=SECRET)
    monkeypatch.setenv("SANE_TEST_TOKEN", SECRET)
    register(sane_home, ssh_fleet)
    temps_before = temp_entries()
    answers: list[str] = []

    def sane(*argv: str) -> dict[str, Any]:
        _, doc, stderr = cli(["sane.cli.main", *argv], env)
        answers.extend([repr(doc), stderr])
        return doc

    # 1. The orchestrator's environment never reaches a server (no SendEnv).
    doc = sane("fleet", "run", "--all", "--max-parallel", "3", "env")
    assert doc["status"] == "completed"
    assert all(SECRET not in r["output"] for r in doc["results"])
    # 2. A secret file's content: not echoed into the pane, not left in tmux buffers,
    #    temp files or $SANE_HOME.
    workdir = Path(tempfile.mkdtemp(prefix="sane-sec-"))
    target = workdir / "token"
    pane = tmux_server.new_pane("bash")
    doc = sane("create-file", "--pane", pane, "--mode", "600", "--content", SECRET, str(target))
    assert doc["ok"] and target.read_text() == SECRET
    assert (
        sane("fleet", "put", "--all", str(target), "/root/sane-sec-token")["status"] == "completed"
    )
    assert all((s.home / "sane-sec-token").read_text() == SECRET for s in ssh_fleet.servers)
    scrollback = tmux_server.run("capture-pane", "-p", "-J", "-S", "-", "-t", pane)
    assert not any(form.decode() in scrollback for form in FORMS)
    assert tmux_server.run("list-buffers") == ""
    # 3. Commands that hold and print the secret and finish: returned, not kept.
    run_command(sane_ctx, f"export SANE_TEST_TOKEN={SECRET}", pane=pane)
    out = run_command(sane_ctx, "printf '%s' \"$SANE_TEST_TOKEN\"", pane=pane)
    assert out["output"] == SECRET
    # 4. Refused registry options do not echo the secret in their error.
    for option in (
        f"Password={SECRET}",
        f"ProxyCommand=echo {SECRET}",
        f"PKCS11Provider=/tmp/{SECRET}.so",
    ):
        doc = sane("server", "add", "x", "--host", "h", "--ssh-option", option)
        assert doc["error"]["code"] == "invalid_argument"
    # 5. Nothing stored, logged or left in temp files.
    assert holders(sane_home) == []
    assert not any(form.decode() in text for text in answers for form in FORMS)
    tmp = Path(tempfile.gettempdir())
    leaks = [
        n
        for n in temp_entries() - temps_before
        if n != workdir.name
        and (tmp / n).is_file()
        and any(f in (tmp / n).read_bytes() for f in FORMS)
    ]
    assert leaks == []
    for s in ssh_fleet.servers:
        (s.home / "sane-sec-token").unlink()
    shutil.rmtree(workdir)


def test_a_run_left_running_keeps_its_output_privately(
    sane_ctx: Context, tmux_server: TmuxTestServer
) -> None:
    """Documented exception: a run left running keeps its output under runs/<id> so
    ``run wait`` can return it; the directory is 0700, its files 0600, and so is
    $SANE_HOME when the run record is what creates it (regression: it was 0755)."""
    pane = tmux_server.new_pane("bash")
    first = run_command(
        sane_ctx, 'read x; echo "got $x"', pane=pane, options=RunOptions(timeout=0.2)
    )
    assert first["status"] == "running"
    tmux_server.run("send-keys", "-t", pane, "-l", SECRET)
    tmux_server.run("send-keys", "-t", pane, "Enter")
    final = run_wait(sane_ctx, first["run_id"], timeout=10)
    assert final["status"] == "completed" and f"got {SECRET}" in final["output"]
    # The recorded stream holds it; the record (command, offsets, status) does not.
    assert holders(sane_ctx.home) == [f"runs/{first['run_id']}/stream"]
    assert_private(sane_ctx.home)


def assert_private(home: Path) -> None:
    for path in [home, *home.rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        want = 0o700 if path.is_dir() else 0o600
        assert mode == want, f"{path} is {mode:o}"


def test_state_files_are_private(
    cli_env: dict[str, str], sane_home: Path, sane_ctx: Context, ssh_fleet: Any
) -> None:
    servers = register(sane_home, ssh_fleet)
    fleet_run(sane_ctx, servers, "true")
    from sane.fleet.health import check

    check(sane_home, servers)
    assert sorted(p.name for p in sane_home.iterdir()) == [
        "health-history.json",
        "health-history.json.lock",
        "run",
        "servers.json",
        "servers.json.lock",
        "servers.json.validated",
    ]
    assert_private(sane_home)


@pytest.mark.parametrize(
    "option",
    [
        "PKCS11Provider",
        "SecurityKeyProvider",
        "ProxyCommand",
        "LocalCommand",
        "KnownHostsCommand",
        "Password",
    ],
)
def test_registry_refuses_options_that_run_local_code(option: str) -> None:
    with pytest.raises(ValueError, match="not allowed"):
        Server(name="x", host="h", ssh_options={option: "/tmp/x"})


def test_paths_with_tmux_format_characters_are_not_expanded(
    tmp_path: Path, tmux_server: TmuxTestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """$SANE_HOME and $TMPDIR reach tmux commands that expand formats (pipe-pane's
    command, load-buffer's path): a '#{...}' there was replaced, a '#(...)' run
    (regression: the run's stream went to another file, create-file failed)."""
    canary = f"sane-canary-{os.getpid()}"
    odd = tmp_path / f"a#{{session_name}}#(touch {canary})b"
    odd.mkdir()
    odd.chmod(0o700)
    monkeypatch.setattr(tempfile, "tempdir", str(odd))
    ctx = Context(tmux_server.server, home=odd / "home")
    try:
        pane = tmux_server.new_pane("bash")
        first = run_command(
            ctx, 'read x; echo "got $x"', pane=pane, options=RunOptions(timeout=0.2)
        )
        tmux_server.run("send-keys", "-t", pane, "-l", "it")
        tmux_server.run("send-keys", "-t", pane, "Enter")
        final = run_wait(ctx, first["run_id"], timeout=10)
        assert (final["status"], final["output"]) == ("completed", "it\ngot it\n")
        target = tmp_path / "file"
        create_file(ctx, str(target), b"payload", pane=pane)
        assert target.read_bytes() == b"payload"
        assert not (Path.cwd() / canary).exists()  # where tmux would have run it
    finally:
        ctx.close()


@pytest.mark.parametrize(
    "target",
    [
        "%0; kill-server",
        "%0 ; kill-server",
        "'; kill-server; '",
        "#(touch sane-canary-target)",
        "%0\nkill-server",
    ],
)
def test_hostile_pane_targets_run_no_tmux_command(
    sane_ctx: Context, tmux_server: TmuxTestServer, target: str
) -> None:
    from sane import errors

    # A warm pane first: tmux commands then go through the control-mode client, whose
    # command lines a ';' or a newline could split.
    assert run_command(sane_ctx, "echo warm", pane=tmux_server.new_pane())["output"] == "warm\n"
    with pytest.raises(errors.SaneError) as info:
        run_command(sane_ctx, "true", pane=target)
    assert info.value.code in ("pane_not_found", "tmux_failed"), info.value.to_dict()
    assert "base" in tmux_server.run("list-sessions", "-F", "#{session_name}")
    assert not (Path.cwd() / "sane-canary-target").exists()


@pytest.mark.parametrize("session", ["x#(touch {canary})", "a:b", "a.b", "", "é"])
def test_a_session_name_is_allow_listed_before_tmux_sees_it(
    tmux_server: TmuxTestServer, cli_env: dict[str, str], tmp_path: Path, session: str
) -> None:
    """Issue #16 (Low): tmux format-expands session names, so ``SANE_SESSION`` with
    ``#(cmd)`` ran ``cmd``; ``:`` and ``.`` name a window or pane there."""
    canary = tmp_path / "canary"
    env = {**cli_env, "SANE_SESSION": session.format(canary=canary)}
    status, doc, _ = cli(["sane.cli.main", "run-command", "echo hi"], env)
    if session == "":  # unset in effect: the default session
        assert (status, doc["output"]) == (0, "hi\n"), doc
        return
    assert (status, doc["error"]["code"]) == (2, "invalid_argument"), doc
    assert doc["error"]["details"]["session"] == session.format(canary=canary)
    assert not canary.exists()
    sessions = tmux_server.run("list-sessions", "-F", "#{session_name}").split()
    assert sessions == ["base"], sessions
