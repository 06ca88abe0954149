"""A command line's parameters -> the command's handler -> one JSON document.

Both ways in end here: the click commands built by ``sane.cli.build`` and the fast
front door (``sane.cli.fast``). The handler is the one ``sane mcp`` calls
(:mod:`sane.handlers`), so a command's document, exit status and server selection
cannot differ between the CLI and an agent. No click and no pydantic here: click has
already checked types and ranges (from the same table); what it cannot check (text
length, patterns) is checked here, with the error an agent gets for it.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, NoReturn

from sane import errors

if TYPE_CHECKING:  # spec builds dataclasses: not worth its import on a one-shot call
    from sane.cli.spec import Param


def _pairs(param: Param, pairs: tuple[str, ...]) -> dict[str, str]:
    values: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise errors.InvalidArgument(
                f"{param['opts'][0]} takes KEY=VALUE, not {pair!r}", field=param["name"]
            )
        if key in values:
            raise errors.InvalidArgument(
                f"{param['opts'][0]} {key} is given twice", field=param["name"]
            )
        values[key] = value
    return values


def _checked(param: Param, value: Any) -> Any:
    if not isinstance(value, str):
        return value
    name = param["name"]
    if len(value) < param.get("min_length", 0):
        raise errors.InvalidArgument(f"{name}: must not be empty", field=name)
    pattern = param.get("pattern")
    if pattern is not None and re.search(pattern, value) is None:
        raise errors.InvalidArgument(f"{name}: {value!r} does not match {pattern}", field=name)
    return value


def _value(param: Param, raw: Any) -> Any:
    kind = param["kind"]
    if kind == "words":
        return sys.stdin.read() if tuple(raw) == ("-",) else " ".join(raw)
    if param.get("stdin") and raw == "-":
        text: str = sys.stdin.read()
        return text[:-1] if text.endswith("\n") else text
    if kind == "names":
        return list(raw) or None
    if kind == "csv":
        return None if raw is None else [name for name in raw.split(",") if name]
    if kind == "multiple":
        return list(raw)
    if kind == "pairs":
        return _pairs(param, tuple(raw))
    return raw


def arguments(entry: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    """The handler's arguments (the input model's fields) from a command line's
    parameters: the fields the CLI does not offer get their ``fixed`` value."""
    values = dict(entry["fixed"])
    for param in entry["params"]:
        if not param.get("cli_only"):
            values[param["name"]] = _checked(param, _value(param, params[param["name"]]))
    return values


def _create_file_content(values: dict[str, Any], params: Mapping[str, Any]) -> None:
    """``--content`` is the field; ``--from FILE`` or stdin give the bytes instead."""
    import base64

    if values["content"] is not None and params["from"] is not None:
        raise errors.InvalidArgument("give --content or --from, not both")
    if values["content"] is not None:
        return
    from sane.bounded import read_file, read_stream

    if params["from"] is not None:  # bounded: a regular file (not a FIFO, not /dev/zero)
        data = read_file(params["from"], "from")
    else:
        data = read_stream(sys.stdin.buffer, "stdin")
    values["content_base64"] = base64.b64encode(data).decode("ascii")


def _progress(
    stream: bool, path: str, tool: str
) -> AbstractContextManager[Callable[[dict[str, Any]], None] | None]:
    """``sane.cli._stream.progress``, imported only when someone watches: ``--stream``,
    a person at a terminal, or for a command with per-server events a person watching
    stderr (a one-shot call through a pipe does without it)."""
    from sane.cli._emit import for_person, progress_on_stderr

    on_stderr = tool in _FLEET_EVENTS and progress_on_stderr()
    if not stream and not on_stderr and not for_person():
        return nullcontext(None)
    from sane.cli._stream import progress

    return progress(stream, path if on_stderr else None)


def invoke(path: str, params: Mapping[str, Any]) -> NoReturn:
    """Run command ``path`` (``fleet run``) with its parsed parameters and print its
    document; exits with the command's status."""
    from sane.cli._emit import (
        emit_cancelled,
        emit_document,
        interrupted_by,
        note,
        stop_on_ctrl_c,
    )
    from sane.cli.table import COMMANDS
    from sane.handlers import HANDLERS, Call
    from sane.ops.context import Context
    from sane.tmux.command import TmuxServer

    entry = COMMANDS[path]
    tool = entry["tool"]
    values = arguments(entry, params)
    if path == "create-file":
        _create_file_content(values, params)
    if params.get("dry_run"):  # `sane deploy run --dry-run`: the plan check, same fields
        tool = "deploy_plan_check"
        values.pop("wait")
    with (
        _progress(bool(params.get("stream")), path, tool) as on_event,
        Context(TmuxServer.from_env(params.get("socket"))) as ctx,
    ):
        call = Call(events=_noting(on_event) if tool in _NOTED else on_event)
        if tool in ("run_command", "fleet_run"):
            call.stop = stop_on_ctrl_c()  # a Ctrl-C hands the run(s) over: see _cancelled
        for key in ("run_id", "deploy_id"):  # a Ctrl-C anywhere else names them
            if values.get(key):
                note(**{key: values[key]})
        try:
            outcome = HANDLERS[tool](ctx, SimpleNamespace(**values), call)
        except errors.NotStarted as exc:  # run-command: the Ctrl-C came before typing
            if not call.stop.is_set():
                raise
            emit_cancelled(f"interrupted by {interrupted_by()}: {exc.message}", None, **exc.details)
    if call.stop.is_set():
        _cancelled(outcome.document)
    emit_document(outcome.document, outcome.exit_status)


