"""The command table: every command, once, with its input, its result and the handler
that does it; everything else is generated from it.

A row is a :class:`Tool`: the name an agent calls, the input model (:mod:`sane.inputs`:
fields, types, defaults, limits, help), the result document (``sane.schema.DOCUMENTS``),
the handler (:mod:`sane.handlers`, which also picks the exit status) and how a command
line spells it (:class:`sane.cli.spec.Cli`). From this table come the MCP tools of
``sane mcp`` and ``sane call`` (input and output schemas), the checked-in ``schemas/``
and tool definitions (``sane schema``), and the CLI: ``sane.cli.table`` is generated
from it (``python -m sane.schema_files``), and the click commands and the fast front
door are built from that. ``tests/test_schemas.py`` fails on any drift.

Adding a command is one row here, an input model, a result document and a handler.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel

from sane import errors, inputs
from sane.cli.spec import DRY_RUN, FROM, SOCKET, STREAM, Cli
from sane.envelope import error_document
from sane.fleet.defaults import PUT_TIMEOUT as FLEET_PUT_TIMEOUT
from sane.handlers import (
    HANDLERS,
    Call,
    Handler,
    Outcome,
    run_owner,
    strict_arguments,
    validated,
)
from sane.ops.context import Context
from sane.ops.create_file import TIMEOUT as CREATE_FILE_TIMEOUT

__all__ = [
    "TOOLS",
    "Call",
    "Outcome",
    "Tool",
    "call",
    "definitions",
    "find",
    "run_owner",
    "select",
    "validated",
]

ToolFormat = Literal["openai", "anthropic", "mcp"]
FORMATS: tuple[ToolFormat, ...] = ("openai", "anthropic", "mcp")
Pool = Literal["quick", "waiting", "stopping"]

# The CLI keeps the whole output of a run for a person or a script (an agent's default
# is sane.inputs.AGENT_MAX_OUTPUT, what fits a model's context).
CLI_MAX_OUTPUT = 1 << 20


@dataclass(frozen=True)
class Tool:
    name: str
    """The tool name (snake_case); ``sane schema`` also takes the CLI spelling."""
    input: type[BaseModel]
    output: str
    """Key of the success document in ``sane.schema.DOCUMENTS``."""
    cli: Cli | None
    """How the command line spells it; None: agents only."""
    read_only: bool = False
    pool: Pool = "waiting"
    """Which of ``sane mcp``'s worker pools serves it. ``quick``: answers from this
    machine's tmux and files alone, never waiting on a command or a server, so a
    ``list_panes`` never queues behind calls that wait (runs, connects, deploys).
    ``stopping``: waits only for the run it stops (``run_interrupt``, up to its
    ``grace``, which has no upper bound): a pool of its own, so it never queues behind
    the waiting calls it is there to end, nor holds the quick pool while it waits.
    ``waiting``: everything else (a command, a server, a deploy), timeout or not."""

    @property
    def quick(self) -> bool:
        return self.pool == "quick"

    @property
    def description(self) -> str:
        return " ".join((self.input.__doc__ or self.name).split())

    @property
    def handler(self) -> Handler:
        return HANDLERS[self.name]

    @property
    def cli_path(self) -> str:
        return self.cli.path if self.cli else ""


TARGET = {"server": "-s", "pane": "-t"}

TOOLS: tuple[Tool, ...] = (
    Tool(
        "run_command",
        inputs.RunCommandInput,
        "run-command",
        Cli(
            "run-command",
            arguments=("command",),
            words=("command",),
            short=TARGET,
            defaults={"max_output": CLI_MAX_OUTPUT},
            omit=("on_cancel",),
            note="COMMAND words are joined with spaces; a single `-` reads it from stdin.",
        ),
    ),
    Tool("run_wait", inputs.RunWaitInput, "run-command", Cli("run wait", arguments=("run_id",))),
    Tool(
        "run_interrupt",
        inputs.RunInterruptInput,
        "run-command",
        Cli("run interrupt", arguments=("run_id",)),
        pool="stopping",
    ),
    Tool(
        "run_input",
        inputs.RunInputInput,
        "run-command",
        Cli(
            "run input",
            arguments=("run_id", "text"),
            stdin=("text",),
            note="TEXT `-` reads it from stdin (one trailing newline dropped), so a password "
            "never appears in argv. A TEXT starting with `-` goes after `--`: "
            "`sane run input RUN_ID -- -y`.",
        ),
    ),
    Tool(
        "create_file",
        inputs.CreateFileInput,
        "create-file",
        Cli(
            "create-file",
            arguments=("path",),
            short=TARGET,
            omit=("content_base64",),
            defaults={"timeout": CREATE_FILE_TIMEOUT},
            extra=(FROM, SOCKET),
            note="Content comes from --content, --from FILE, or stdin.",
        ),
    ),
    Tool(
        "detect_platform",
        inputs.DetectPlatformInput,
        "detect-platform",
        Cli("detect-platform", short=TARGET),
        read_only=True,
    ),
    Tool(
        "list_panes",
        inputs.ListPanesInput,
        "list-panes",
        Cli("list-panes", short={"session": "-s", "all": "-a"}),
        read_only=True,
        pool="quick",
    ),
    Tool(
        "server_list",
        inputs.ServerListInput,
        "server-list",
        Cli("server list"),
        read_only=True,
        pool="quick",
    ),
    Tool(
        "server_add",
        inputs.ServerAddInput,
        "server-add",
        Cli(
            "server add",
            arguments=("name",),
            extra=(),
            spelling={"tags": "--tag", "ssh_options": "--ssh-option"},
        ),
        pool="quick",
    ),
    Tool(
        "server_test",
        inputs.ServerTestInput,
        "server-test",
        Cli("server test", arguments=("name",), extra=()),
        read_only=True,
    ),
    Tool(
        "server_show",
        inputs.ServerShowInput,
        "server-show",
        Cli("server show", arguments=("name",), extra=()),
        read_only=True,
        pool="quick",
    ),
    Tool(
        "server_pane",
        inputs.ServerPaneInput,
        "server-pane",
        Cli("server pane", arguments=("name",)),
    ),
    Tool(
        "server_remove",
        inputs.ServerRemoveInput,
        "server-remove",
        Cli("server remove", arguments=("name",), extra=()),
        pool="quick",
    ),
    Tool(
        "server_import",
        inputs.ServerImportInput,
        "server-import",
        Cli("server import", arguments=("source",), extra=()),
        pool="quick",
    ),
    Tool(
        "connect",
        inputs.ConnectInput,
        "connect",
        Cli("connect", arguments=("servers",), words=("servers",), aliases=("up",)),
    ),
    Tool("down", inputs.DownInput, "down", Cli("down", arguments=("servers",), words=("servers",))),
    Tool(
        "fleet_run",
        inputs.FleetRunInput,
        "fleet-run",
        Cli(
            "fleet run",
            arguments=("command",),
            words=("command",),
            defaults={"max_output": 0, "max_output_per_server": 0},
            omit=("on_cancel",),
            extra=(STREAM, SOCKET),
        ),
    ),
    Tool(
        "fleet_put",
        inputs.FleetPutInput,
        "fleet-put",
        Cli(
            "fleet put",
            arguments=("local_file", "remote_path"),
            defaults={"timeout": FLEET_PUT_TIMEOUT},
        ),
    ),
    Tool(
        "fleet_detect", inputs.FleetDetectInput, "fleet-detect", Cli("fleet detect"), read_only=True
    ),
    Tool("health", inputs.HealthInput, "health", Cli("health", extra=()), read_only=True),
    Tool(
        "health_wait",
        inputs.HealthWaitInput,
        "health-wait",
        Cli("health wait", flags={"mode": {"all": "--all", "any": "--any"}}, extra=(STREAM,)),
        read_only=True,
    ),
    Tool(
        "health_set",
        inputs.HealthSetInput,
        "health-set",
        Cli("health set", extra=(), spelling={"fields": "--field", "json_fields": "--json-field"}),
    ),
    Tool(
        "deploy",
        inputs.DeployInput,
        "deploy",
        Cli(
            "deploy run",
            arguments=("plan",),
            omit=("wait",),
            fixed={"wait": True},
            extra=(DRY_RUN, STREAM, SOCKET),
        ),
    ),
    Tool(
        "deploy_status",
        inputs.DeployStatusInput,
        "deploy",
        Cli("deploy status", arguments=("deploy_id",), extra=()),
        read_only=True,
        pool="quick",
    ),
    Tool(
        "deploy_list",
        inputs.DeployListInput,
        "deploy-list",
        Cli("deploy list", extra=()),
        read_only=True,
        pool="quick",
    ),
    Tool(
        "deploy_resume",
        inputs.DeployResumeInput,
        "deploy",
        Cli(
            "deploy resume",
            arguments=("deploy_id",),
            omit=("wait",),
            fixed={"wait": True},
            extra=(STREAM, SOCKET),
        ),
    ),
    Tool(
        "deploy_rollback",
        inputs.DeployRollbackInput,
        "deploy",
        Cli(
            "deploy rollback",
            arguments=("deploy_id",),
            omit=("wait",),
            fixed={"wait": True},
            extra=(STREAM, SOCKET),
        ),
    ),
    # `sane deploy run --dry-run` (DRY_RUN): the same arguments as deploy.
    Tool("deploy_plan_check", inputs.DeployPlanCheckInput, "deploy-dry-run", None, read_only=True),
    Tool(
        "read_screen",
        inputs.ReadScreenInput,
        "read-screen",
        Cli("read-screen", short=TARGET),
        read_only=True,
        pool="quick",
    ),
    Tool(
        "send_keys",
        inputs.SendKeysInput,
        "send-keys",
        Cli("send-keys", short=TARGET, spelling={"keys": "--key"}),
        pool="quick",
    ),
    Tool(
        "wait_for_text",
        inputs.WaitForTextInput,
        "wait-for-text",
        Cli("wait-for-text", arguments=("pattern",), short=TARGET),
        read_only=True,
    ),
)
BY_NAME = {tool.name: tool for tool in TOOLS}

# CLI commands that print a JSON document but are no tool (a live view, a throw-away
# fleet for examples, the demo): their documents, by command path, so ``sane schema``
# and schemas/ describe them too.
CLI_DOCUMENTS: dict[str, str] = {
    "watch": "watch",
    "demo": "demo",
    "demo fleet start": "demo-fleet-start",
    "demo fleet stop": "demo-fleet-stop",
}


def cli_document(name: str) -> str | None:
    """The document key of a CLI-only command (``watch``, ``demo fleet start``, or
    ``demo-fleet-start``), else None."""
    key = " ".join(name.replace("-", " ").replace("_", " ").split())
    return CLI_DOCUMENTS.get(key.removeprefix("sane "))


def select(only: str | None, exclude: str | None) -> tuple[Tool, ...]:
    """The tools ``sane mcp --tools ONLY --exclude EXCLUDE`` serves: comma-separated
    names (or CLI spellings); ``read-only`` stands for every read-only tool."""

    def names(spec: str, option: str) -> set[str]:
        picked: set[str] = set()
        for word in (w.strip() for w in spec.split(",")):
            if word == "read-only":
                picked |= {t.name for t in TOOLS if t.read_only}
            elif word:
                try:
                    picked.add(find(word).name)
                except errors.InvalidArgument:
                    raise errors.InvalidArgument(
                        f"{option}: no tool {word!r}; the tools: {', '.join(BY_NAME)} "
                        "(or read-only: every tool that changes nothing)",
                        option=option,
                        tool=word,
                    ) from None
        return picked

    chosen = names(only, "--tools") if only is not None else {t.name for t in TOOLS}
    chosen -= names(exclude, "--exclude") if exclude is not None else set()
    if not chosen:
        raise errors.UsageError("no tools left to serve (--tools/--exclude)")
    return tuple(t for t in TOOLS if t.name in chosen)


def find(name: str) -> Tool:
    """A tool by its name or its CLI spelling (``run-command``, ``fleet run``)."""
    key = name.strip().replace("-", "_").replace(" ", "_")
    if key.startswith("sane_"):
        key = key[5:]
    try:
        return BY_NAME[key]
    except KeyError:
        raise errors.InvalidArgument(
            f"no command {name!r}; one of: {', '.join(BY_NAME)}", command=name
        ) from None


# -- errors as an agent reads them -----------------------------------------------------------


def _tool_words(text: str) -> str:
    """``text`` with the CLI's command spellings (`sane run wait`) as tool names."""
    if "sane " not in text:
        return text
    for tool in sorted((t for t in TOOLS if t.cli), key=lambda t: -len(t.cli_path)):
        text = text.replace(f"`sane {tool.cli_path}`", tool.name)
        text = text.replace(f"sane {tool.cli_path}", tool.name)
    return text


