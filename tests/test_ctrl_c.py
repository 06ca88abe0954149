"""Ctrl-C (issue #16 item 14): SIGINT delivered to sane while it follows a run. The run
is left resumable (its pane stays busy with it), and sane prints one JSON document,
`cancelled` with the run or deploy id, and exits 130. Before: `usage_error` (exit 2)
with no run id, the pane reported not busy while its command went on, and a deploy
said nothing of its id."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from sane.fleet.registry import Registry
from sane.ops.context import Context
from sane.ops.list_panes import list_panes
from sane.ops.run.resume import run_interrupt, run_wait
from sane.poll import poll
from sane.testing.fleet import register
from sane.testing.pytest_plugin import TmuxTestServer

from .test_deploy import write_plan


def _interrupt_when(
    argv: list[str],
    env: dict[str, str],
    started: Path,
    timeout: float = 60,
    program: tuple[str, ...] = ("-m", "sane.cli.main"),
    presses: int = 1,
) -> tuple[int, dict[str, Any]]:
    """Start sane, deliver ``presses`` SIGINTs back to back once ``started`` exists,
    return (exit, document)."""
    proc = subprocess.Popen(
        [sys.executable, *program, *argv],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert poll(started.exists, timeout), "the command never started"
        for press in range(presses):
            if press:  # Python runs one handler for signals that arrive together
                time.sleep(0.02)
            proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert out.strip(), err
    return proc.returncode, json.loads(out)


def _held(started: Path, done: Path) -> str:
    """A command that says it started and then runs until the test lets it finish
    (``done`` with ``.go``), not for a few seconds a loaded machine may spend before
    the Ctrl-C is handled: the hand-over is checked while it surely still runs."""
    go = done.with_suffix(".go")
    return f"touch {started}; until [ -e {go} ]; do sleep 0.05; done; echo finished; touch {done}"


def _assert_handed_over(
    code: int, doc: dict[str, Any], ctx: Context, pane: str, done: Path
) -> None:
    """Exit 130, ``cancelled`` naming the run, the pane still busy with it, and the run
    going on to its end when let go and waited on."""
    assert code == 130, doc
    assert doc["error"]["code"] == "cancelled"
    run_id = doc["error"]["details"]["run_id"]
    assert doc["run_id"] == run_id and doc["status"] == "running"
    assert f"sane run wait {run_id}" in doc["error"]["message"]
    listed = {p["pane_id"]: p for p in list_panes(ctx, all_sessions=True)["panes"]}
    assert (listed[pane]["busy"], listed[pane]["run_id"]) == (True, run_id)
    done.with_suffix(".go").touch()
    rest = run_wait(ctx, run_id, timeout=30)
    assert (rest["status"], rest["exit_code"], rest["output"]) == ("completed", 0, "finished\n")
    assert done.exists()


@pytest.mark.parametrize("presses", [1, 2])
def test_ctrl_c_during_a_run_leaves_it_resumable_and_says_which(
    tmux_server: TmuxTestServer,
    cli_env: dict[str, str],
    sane_ctx: Context,
    tmp_path: Path,
    presses: int,
) -> None:
    """Two presses: the second used to land in the follow loop or the hand-over and
    clear the flag under the running command (or exit naming no run)."""
    pane = tmux_server.new_pane()
    started, done = tmp_path / "started", tmp_path / "done"
    code, doc = _interrupt_when(
        [
            "run-command",
            "--pane",
            pane,
            "--timeout",
            "60",
            _held(started, done),
        ],
        cli_env,
        started,
        presses=presses,
    )
    _assert_handed_over(code, doc, sane_ctx, pane, done)


# A caller that arms no soft stop (the library under `guarded`, as create-file and every
# command but run-command and fleet run are): the Ctrl-C raises inside the follow loop.
_UNARMED = """
import sys
from sane.cli._emit import guarded
from sane.ops.context import Context
from sane.ops.run.command import run_command
from sane.ops.run.options import RunOptions
from sane.tmux.command import TmuxServer

