"""Golden: every CLI command's JSON document validates against its schema (issue 15,
"Must hold"). The calls are test_mcp_clients' scenario (every tool's success and error
paths), each spelt as the command line its table row builds and run as a process
through a pipe; a leaf of the CLI tree the scenario never reaches fails the test."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sane import tools
from sane.cli.table import COMMANDS
from sane.schema import validate
from sane.testing.pytest_plugin import TmuxTestServer

from .conftest import sane_json
from .test_mcp_clients import scenario


def argv_of(tool: tools.Tool, arguments: dict[str, Any]) -> list[str] | None:
    """The command line for a tool call, built from the tool's table row; None when the
    call uses what a command line cannot say (an argument only agents have, a wrong
    type or name: those test the MCP input checks)."""
    assert tool.cli is not None
    row = COMMANDS[tool.cli.path]
    params = {p["name"]: p for p in row["params"]}
    options: list[str] = []
    positional: list[str] = []
    for name, value in arguments.items():
        param = params.get(name)
        if param is None:
            return None
        kind, opts = param["kind"], param["opts"]
        if kind in ("names", "csv", "multiple") and not isinstance(value, list):
            return None
        if not opts:
            positional += [str(v) for v in value] if isinstance(value, list) else [str(value)]
        elif kind == "flag":
            options += [opts[0]] if value else []
        elif kind == "csv":
            options += [opts[0], ",".join(value)]
        elif kind == "multiple":
            for item in value:
                options += [opts[0], item]
        elif kind == "pairs":
            for key, item in value.items():
                options += [opts[0], f"{key}={item}"]
        else:
            options += [opts[0], str(value)]
    return [*tool.cli.path.split(), *options, "--", *positional]


def _resolve(value: Any, docs: list[dict[str, Any] | None]) -> Any:
    if isinstance(value, str) and value.startswith("${") and value.endswith("}"):
        index, field = value[2:-1].split(".")
        doc = docs[int(index)]
        assert doc is not None, value
        return doc[field]
    return value


def test_every_cli_command_prints_a_document_its_schema_accepts(
    cli_env: dict[str, str], tmux_server: TmuxTestServer, ssh_fleet: Any, tmp_path: Path
) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        json.dumps({"name": "t", "steps": [{"name": "one", "run": "true", "undo": "true"}]})
    )
    steps = scenario(tmux_server.new_pane("bash"), ssh_fleet, plan, tmp_path / "created")
    names = [s.name for s in ssh_fleet.servers]
    steps.append(({"tool": "connect", "arguments": {"servers": names[:1]}}, "connect"))
    docs: list[dict[str, Any] | None] = []
    reached: set[str] = set()
    for call, expected in steps:
        tool = tools.find(call["tool"])
        arguments = {k: _resolve(v, docs) for k, v in call["arguments"].items()}
        # what the command line never asks (deploy's wait: the CLI waits) goes; an error
        # call that needs it is the agents' case only
        omitted = set(arguments) & set(tool.cli.omit if tool.cli else ())
        arguments = {k: v for k, v in arguments.items() if k not in omitted}
        argv = argv_of(tool, arguments) if tool.cli is not None else None
        if argv is None or (omitted and expected.startswith("error:")):
            docs.append(None)
            continue
        if tool.name == "connect" and len(docs) == len(steps) - 1:
            argv[0] = "up"  # the last call: the other spelling of connect
        _, doc = sane_json(cli_env, *argv)  # one JSON line, no traceback
        where = f"sane {' '.join(argv)}"
        if expected.startswith("error:"):
            assert doc["ok"] is False, (where, doc)
            validate("command-failed" if expected == "error:command_failed" else "error", doc)
        else:
            assert doc["ok"] is True, (where, doc)
            validate(expected, doc)
        reached.add(" ".join(argv[: len(tool.cli_path.split())]))
        docs.append(doc)
    assert set(COMMANDS) - reached == set()


def test_cli_only_commands_print_documents_their_schemas_accept(
    cli_env: dict[str, str], sane_home: Path, ssh_fleet: Any, tmp_path: Path
) -> None:
    """``sane watch --once`` and ``sane demo fleet start|stop`` (no tool: their
    documents are sane.tools.CLI_DOCUMENTS; ``sane demo``'s own is checked by
    test_examples, which runs the story)."""
    from sane.testing.fleet import register

    names = [s.name for s in register(sane_home, ssh_fleet)]
    reached = set()
    for argv in (["watch", "--once", "--no-health"], ["watch", "--once"]):
        status, doc = sane_json(cli_env, *argv)
        assert status == 0 and doc["ok"], doc
        validate("watch", doc)
        assert [row["server"] for row in doc["servers"]] == names
        reached.add("watch")
    fleet = tmp_path / "demo-fleet"
    for argv in (
        ["demo", "fleet", "start", "--dir", str(fleet), "--servers", "1", "--prefix", "d"],
        ["demo", "fleet", "stop", "--dir", str(fleet)],
    ):
        status, doc = sane_json(cli_env, *argv)
        assert status == 0 and doc["ok"], doc
        path = " ".join(argv[:3])
        validate(tools.CLI_DOCUMENTS[path], doc)
        reached.add(path)
    assert reached == set(tools.CLI_DOCUMENTS) - {"demo"}