_OPTION = re.compile(r"(?<![\w-])--([a-z][a-z0-9]*(?:-[a-z0-9]+)*)\b(?!-)")


def _agent_hint(hint: str) -> str:
    """A hint (sane's own advice, never a person's text) as an agent reads it: tool
    names for commands, and an option of the command line (``--max-parallel``) as the
    tool argument it stands for (`max_parallel`)."""
    fields = _argument_names()

    def argument(match: re.Match[str]) -> str:
        name = match.group(1).replace("-", "_")
        return f"`{name}`" if name in fields else match.group(0)

    return _OPTION.sub(argument, _tool_words(hint))


@functools.cache
def _argument_names() -> frozenset[str]:
    return frozenset(name for tool in TOOLS for name in tool.input.model_fields)


def _error_for_agents(error: dict[str, Any]) -> None:
    """A per-server error inside a result (a fleet's, a connect's), in place."""
    message, details = error.get("message"), error.get("details")
    if isinstance(message, str):
        error["message"] = _tool_words(message)
    if isinstance(details, dict) and isinstance(details.get("hint"), str):
        details["hint"] = _agent_hint(details["hint"])


def _result_for_agents(document: Mapping[str, Any]) -> None:
    for key in ("results", "servers"):
        items = document.get(key)
        if isinstance(items, list):
            for item in items:
                error = item.get("error") if isinstance(item, dict) else None
                if isinstance(error, dict):
                    _error_for_agents(error)


