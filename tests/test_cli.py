"""The console commands as processes: one JSON document on stdout, documented exit codes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sane.schema import validate
from sane.testing.pytest_plugin import TmuxTestServer

from .conftest import cli

ROOT = Path(__file__).resolve().parent.parent


def test_run_command_prints_one_exact_document(
    cli_env: dict[str, str], tmux_server: TmuxTestServer
) -> None:
    pane = tmux_server.new_pane("dash")
    status, doc, _ = cli(
        ["sane.cli.run_command", "--pane", pane, "printf 'a\\nb'; (exit 3)"], cli_env
    )
    assert status == 0
    validate("run-command", doc)
    assert (doc["status"], doc["exit_code"], doc["output"]) == ("completed", 3, "a\nb")


def test_check_turns_a_failure_into_exit_1(
    cli_env: dict[str, str], tmux_server: TmuxTestServer
) -> None:
    pane = tmux_server.new_pane("bash")
    status, doc, _ = cli(
        ["sane.cli.run_command", "--check", "--pane", pane, "echo no; false"], cli_env
    )
    assert status == 1
    validate("command-failed", doc)
    assert doc["error"]["code"] == "command_failed" and doc["output"] == "no\n"


def test_command_from_stdin(cli_env: dict[str, str], tmux_server: TmuxTestServer) -> None:
    pane = tmux_server.new_pane("bash")
    script = "cat <<'E'\n$HOME `x` 'q'\nE\n"
    status, doc, _ = cli(["sane.cli.run_command", "--pane", pane, "-"], cli_env, stdin=script)
    assert status == 0 and doc["output"] == "$HOME `x` 'q'\n"


def test_default_pane_and_list_panes(cli_env: dict[str, str]) -> None:
    status, doc, _ = cli(["sane.cli.run_command", "echo", "via", "default"], cli_env)
    assert status == 0 and doc["output"] == "via default\n"
    status, listing, _ = cli(["sane.cli.list_panes"], cli_env)
    assert status == 0
    validate("list-panes", listing)
    mine = [p for p in listing["panes"] if p["pane_id"] == doc["pane"]]
    assert len(mine) == 1
    assert (mine[0]["session"], mine[0]["sane_role"], mine[0]["busy"]) == ("sane", "local", False)
    assert (mine[0]["width"], mine[0]["height"]) == (200, 50)


def test_timeout_wait_interrupt_and_busy_across_processes(
    cli_env: dict[str, str], tmux_server: TmuxTestServer
) -> None:
    pane = tmux_server.new_pane("bash")
    status, first, _ = cli(
        ["sane.cli.run_command", "--pane", pane, "--timeout", "0.3", "echo begin; sleep 30"],
        cli_env,
    )
    assert status == 4 and first["status"] == "running" and first["output"] == "begin\n"
    status, busy, _ = cli(["sane.cli.run_command", "--pane", pane, "true"], cli_env)
    assert status == 8
    validate("error", busy)
    assert busy["error"]["code"] == "pane_busy"
    assert busy["error"]["details"]["run_id"] == first["run_id"]
    status, listing, _ = cli(["sane.cli.list_panes", "--all"], cli_env)
    row = next(p for p in listing["panes"] if p["pane_id"] == pane)
    assert (row["busy"], row["run_id"]) == (True, first["run_id"])
    status, waited, _ = cli(
        ["sane.cli.main", "run", "wait", first["run_id"], "--timeout", "0.2"], cli_env
    )
    assert status == 4 and waited["status"] == "running" and waited["output"] == ""
    status, stopped, _ = cli(["sane.cli.main", "run", "interrupt", first["run_id"]], cli_env)
    assert status == 4
    assert (stopped["status"], stopped["exit_code"]) == ("interrupted", 130)
    status, after, _ = cli(["sane.cli.run_command", "--pane", pane, "echo free"], cli_env)
    assert status == 0 and after["output"] == "free\n"


@pytest.mark.parametrize(
    "argv,code,exit_status",
    [
        (["sane.cli.run_command", "--pane", "%999", "true"], "pane_not_found", 3),
        (["sane.cli.run_command", "--timeout", "-1", "true"], "usage_error", 2),
        (["sane.cli.run_command"], "usage_error", 2),
        (["sane.cli.run_command", "--no-such-flag", "true"], "usage_error", 2),
        (["sane.cli.main", "run", "wait", "rdoesnotexist"], "run_not_found", 3),
        (["sane.cli.main", "run", "wait", "../etc"], "invalid_argument", 2),
        (["sane.cli.list_panes", "--session", "nope"], "session_not_found", 3),
    ],
)
def test_errors_are_json_with_their_exit_status(
    cli_env: dict[str, str], argv: list[str], code: str, exit_status: int
) -> None:
    status, doc, stderr = cli(argv, cli_env)
    validate("error", doc)
    assert (doc["error"]["code"], status) == (code, exit_status)
    assert "Traceback" not in stderr


@pytest.mark.tmux
def test_no_tmux_server_running(sane_home: Path) -> None:
    env = dict(os.environ, SANE_TMUX_SOCKET=f"sane-absent-{os.getpid()}", SANE_HOME=str(sane_home))
    status, doc, _ = cli(["sane.cli.run_command", "--pane", "%0", "true"], env)
    assert (doc["error"]["code"], status) == ("tmux_server_not_running", 6)
    # listing is an agent's natural first call: no server yet is no panes, not an error
    status, doc, _ = cli(["sane.cli.list_panes"], env)
    assert (status, doc["panes"]) == (0, [])
    status, doc, _ = cli(["sane.cli.list_panes", "--session", "work"], env)
    assert (doc["error"]["code"], status) == ("session_not_found", 3)


def test_tmux_not_installed(sane_home: Path, tmp_path: Path) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    python = shutil.which("python3")
    assert python is not None
    env = dict(os.environ, PATH=str(bindir), SANE_HOME=str(sane_home))
    status, doc, _ = cli(["sane.cli.run_command", "true"], env)
    assert (doc["error"]["code"], status) == ("tmux_not_installed", 6)


def test_bin_shims_run_from_a_checkout(
    cli_env: dict[str, str], tmux_server: TmuxTestServer
) -> None:
    pane = tmux_server.new_pane("dash")
    proc = subprocess.run(
        [str(ROOT / "bin" / "sane-run-command"), "--pane", pane, "echo shim"],
        env=cli_env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert proc.returncode == 0 and '"output": "shim\\n"' in proc.stdout


@pytest.mark.slow
def test_jq_filters_any_command(cli_env: dict[str, str], tmux_server: TmuxTestServer) -> None:
    pane = tmux_server.new_pane("dash")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "sane.cli.run_command",
            "--pane",
            pane,
            "--jq",
            "[.exit_code, .output]",
            "printf x; (exit 2)",
        ],
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (proc.returncode, proc.stdout) == (0, '[2, "x"]\n')
    proc = subprocess.run(
        [sys.executable, "-m", "sane.cli.main", "list-panes", "--all", "--jq=.panes[].pane_id"],
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert pane in proc.stdout.splitlines()
    status, doc, _ = cli(
        [
            "sane.cli.run_command",
            "--pane",
            pane,
            "--jq",
            ".[",
            "touch /tmp/sane-jq-canary-must-not-exist",
        ],
        cli_env,
    )
    assert (status, doc["error"]["code"]) == (2, "invalid_argument")
    assert not os.path.exists("/tmp/sane-jq-canary-must-not-exist")


@pytest.mark.parametrize(
    "entry",
    [
        ["-m", "sane.cli.main", "run-command"],
        ["-c", "from sane.cli.main import run_command_main; run_command_main()"],
    ],
    ids=["sane run-command", "sane-run-command"],
)
def test_run_command_one_shot_does_not_import_click(
    cli_env: dict[str, str], tmux_server: TmuxTestServer, entry: list[str]
) -> None:
    """The usual line goes through sane.cli.fast, importing none of the cold path's
    heavy modules; --help still reaches click."""
    import re

    pane = tmux_server.new_pane("dash")
    proc = subprocess.run(
        [
            sys.executable,
            "-X",
            "importtime",
            *entry,
            "-t",
            pane,
            "--timeout",
            "20",
            "printf '%s' \"$((6 * 7))\"",
        ],
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0 and '"output": "42"' in proc.stdout, proc.stdout
    imported = set(re.findall(r"\| +([\w.]+)$", proc.stderr, re.M))
    # click, pydantic and sane.models (its TypedDict classes) are the cold path; so is
    # pathlib (with urllib, ipaddress): ~6 ms, once pulled in by the busy flag's home
    heavy = {"click", "pydantic", "sane.models", "pathlib"}
    assert "sane.cli.fast" in imported and not heavy & imported, heavy & imported
    helped = subprocess.run(
        [sys.executable, *entry, "--help"],
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert helped.returncode == 0 and "--quiet-period" in helped.stdout


@pytest.mark.parametrize(
    "argv", [["fleet", "run", "--all", "true"], ["list-panes"]], ids=["fast path", "click path"]
)
def test_a_reader_that_went_away_is_a_quiet_exit_1(
    cli_env: dict[str, str], argv: list[str]
) -> None:
    """`sane ... | head -0`: no traceback on a closed stdout, as with click's own."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "sane.cli.main", *argv],
            env=cli_env,
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        os.close(write_end)
    assert (proc.returncode, proc.stderr) == (1, "")


