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
from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any, NoReturn

from sane import errors
from sane.cli.spec import Param


def _pairs(param: Param, pairs: tuple[str, ...]) -> dict[str, str]:
    values: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise errors.InvalidArgument(f"{param['opts'][0]} takes KEY=VALUE, not {pair!r}",
                                         field=param["name"])
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
    if params["from"] is not None:
        try:
            with open(params["from"], "rb") as fh:
                data = fh.read()
        except OSError as exc:
            raise errors.InvalidArgument(f"cannot read {params['from']}: {exc.strerror}",
                                         file=params["from"]) from exc
    else:
        data = sys.stdin.buffer.read()
    values["content_base64"] = base64.b64encode(data).decode("ascii")


def invoke(path: str, params: Mapping[str, Any]) -> NoReturn:
    """Run command ``path`` (``fleet run``) with its parsed parameters and print its
    document; exits with the command's status."""
    from sane.cli._emit import emit_document
    from sane.cli._stream import progress
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
    with progress(bool(params.get("stream"))) as on_event, \
            Context(TmuxServer.from_env(params.get("socket"))) as ctx:
        outcome = HANDLERS[tool](ctx, SimpleNamespace(**values), Call(events=on_event))
    emit_document(outcome.document, outcome.exit_status)