def _for_agents(ctx: Context, err: errors.SaneError) -> errors.SaneError:
    """``err`` as an agent should read it: tool names where the library names CLI
    commands (and argument names in its hint), and for a busy pane who holds it and
    which tool to call."""
    message = _tool_words(err.message)
    if isinstance(err.details.get("hint"), str):
        err.details["hint"] = _agent_hint(err.details["hint"])
    run_id = err.details.get("run_id")
    if isinstance(err, errors.PaneBusy) and isinstance(run_id, str):
        pane = err.details.get("pane")
        owner = run_owner(ctx, run_id)
        if owner is not None:
            err.details["owner"] = owner
            message = (
                f"pane {pane} is running step {owner.get('step')} of deploy "
                f"{owner.get('deploy_id')} on server {owner.get('server')} (run "
                f"{run_id}): follow the deploy with deploy_status (deploy_id "
                f"{owner.get('deploy_id')}); do not interrupt it, the deploy would "
                "roll back"
            )
        else:
            message = (
                f"pane {pane} is running another command (run {run_id}): wait for "
                f"it with run_wait or stop it with run_interrupt (run_id {run_id}), "
                "or use another pane"
            )
    err.message = message
    return err


# -- validation and calls ------------------------------------------------------------------


def call(
    ctx: Context, name: str, arguments: Mapping[str, Any] | None, control: Call | None = None
) -> Outcome:
    """Call tool ``name``; every failure becomes the CLI's error document, never a raise.

    ``control``: lets another thread cancel the call while it runs (see :class:`Call`)."""
    try:
        tool = find(name)
        parsed = validated(tool.input, strict_arguments(tool.input, arguments or {}))
        outcome = tool.handler(ctx, parsed, control or Call())
        _result_for_agents(outcome.document)
        return outcome
    except errors.SaneError as err:
        return Outcome(error_document(_for_agents(ctx, err)), err.exit_status)
    except errors.Detached as exc:  # the server is stopping: nobody reads this any more
        gone = errors.Cancelled(f"{exc}; what the call started goes on in its pane")
        return Outcome(error_document(gone), gone.exit_status)
    except Exception as exc:  # a bug: still the JSON contract, and the server lives on
        bug = errors.InternalError(f"internal error: {type(exc).__name__}: {exc}")
        return Outcome(error_document(bug), bug.exit_status)


