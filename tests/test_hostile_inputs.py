"""Inputs a careless or hostile caller hands sane (issue #16, Low items): NUL bytes,
binary output, odd pane names and directories, plans that name files outside their
directory, and paths that are not regular files (``/dev/zero``, FIFOs, huge files).
Each case failed on the code before this file: silently, with ``internal_error``, or by
hanging."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from sane import bounded, errors, tools
from sane.deploy.api import dry_run
from sane.deploy.plan import load_plan
from sane.fleet.importers import from_ansible_inventory
from sane.ops.context import Context
from sane.ops.list_panes import list_panes
from sane.ops.run.command import run_command
from sane.testing.pytest_plugin import TmuxTestServer, run_process

NUL_COMMAND = "echo before\x00; touch /tmp/never"


# -- NUL bytes ---------------------------------------------------------------------------


def test_nul_in_a_command_is_refused_naming_the_field(sane_ctx: Context) -> None:
    with pytest.raises(errors.InvalidArgument) as caught:
        run_command(sane_ctx, NUL_COMMAND)
    assert caught.value.details["field"] == "command"
    assert caught.value.details["offset"] == NUL_COMMAND.index("\0")


def test_nul_through_the_cli_and_the_tools_is_invalid_argument(
    cli_env: dict[str, str], sane_ctx: Context, tmp_path: Path
) -> None:
    proc = run_process(
        [sys.executable, "-m", "sane.cli.main", "run-command", "-"], cli_env, stdin=NUL_COMMAND
    )
    doc = json.loads(proc.stdout)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert doc["error"]["code"] == "invalid_argument"
    assert doc["error"]["details"]["field"] == "command"
    cases: list[tuple[str, dict[str, Any], str]] = [
        ("run_command", {"command": NUL_COMMAND}, "command"),
        ("fleet_run", {"command": NUL_COMMAND, "servers": ["x"]}, "command"),
        ("run_input", {"run_id": "r1", "text": "y\x00"}, "text"),
        ("send_keys", {"text": "a\x00b"}, "text"),
        ("create_file", {"path": "/tmp/a\x00b", "content": "x"}, "path"),
        ("deploy_plan_check", {"plan": "p.yaml", "all": True, "env": {"A": "\x00"}}, "env"),
    ]
    for name, arguments, field in cases:
        outcome = tools.call(sane_ctx, name, arguments)
        error = outcome.document["error"]
        assert (error["code"], error["details"].get("field")) == ("invalid_argument", field), (
            name,
            error,
        )
    # File content is data, not a command: NUL bytes are its business.
    tools.validated(tools.find("create_file").input, {"path": "/tmp/f", "content": "a\x00b"})


def test_nul_in_a_plan_step_is_a_plan_error_naming_the_step(tmp_path: Path) -> None:
    plan = tmp_path / "plan.json"
    plan.write_text(
        json.dumps(
            {
                "steps": [
                    {"name": "a", "run": "true", "undo": "true"},
                    {"name": "b", "run": "rm -rf /x\x00y", "undo": "true"},
                ]
            }
        )
    )
    with pytest.raises(errors.PlanInvalid) as caught:
        load_plan(str(plan))
    assert caught.value.details["field"] == "steps.1.run"


# -- binary output -----------------------------------------------------------------------


def test_binary_output_is_kept_exactly_without_keep_ansi(sane_ctx: Context, tmp_path: Path) -> None:
    # Every byte value, escape-looking runs among them (a colour, a title, an invalid
    # UTF-8 byte): in binary data these are bytes of the file, not terminal styling.
    data = (
        bytes(range(256))
        + b"\x1b[31mred\x1b[0m \x1b]0;title\x07 \xff\xfe\r\n"
        + bytes(range(255, -1, -1))
    )
    path = tmp_path / "blob.bin"
    path.write_bytes(data)
    result = run_command(sane_ctx, f"cat {path}")
    assert result["status"] == "completed" and result["exit_code"] == 0
    assert result["output_base64"] is not None
    assert base64.b64decode(result["output_base64"]) == data
    assert result["output_bytes"] == len(data)
    # Text keeps its own rule: colour is removed unless asked for.
    text = run_command(sane_ctx, "printf '\\033[31mred\\033[0m\\n'")
    assert (text["output"], text["output_base64"]) == ("red\n", None)


# -- names and directories that are not tidy ---------------------------------------------


def test_list_panes_and_runs_with_tabs_and_newlines_in_cwd_and_names(
    tmux_server: TmuxTestServer, sane_ctx: Context, tmp_path: Path
) -> None:
    odd = tmp_path / "a\tb\nc %end 1 2 3"
    odd.mkdir()
    pane = tmux_server.new_pane()
    tmux_server.run("rename-window", "-t", pane, "win\tdow\nname")
    # The local pane of sane's own session sits in that directory too: every run of the
    # session lists its panes (a newline there split the listing wrongly).
    run_command(sane_ctx, f"cd {_sh(str(odd))}")
    with Context(tmux_server.server, home=sane_ctx.home) as fresh:  # finds its pane anew
        assert run_command(fresh, "pwd")["output"] == f"{odd}\n"
    run_command(sane_ctx, f"cd {_sh(str(odd))}", pane=pane)
    listed = list_panes(sane_ctx, all_sessions=True)["panes"]
    by_id = {p["pane_id"]: p for p in listed}
    assert by_id[pane]["cwd"] == str(odd)
    assert by_id[pane]["window_name"].startswith("win")
    again = run_command(sane_ctx, "echo still fine", pane=pane)
    assert again["output"] == "still fine\n"


# -- plans: their own files only -------------------------------------------------------


def _plan(directory: Path, source: str) -> str:
    path = directory / "plan.yaml"
    path.write_text(
        yaml.safe_dump({"name": "t", "files": [{"source": source, "path": "/tmp/placed"}]})
    )
    return str(path)


def test_plan_sources_stay_in_the_plans_directory(tmp_path: Path) -> None:
    plan_dir = tmp_path / "plan"
    plan_dir.mkdir()
    (plan_dir / "app.sh").write_text("echo app\n")
    secret = tmp_path / "secret"
    secret.write_text("the orchestrator's secret\n")
    (plan_dir / "link").symlink_to(secret)
    assert load_plan(_plan(plan_dir, "app.sh"))[1] == [b"echo app\n"]
    for source in ("../secret", str(secret), "link", "/etc/passwd"):
        with pytest.raises(errors.PlanInvalid) as caught:
            load_plan(_plan(plan_dir, source))
        assert caught.value.details["field"] == "files.0.source", source
        assert caught.value.details["reason"] == "outside", source
        assert "--allow-outside-sources" in caught.value.message
    plan = _plan(plan_dir, "../secret")
    assert dry_run(plan, [], allow_outside_sources=True)["files"][0]["bytes"] == 26


def test_a_plan_reached_through_a_symlink_places_the_files_beside_it(tmp_path: Path) -> None:
    """examples/deploy/plan.yaml and app.sh are symlinks into sane/demo/app: the files
    beside the real plan are its own; anything beyond both directories is not."""
    real = tmp_path / "real"
    real.mkdir()
    (real / "app.sh").write_text("echo app\n")
    plan = Path(_plan(real, "app.sh"))
    shown = tmp_path / "shown"
    shown.mkdir()
    (shown / "plan.yaml").symlink_to(plan)
    (shown / "app.sh").symlink_to(real / "app.sh")
    assert load_plan(str(shown / "plan.yaml"))[1] == [b"echo app\n"]
    (tmp_path / "secret").write_text("the orchestrator's secret\n")
    (shown / "leak").symlink_to(tmp_path / "secret")
    plan.write_text(
        yaml.safe_dump({"name": "t", "files": [{"source": "leak", "path": "/tmp/placed"}]})
    )
    with pytest.raises(errors.PlanInvalid) as caught:
        load_plan(str(shown / "plan.yaml"))
    assert caught.value.details["reason"] == "outside"


def test_allow_outside_sources_on_the_cli_and_the_tool(
    cli_env: dict[str, str], sane_ctx: Context, tmp_path: Path
) -> None:
    from sane.fleet.registry import Registry, Server

    Registry(sane_ctx.home).add(Server(name="s1", host="127.0.0.1"))
    (tmp_path / "secret").write_text("x")
    plan_dir = tmp_path / "plan"
    plan_dir.mkdir()
    plan = _plan(plan_dir, "../secret")
    argv = [sys.executable, "-m", "sane.cli.main", "deploy", plan, "--all", "--dry-run"]
    refused = run_process(argv, cli_env)
    assert refused.returncode == 2 and json.loads(refused.stdout)["error"]["code"] == "plan_invalid"
    allowed = run_process([*argv, "--allow-outside-sources"], cli_env)
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    arguments: dict[str, Any] = {"plan": plan, "all": True}
    assert tools.call(sane_ctx, "deploy_plan_check", arguments).document["ok"] is False
    arguments["allow_outside_sources"] = True
    assert tools.call(sane_ctx, "deploy_plan_check", arguments).document["ok"] is True


# -- paths that are not regular files ------------------------------------------------------


def test_dev_zero_fifos_and_huge_files_are_refused_at_once(
    sane_ctx: Context, tmp_path: Path
) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    huge = tmp_path / "huge"
    with open(huge, "wb") as fh:  # sparse: no disk used
        fh.truncate(bounded.FILE_MAX + 1)
    plan_dir = tmp_path / "plan"
    plan_dir.mkdir()
    (plan_dir / "fifo").symlink_to(fifo)
    (plan_dir / "huge").symlink_to(huge)
    (plan_dir / "zero").symlink_to("/dev/zero")
    started = time.monotonic()
    cases = [
        ("/dev/zero", "plan", "not_regular"),
        (str(fifo), "plan", "not_regular"),
        (_plan(plan_dir, "zero"), "files.0.source", "not_regular"),
    ]
    for plan, field, reason in cases:
        with pytest.raises(errors.PlanInvalid) as caught:
            load_plan(plan, allow_outside_sources=True)
        assert (caught.value.details["field"], caught.value.details["reason"]) == (field, reason), (
            caught.value.message
        )
    for name, reason in (("fifo", "not_regular"), ("huge", "too_large")):
        with pytest.raises(errors.PlanInvalid) as caught:
            load_plan(_plan(plan_dir, name), allow_outside_sources=True)
        assert caught.value.details["reason"] == reason
    # The MCP deploy tool was handed /dev/zero as its plan: it grew past 1.2 GB.
    from sane.fleet.registry import Registry, Server

    Registry(sane_ctx.home).add(Server(name="s1", host="127.0.0.1"))
    outcome = tools.call(sane_ctx, "deploy_plan_check", {"plan": "/dev/zero", "all": True})
    assert outcome.document["error"]["code"] == "plan_invalid"
    assert time.monotonic() - started < 10  # nothing waited for a FIFO's writer
    with open("/dev/zero", "rb") as zero, pytest.raises(errors.InvalidArgument) as endless:
        bounded.read_stream(zero, "stdin", limit=1 << 20)
    assert endless.value.details["reason"] == "too_large"


def test_create_file_and_fleet_put_refuse_what_is_not_a_regular_file(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for argv, field in [
        (["create-file", "--from", "/dev/zero", str(tmp_path / "out")], "from"),
        (["create-file", "--from", str(fifo), str(tmp_path / "out")], "from"),
        (["fleet", "put", str(fifo), "/tmp/x", "--all"], "local_file"),
    ]:
        proc = run_process([sys.executable, "-m", "sane.cli.main", *argv], cli_env, timeout=30)
        error = json.loads(proc.stdout)["error"]
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert (error["code"], error["details"]["field"], error["details"]["reason"]) == (
            "invalid_argument",
            field,
            "not_regular",
        )
    assert not (tmp_path / "out").exists()


# -- documents: deep nesting, alias bombs --------------------------------------------------

ALIAS_BOMB = (
    "\n".join(
        ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
        + [
            f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
            f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
            f"*{chr(97 + i)}, *{chr(97 + i)}]"
            for i in range(8)
        ]
    )
    + "\n"
)


def test_alias_bombs_and_deep_nesting_are_refused(tmp_path: Path) -> None:
    assert len(ALIAS_BOMB) < 2000
    plan = tmp_path / "bomb.yaml"
    plan.write_text(ALIAS_BOMB + "steps: [{name: a, run: 'true', undo: 'true', after: *i}]\n")
    started = time.monotonic()
    with pytest.raises(errors.PlanInvalid) as caught:
        load_plan(str(plan))
    assert caught.value.details["reason"] == "too_many_nodes"
    deep = tmp_path / "deep.json"
    deep.write_text('{"steps": ' + "[" * 5000 + "]" * 5000 + "}")
    with pytest.raises(errors.PlanInvalid) as caught:
        load_plan(str(deep))
    assert caught.value.details["reason"] == "too_deep"
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(
        "all:\n  vars:\n"
        + "".join(f"    {line}\n" for line in ALIAS_BOMB.splitlines())
        + "  hosts: {h1: {}}\n"
    )
    with pytest.raises(errors.ConfigInvalid):
        from_ansible_inventory(str(inventory))
    assert time.monotonic() - started < 10


def test_hostile_ansible_yaml_is_config_invalid_not_a_crash(tmp_path: Path) -> None:
    inventory = tmp_path / "inventory.yml"
    for text in (
        "all:\n  hosts: [a, b]\n",
        "all:\n  vars: [1]\n  hosts: {a: {}}\n",
        "all:\n  hosts:\n    a: [1, 2]\n",
        "all:\n  children: 3\n",
    ):
        inventory.write_text(text)
        with contextlib.suppress(errors.ConfigInvalid):  # refused, or skipped: no crash
            from_ansible_inventory(str(inventory))


def _sh(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def test_cli_import_of_a_fifo_is_refused(cli_env: dict[str, str], tmp_path: Path) -> None:
    fifo = tmp_path / "inventory"
    os.mkfifo(fifo)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "sane.cli.main",
            "server",
            "import",
            str(fifo),
            "--format",
            "ansible",
        ],
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    error = json.loads(proc.stdout)["error"]  # refused at once (before: read, and hung)
    assert error["code"] in ("invalid_argument", "config_invalid"), proc.stdout + proc.stderr
    assert (
        error["details"].get("field") == "source" or error["details"].get("reason") == "not_regular"
    ), error