def body() -> None:
    with Context(TmuxServer.from_env(None)) as ctx:
        run_command(ctx, sys.argv[2], pane=sys.argv[1], options=RunOptions(timeout=60))

guarded(body)
"""


def test_ctrl_c_where_no_soft_stop_is_armed_hands_the_run_over(
    tmux_server: TmuxTestServer, cli_env: dict[str, str], sane_ctx: Context, tmp_path: Path
) -> None:
    """A second Ctrl-C, or one in a command that follows a run without a soft stop,
    cleared the run's busy flag while its command went on (the next run typed into
    it), and the report named no run. Now the run is handed over first."""
    pane = tmux_server.new_pane()
    started, done = tmp_path / "started", tmp_path / "done"
    code, doc = _interrupt_when(
        [pane, _held(started, done)],
        cli_env,
        started,
        program=("-c", _UNARMED),
    )
    _assert_handed_over(code, doc, sane_ctx, pane, done)


@pytest.mark.parametrize("presses", [1, 2])
def test_ctrl_c_during_a_fleet_run_names_every_run(
    cli_env: dict[str, str], sane_ctx: Context, ssh_fleet: Any, tmp_path: Path, presses: int
) -> None:
    """Two presses: the second used to end the process while the worker threads were
    handing their runs over, naming none of them."""
    servers = register(sane_ctx.home, ssh_fleet)
    started = tmp_path / "started"
    code, doc = _interrupt_when(
        [
            "fleet",
            "run",
            "--servers",
            ",".join(s.name for s in servers),
            "--timeout",
            "60",
            f"touch {started}; sleep 5",
        ],
        cli_env,
        started,
        presses=presses,
    )
    assert code == 130, doc
    assert doc["error"]["code"] == "cancelled"
    runs = doc["error"]["details"]["runs"]
    assert runs, doc
    for run_id in runs.values():
        assert run_interrupt(sane_ctx, run_id)["status"] == "interrupted"


def test_ctrl_c_during_a_deploy_prints_its_id(
    cli_env: dict[str, str], sane_ctx: Context, ssh_fleet: Any, tmp_path: Path
) -> None:
    servers = register(sane_ctx.home, ssh_fleet)
    started = tmp_path / "started"
    plan = write_plan(
        tmp_path, steps=[{"name": "slow", "run": f"touch {started}; sleep 5", "undo": "true"}]
    )
    code, doc = _interrupt_when(["deploy", plan, "--servers", servers[0].name], cli_env, started)
    assert code == 130, doc
    assert doc["error"]["code"] == "cancelled"
    deploy_id = doc["error"]["details"]["deploy_id"]
    assert deploy_id in doc["error"]["message"] and "sane deploy status" in doc["error"]["message"]
    env = {**cli_env}
    status = subprocess.run(
        [sys.executable, "-m", "sane.cli.main", "deploy", "rollback", deploy_id],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert json.loads(status.stdout)["status"] in ("rolled_back", "completed"), status.stdout


@pytest.mark.parametrize(
    "entry,argv",
    [
        ("sane", ["sane", "list-panes"]),
        ("sane_run_command", ["sane-run-command", "echo never"]),
        ("sane_list_panes", ["sane-list-panes"]),
        ("sane_create_file", ["sane-create-file", "/nonexistent/never", "--content", "x"]),
        ("sane_detect_platform", ["sane-detect-platform"]),
    ],
)
def test_a_ctrl_c_while_sane_loads_is_cancelled_not_a_traceback(
    cli_env: dict[str, str], entry: str, argv: list[str]
) -> None:
    """A Ctrl-C before sane's handler is in place (Python still importing click,
    pydantic...: 0.3 s and more under load) is one JSON document, ``cancelled``, exit
    130, and nothing is done. Before, a traceback ending in KeyboardInterrupt inside
    importlib, exit 1 (sweep17, session 13). The signal is sent right after the console
    script's first module armed, as a press landing during the imports would be."""
    code = (
        "import os, signal, sys\n"
        "import sane.cli.start as start\n"
        "start._arm()\n"
        "os.kill(os.getpid(), signal.SIGINT)\n"
        f"sys.argv = {argv!r}\n"
        f"start.{entry}()\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 130, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["error"]["code"] == "cancelled", doc
    assert "nothing was done" in doc["error"]["message"]


def test_every_console_script_starts_in_sane_cli_start() -> None:
    """Each console command's entry point arms the early Ctrl-C note first."""
    import tomllib

    from sane.cli import start

    root = Path(__file__).resolve().parent.parent
    scripts = tomllib.loads((root / "pyproject.toml").read_text())["project"]["scripts"]
    for name, target in scripts.items():
        module, function = target.split(":")
        assert module == "sane.cli.start", (name, target)
        assert function == name.replace("-", "_") and callable(getattr(start, function))


# A command whose document is out and whose contexts still close (a control client's
# detach, a fleet's hand-over records): the `finally` stands for that closing.
_CLOSING = """
import sys
from pathlib import Path
from sane.cli._emit import emit, guarded
from sane.poll import poll

def body() -> None:
    started = Path(sys.argv[1])
    try:
        emit({"done": True})
    finally:
        started.touch()
        poll(started.with_suffix(".go").exists, 60)

guarded(body)
"""


def _sigint_pending(pid: int) -> bool:
    """SIGINT sent to ``pid`` and not delivered yet (its thread or shared pending set)."""
    status = Path(f"/proc/{pid}/status").read_text()
    masks = [int(line.split()[1], 16) for line in status.splitlines() if "Pnd:" in line]
    return any(mask & (1 << (signal.SIGINT - 1)) for mask in masks)


def test_a_ctrl_c_after_the_document_leaves_its_exit_status(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    """A Ctrl-C once the document is written (sane closing its contexts, or Python
    finalising): the exit status is the document's. Before: the KeyboardInterrupt
    printed a second document, `cancelled`, and the exit was 130 (or, once Python had
    put SIGINT's default back to finalise, death by SIGINT, -2, under `ok: true`)."""
    started = tmp_path / "started"
    proc = subprocess.Popen(
        [sys.executable, "-c", _CLOSING, str(started)],
        env=cli_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert poll(started.exists, 60), "the document never came"
        proc.send_signal(signal.SIGINT)
        assert poll(lambda: not _sigint_pending(proc.pid), 30)
        started.with_suffix(".go").touch()
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert out.splitlines() == ['{"ok": true, "schema_version": 1, "done": true}'], (out, err)
    assert proc.returncode == 0, (out, err)


def test_ctrl_c_of_a_fleet_put_names_the_servers_that_have_the_file(
    cli_env: dict[str, str],
    sane_ctx: Context,
    tmux_server: TmuxTestServer,
    ssh_fleet: Any,
    blackhole: int,
    tmp_path: Path,
) -> None:
    """`sane fleet put --max-parallel 1` to s1, s2, s3 and a server that never answers,
    Ctrl-C'd while it waits on that last one: `cancelled` naming s1, s2 and s3 as
    having the file (before: nothing said which servers had it)."""
    servers = register(sane_ctx.home, ssh_fleet)
    silent = servers[0].model_copy(update={"name": "silent", "port": blackhole})
    Registry(sane_ctx.home).add(silent)
    local = tmp_path / "payload"
    local.write_bytes(b"x" * 1000)
    names = ",".join([*(s.name for s in servers), "silent"])
    argv = ["fleet", "put", str(local), str(tmp_path / "copy"), "--servers", names]
    proc = subprocess.Popen(
        [sys.executable, "-m", "sane.cli.main", *argv, "--max-parallel", "1"],
        env=cli_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    listing = ["list-panes", "-a", "-F", "#{pane_start_command}"]
    try:  # the last server's pane made: with one at a time, the others are done
        assert poll(lambda: str(blackhole) in tmux_server.run(*listing), 120)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    doc = json.loads(out)
    assert (proc.returncode, doc["error"]["code"]) == (130, "cancelled"), (doc, err)
    assert doc["error"]["details"]["written"] == sorted(s.name for s in servers), doc
    assert "the file is already on s1, s2, s3" in doc["error"]["message"], doc