_GOING = ("running", "waiting_input")
_DEPLOYS = ("deploy", "deploy_resume", "deploy_rollback")
# Commands whose handler tells per-server events (``sane.fleet.events``, deploys'
# journal, health changes): their progress is worth drawing on stderr.
_FLEET_EVENTS = (
    "connect",
    "fleet_run",
    "fleet_put",
    "fleet_detect",
    "health",
    "health_wait",
    *_DEPLOYS,
)


# Commands whose events say what a Ctrl-C report should name (see _noting).
_NOTED = (*_DEPLOYS, "fleet_put")


def _noting(on_event: Any) -> Any:
    """``on_event`` that also notes, for a Ctrl-C report, the deploy's id (from its
    first journal event) and the servers a ``fleet put`` has written to (or found the
    same file on): a Ctrl-C of a put said nothing of them (sweep17 (g))."""
    from sane.cli._emit import note

    written: list[str] = []

    def noted(event: dict[str, Any]) -> None:
        if event.get("deploy_id"):
            note(deploy_id=event["deploy_id"])
        if event.get("event") == "finished" and event.get("ok") and "sha256" in event:
            written.append(event["server"])
            note(written=sorted(written))
        if on_event is not None:
            on_event(event)

    return noted


def _cancelled(doc: Mapping[str, Any]) -> None:
    """After a Ctrl-C: ``cancelled`` (exit 130) naming the runs that go on, with the
    document so far; nothing when every run had ended anyway."""
    from sane.cli._emit import emit_cancelled, interrupted_by

    result = {k: v for k, v in doc.items() if k not in ("ok", "schema_version", "error")}
    if doc.get("status") in _GOING and "run_id" in doc:  # one run
        run_id, pane = doc["run_id"], doc.get("pane")
        emit_cancelled(
            f"interrupted by {interrupted_by()}: run {run_id} goes on in pane {pane}; follow "
            f"it with `sane run wait {run_id}` or stop it with `sane run "
            f"interrupt {run_id}`",
            result,
            run_id=run_id,
            pane=pane,
        )
    results = doc.get("results") or []
    going = {r["server"]: r["run_id"] for r in results if r.get("status") in _GOING}
    skipped = [r["server"] for r in results if r.get("status") == "not_started"]
    if going or skipped:
        said = []
        if going:
            said.append(
                f"{len(going)} run(s) go on ("
                + ", ".join(f"{name}: {run}" for name, run in going.items())
                + "); follow each with `sane run wait RUN_ID` or stop it with "
                "`sane run interrupt RUN_ID`"
            )
        if skipped:
            said.append(
                f"{len(skipped)} server(s) not started, nothing typed there ("
                + ", ".join(skipped[:10])
                + (f" and {len(skipped) - 10} more" if len(skipped) > 10 else "")
                + ")"
            )
        emit_cancelled(
            f"interrupted by {interrupted_by()}: " + "; ".join(said),
            result,
            runs=going,
            not_started=skipped,
        )
