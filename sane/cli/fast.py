"""A click-free parser for the hottest one-shot commands.

Importing click costs 35-60 ms on the machines sane runs on: more than a whole warm
fleet run, and as much as the rest of a ``sane-run-command``. ``run-command`` and
``fleet run`` are what agents call in a loop, so their usual command lines are parsed
here, with click's rules, and anything this parser is not sure of (``--help``, an
option cluster, a malformed number, a missing value) is left to click, which gives its
usual answer or error. The options come from the command table (``sane.cli.table``),
like the click commands; ``tests/test_fast_cli.py`` holds the two against each other:
the same options, defaults and parsed values.
"""

from __future__ import annotations

import os
from typing import Any

FLAG = "flag"
TEXT = "text"
INT_AT_LEAST_0 = "int>=0"
INT_AT_LEAST_1 = "int>=1"
FLOAT_AT_LEAST_0 = "float>=0"


class FastCommand:
    """One command's line: its options (``--name`` -> (parameter, kind)), their
    defaults, and the one variadic, required argument. (A plain class: a NamedTuple
    costs ~1.5 ms to create at every start.)"""

    def __init__(
        self,
        path: tuple[str, ...],
        options: dict[str, tuple[str, str]],
        defaults: dict[str, Any],
        argument: str,
        envvars: dict[str, str],
    ) -> None:
        self.path = path
        self.options = options
        self.defaults = defaults
        self.argument = argument
        self.envvars = envvars


def _kind(param: dict[str, Any]) -> str | None:
    """The fast parser's kind for a table parameter; None: click's to parse."""
    kind, low, high = param["kind"], param.get("min"), param.get("max")
    if "flags" in param or high is not None:
        return None
    if kind == "flag":
        return FLAG
    if kind in ("text", "csv"):
        return TEXT
    if kind == "int" and low in (0, 1):
        return INT_AT_LEAST_1 if low == 1 else INT_AT_LEAST_0
    if kind == "float" and low == 0:
        return FLOAT_AT_LEAST_0
    return None


def from_table(path: tuple[str, ...]) -> FastCommand:
    """The fast parser's view of table row ``path``: the same options, kinds, defaults
    and environment variables as its click command (``sane.cli.build``)."""
    from sane.cli.table import COMMANDS

    options: dict[str, tuple[str, str]] = {}
    defaults: dict[str, Any] = {}
    envvars: dict[str, str] = {}
    argument = ""
    for param in COMMANDS[" ".join(path)]["params"]:
        name = param["name"]
        if param["kind"] == "words":
            argument = name
            continue
        multiple = param["kind"] in ("multiple", "pairs")
        defaults[name] = () if multiple else param["default"]
        kind = None if multiple else _kind(param)
        if kind is not None:
            options.update((opt, (name, kind)) for opt in param["opts"])
        if "envvar" in param:
            envvars[name] = param["envvar"]
    return FastCommand(path, options, defaults, argument, envvars)


FLEET_RUN = from_table(("fleet", "run"))
# `sane run-command` and `sane-run-command` (path ()): the call agents make most.
RUN_COMMAND = from_table(("run-command",))

COMMANDS = (FLEET_RUN, RUN_COMMAND)


class _NotSure(Exception):
    """The line is click's to parse."""


def _value(kind: str, text: str) -> Any:
    if kind == TEXT:
        return text
    # (Past 4,300 digits int() refuses the string; click then reports a bad value.)
    if (
        kind in (INT_AT_LEAST_0, INT_AT_LEAST_1)
        and text.isascii()
        and text.isdigit()
        and len(text) <= 18
    ):
        value = int(text)
        if value >= (1 if kind == INT_AT_LEAST_1 else 0):
            return value
    if kind == FLOAT_AT_LEAST_0 and text.isascii():
        whole, _, fraction = text.partition(".")
        if whole.isdigit() and (fraction == "" or fraction.isdigit()) and len(text) <= 32:
            return float(text)
    raise _NotSure


def parse(spec: FastCommand, args: list[str]) -> dict[str, Any] | None:
    """The parameters click would give ``spec``'s callback for ``args`` (the words
    after the command's path), or None where click must decide."""
    params = dict(spec.defaults)
    positional: list[str] = []
    i = 0
    try:
        while i < len(args):
            arg = args[i]
            i += 1
            if arg == "--":
                positional.extend(args[i:])
                break
            if not arg.startswith("-") or arg == "-":  # click too takes `-` as a word
                positional.append(arg)
                continue
            # `--name=value`; a short option's `=` would be part of its value in click
            name, eq, inline = arg.partition("=") if arg.startswith("--") else (arg, "", "")
            if name not in spec.options:
                raise _NotSure
            dest, kind = spec.options[name]
            if kind == FLAG:
                if eq:
                    raise _NotSure
                params[dest] = True
                continue
            if eq:
                text = inline
            elif i < len(args) and not args[i].startswith("-"):
                text = args[i]
                i += 1
            else:
                raise _NotSure
            params[dest] = _value(kind, text)
    except _NotSure:
        return None
    if not positional:
        return None
    for dest, envvar in spec.envvars.items():
        if params[dest] is None:
            params[dest] = os.environ.get(envvar) or None
    params[spec.argument] = tuple(positional)
    return params


def route(argv: list[str]) -> tuple[FastCommand, dict[str, Any]] | None:
    """The fast command and its parameters for ``sane ARGV``, if there is one."""
    for spec in COMMANDS:
        if tuple(argv[: len(spec.path)]) == spec.path:
            params = parse(spec, argv[len(spec.path) :])
            return None if params is None else (spec, params)
    return None