def _missing_required() -> list[tuple[str, str]]:
    """(command path, how click names its first required parameter) for every row of
    the command table with one: an argument by its metavar, an option by its flag."""
    from sane.cli.table import COMMANDS

    found = []
    for path, entry in COMMANDS.items():
        for param in entry["params"]:
            if param.get("required") and param["kind"] != "words":
                named = param["opts"][0] if param["opts"] else param["name"].upper()
                found.append((path, named))
                break
    return found


@pytest.mark.parametrize(("path", "named"), _missing_required())
def test_a_missing_required_parameter_is_a_usage_error_naming_it(
    sane_home: Path, path: str, named: str
) -> None:
    """`sane deploy status` with no id answered "not a deploy id: None" (exit 2,
    invalid_argument), `sane fleet put` and `sane create-file` an internal error (exit
    70), `sane health set` "no server named None": the table's required parameters
    reached the handlers as None (click 8.3+ takes an explicit default of None as a
    value). Each is click's usage error naming the parameter, before anything runs."""
    env = {**os.environ, "SANE_HOME": str(sane_home), "SANE_TMUX_SOCKET": "sane-never-started"}
    status, doc, _ = cli(["sane.cli.main", *path.split()], env)
    assert (status, doc["error"]["code"]) == (2, "usage_error"), doc
    assert named in doc["error"]["message"] and "Missing" in doc["error"]["message"], doc
