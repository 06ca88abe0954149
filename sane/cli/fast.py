"""A click-free parser for the hottest one-shot commands.

Importing click costs 35-60 ms on the machines sane runs on: more than a whole warm
fleet run. ``sane fleet run`` is what agents call in a loop, so its usual command
lines are parsed here, with click's rules, and anything this parser is not sure of
(``--help``, a short option, a malformed number, a missing value) is left to click,
which gives its usual answer or error. ``tests/test_fast_cli.py`` holds this table
against the click commands: the same options, defaults and parsed values.
"""

from __future__ import annotations

import os
from typing import Any

FLAG = "flag"
TEXT = "text"
INT_AT_LEAST_1 = "int>=1"
FLOAT_AT_LEAST_0 = "float>=0"


class FastCommand:
    """One command's line: its options (``--name`` -> (parameter, kind)), their
    defaults, and the one variadic, required argument. (A plain class: a NamedTuple
    costs ~1.5 ms to create at every start.)"""

    def __init__(self, path: tuple[str, ...], options: dict[str, tuple[str, str]],
                 defaults: dict[str, Any], argument: str, envvars: dict[str, str],
                 action: tuple[str, str]) -> None:
        self.path = path
        self.options = options
        self.defaults = defaults
        self.argument = argument
        self.envvars = envvars
        self.action = action  # (module, function) called with the parameters


FLEET_RUN = FastCommand(
    path=("fleet", "run"),
    options={
        "--servers": ("servers", TEXT),
        "--tag": ("tag", TEXT),
        "--all": ("all_servers", FLAG),
        "--max-parallel": ("max_parallel", INT_AT_LEAST_1),
        "--timeout": ("timeout", FLOAT_AT_LEAST_0),
        "--stream": ("stream", FLAG),
        "--socket": ("socket", TEXT),
    },
    defaults={"servers": None, "tag": None, "all_servers": False, "max_parallel": 5,
              "timeout": 30.0, "stream": False, "socket": None},
    argument="command",
    envvars={"socket": "SANE_TMUX_SOCKET"},
    action=("sane.cli.actions", "fleet_run_action"),
)

COMMANDS = (FLEET_RUN,)


class _NotSure(Exception):
    """The line is click's to parse."""


def _value(kind: str, text: str) -> Any:
    if kind == TEXT:
        return text
    if kind == INT_AT_LEAST_1 and text.isascii() and text.isdigit() and int(text) >= 1:
        return int(text)
    if kind == FLOAT_AT_LEAST_0 and text.isascii():
        whole, _, fraction = text.partition(".")
        if whole.isdigit() and (fraction == "" or fraction.isdigit()):
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
            if not arg.startswith("-") or arg == "-":
                if arg == "-":
                    raise _NotSure
                positional.append(arg)
                continue
            name, eq, inline = arg.partition("=")
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
            params = parse(spec, argv[len(spec.path):])
            return None if params is None else (spec, params)
    return None