# -- schemas and tool definitions ----------------------------------------------------------


def compact(node: Any) -> Any:
    """pydantic's schema, smaller and quicker to check: no ``title`` (the field names
    say it), and ``anyOf: [{type: X}, {type: null}]`` as ``type: [X, "null"]``.

    Why: the definitions are read by models (every byte is context) and every MCP
    result is validated by the client against the output schema (a run document took
    0.47 ms to check with pydantic's form, 0.26 ms with this one)."""
    if isinstance(node, list):
        return [compact(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {
        key: compact(value)
        for key, value in node.items()
        if not (key == "title" and isinstance(value, str))
    }
    any_of = out.get("anyOf")
    if isinstance(any_of, list) and all(
        isinstance(o, dict) and set(o) == {"type"} and isinstance(o["type"], str) for o in any_of
    ):
        del out["anyOf"]
        out["type"] = [o["type"] for o in any_of]
    return out


def input_schema(tool: Tool) -> dict[str, Any]:
    schema: dict[str, Any] = compact(tool.input.model_json_schema())
    return schema


def error_documents(tool: Tool) -> tuple[str, ...]:
    """The documents ``tool`` answers with instead of its success document: the error
    envelope, and for runs the ``command_failed`` one (``check`` and a non-zero exit)."""
    return ("command-failed", "error") if tool.output == "run-command" else ("error",)


def output_schema(tool: Tool) -> dict[str, Any]:
    """Every document ``tool`` can return, success or error (see ``result_schema``)."""
    from sane.schema import result_schema

    schema: dict[str, Any] = compact(result_schema(tool.output, *error_documents(tool)))
    return schema


def definition(tool: Tool, fmt: ToolFormat, strict: bool = False) -> dict[str, Any]:
    """``tool`` as a function-calling definition for ``fmt``; ``strict``: for OpenAI's
    strict mode (see ``strict_schema``)."""
    if fmt == "openai":
        function: dict[str, Any] = {
            "name": tool.name,
            "description": tool.description,
            "parameters": input_schema(tool),
        }
        if strict:
            function["parameters"] = strict_schema(function["parameters"])
            function["strict"] = True
        return {"type": "function", "function": function}
    if fmt == "anthropic":
        return {
            "name": tool.name,
            "description": tool.description,
            "input_schema": input_schema(tool),
        }
    return {
        "name": tool.name,
        "description": tool.description,
        "inputSchema": input_schema(tool),
        "outputSchema": output_schema(tool),
        "annotations": {"readOnlyHint": tool.read_only},
    }


def definitions(fmt: ToolFormat, strict: bool = False) -> list[dict[str, Any]]:
    return [definition(tool, fmt, strict) for tool in TOOLS]


# -- OpenAI strict mode ----------------------------------------------------------------------

# What strict function calling accepts beside the structure (OpenAI's supported subset);
# the rest (defaults, string lengths) is dropped: sane still checks it on every call.
_STRICT_KEEP = {
    "type",
    "description",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "enum",
    "const",
    "anyOf",
    "pattern",
    "format",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
    "minItems",
    "maxItems",
    "$defs",
    "$ref",
}
PAIRS_NOTE = "As a list of {key, value} pairs."


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    any_of = schema.get("anyOf")
    if isinstance(any_of, list) and {"type": "null"} in any_of:
        return schema
    kind = schema.get("type")
    if isinstance(kind, list):
        return schema if "null" in kind else {**schema, "type": [*kind, "null"]}
    if isinstance(kind, str):
        return {**schema, "type": [kind, "null"]}
    if "enum" in schema:
        return {**schema, "enum": [*schema["enum"], None]}
    return {"anyOf": [schema, {"type": "null"}]}


def _strict_node(node: Any) -> Any:
    if isinstance(node, list):
        return [_strict_node(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {
        k: (
            {name: _strict_node(sub) for name, sub in v.items()}
            if k in ("properties", "$defs")
            else _strict_node(v)
        )
        for k, v in node.items()
        if k in _STRICT_KEEP
    }
    extra = node.get("additionalProperties")
    if isinstance(extra, dict):  # a free-form map: strict mode wants every key named
        value = _strict_node(extra)
        pair = {
            "type": "object",
            "properties": {"key": {"type": "string"}, "value": value},
            "required": ["key", "value"],
            "additionalProperties": False,
        }
        kinds = out.get("type")
        described = " ".join(filter(None, [node.get("description"), PAIRS_NOTE]))
        return {
            "type": ["array", "null"] if isinstance(kinds, list) and "null" in kinds else "array",
            "items": pair,
            "description": described,
        }
    if out.get("type") == "object" or "properties" in out:
        properties = out.get("properties", {})
        required = set(node.get("required", []))
        out["properties"] = {
            name: value if name in required else _nullable(value)
            for name, value in properties.items()
        }
        out["required"] = list(properties)
        out["additionalProperties"] = False
    return out


def strict_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` as OpenAI's strict mode wants it: every object closed with every
    property required, an optional one nullable (null: its default), a free-form map as
    a list of key/value pairs, no defaults. ``arguments`` turns such a call back."""
    out: dict[str, Any] = _strict_node(schema)
    return out
