"""A click-free parser for the hottest one-shot commands.

Importing click costs 35-60 ms on the machines sane runs on: more than a whole warm
fleet run, and as much as the rest of a ``sane-run-command``. ``run-command`` and
``fleet run`` are what agents call in a loop, so their usual command lines are parsed
here, with click's rules, and anything this parser is not sure of (``--help``, an
option cluster, a malformed number, a missing value) is left to click, which gives its
usual answer or error. ``tests/test_fast_cli.py`` holds this table
against the click commands: the same options, defaults and parsed values.
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

# `sane run-command` and `sane-run-command` (path ()): the call agents make most.
RUN_COMMAND = FastCommand(
    path=("run-command",),
    options={
        "--server": ("server", TEXT), "-s": ("server", TEXT),
        "--pane": ("pane", TEXT), "-t": ("pane", TEXT),
        "--socket": ("socket", TEXT),
        "--timeout": ("timeout", FLOAT_AT_LEAST_0),
        "--interrupt-on-timeout": ("interrupt_on_timeout", FLAG),
        "--keep-ansi": ("keep_ansi", FLAG),
        "--check": ("check", FLAG),
        "--max-output": ("max_output", INT_AT_LEAST_0),
        "--quiet-period": ("quiet_period", FLOAT_AT_LEAST_0),
    },
    defaults={"server": None, "pane": None, "socket": None, "timeout": 30.0,
              "interrupt_on_timeout": False, "keep_ansi": False, "check": False,
              "max_output": 1 << 20, "quiet_period": 0.3},
    argument="command",
    envvars={"socket": "SANE_TMUX_SOCKET"},
    action=("sane.cli.actions", "run_command_action"),
)

COMMANDS = (FLEET_RUN, RUN_COMMAND)


class _NotSure(Exception):
    """The line is click's to parse."""


def _value(kind: str, text: str) -> Any:
    if kind == TEXT:
        return text
    # (Past 4,300 digits int() refuses the string; click then reports a bad value.)
    if kind in (INT_AT_LEAST_0, INT_AT_LEAST_1) and text.isascii() and text.isdigit() \
            and len(text) <= 18:
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
            params = parse(spec, argv[len(spec.path):])
            return None if params is None else (spec, params)
    return None
