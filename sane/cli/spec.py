"""How a command of the table (``sane.tools.TOOLS``) is spelt on the command line.

A row's input model says what the command takes (names, types, defaults, limits,
help); its :class:`Cli` says only what is particular to a command line: which fields
are positional, short option names, the few CLI defaults that differ on purpose, the
fields an agent has and a person does not, and the CLI-only options (``--socket``,
``--stream``). ``sane.cli.generate`` turns both into ``sane.cli.table`` (plain data),
from which the click commands and the click-free fast parser are built.

No pydantic and no click here: the fast front door reads this module's neighbours.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sane.tmux.command import SOCKET_ENV

Param = dict[str, Any]
"""One command-line parameter, as ``sane.cli.table`` stores it:

``name`` (the field, or a CLI-only name), ``opts`` (``["--pane", "-t"]``; empty for an
argument), ``kind`` (text, int, float, flag, choice, words, names, csv, multiple,
pairs),
``default``, ``required``, ``help``, and where they apply ``min``, ``max``,
``choices``, ``pattern``, ``min_length``, ``envvar``, ``stdin`` (``-`` reads the value
from stdin), ``cli_only`` (not a field of the input: the CLI's own option)."""

SOCKET: Param = {
    "name": "socket",
    "opts": ["--socket"],
    "kind": "text",
    "default": None,
    "envvar": SOCKET_ENV,
    "metavar": "NAME|PATH",
    "cli_only": True,
    "help": "tmux server socket, like tmux -L NAME (or -S PATH); default: your default server.",
}

STREAM: Param = {
    "name": "stream",
    "opts": ["--stream"],
    "kind": "flag",
    "default": False,
    "cli_only": True,
    "help": "JSON lines: every event as it happens, then the final document.",
}

FROM: Param = {
    "name": "from",
    "opts": ["--from"],
    "kind": "text",
    "default": None,
    "metavar": "FILE",
    "cli_only": True,
    "help": "Copy this local file's bytes.",
}

DRY_RUN: Param = {
    "name": "dry_run",
    "opts": ["--dry-run"],
    "kind": "flag",
    "default": False,
    "cli_only": True,
    "help": "Validate and show the order; contact nothing.",
}


@dataclass(frozen=True, eq=False)  # hashed by identity: a row is one object
class Cli:
    """The command-line side of one row of the command table."""

    path: str
    """The command's words after ``sane``, e.g. ``run-command``, ``fleet run``."""
    arguments: tuple[str, ...] = ()
    """Fields given as positional arguments, in order (a ``str`` field last in the
    list takes the remaining words, joined with spaces, when it is in ``words``)."""
    words: tuple[str, ...] = ()
    """Positional fields that take every remaining word: a text joined with spaces
    (``sane run-command echo hi``; a single ``-`` reads it from stdin), or a list of
    names (``sane connect web1 web2``)."""
    aliases: tuple[str, ...] = ()
    """Other paths for the same command (``up`` for ``connect``)."""
    stdin: tuple[str, ...] = ()
    """Positional fields whose ``-`` reads the value from stdin (one trailing newline
    dropped), so a secret never appears in argv."""
    short: Mapping[str, str] = field(default_factory=dict)
    """Field -> short option (``{"pane": "-t"}``)."""
    spelling: Mapping[str, str] = field(default_factory=dict)
    """Field -> long option where it is not ``--field-name`` (``{"tags": "--tag"}``)."""
    defaults: Mapping[str, Any] = field(default_factory=dict)
    """Field -> the CLI's own default, where it differs from an agent's on purpose."""
    omit: tuple[str, ...] = ()
    """Fields an agent has and the command line does not (the handler gets the
    default, or the value in ``fixed``)."""
    fixed: Mapping[str, Any] = field(default_factory=dict)
    """Field -> the value the CLI always gives an omitted field."""
    csv: tuple[str, ...] = ("servers",)
    """List fields given comma-separated (``--servers a,b``); other lists repeat."""
    extra: tuple[Param, ...] = (SOCKET,)
    """CLI-only options (not fields): the tmux socket, ``--stream`` ..."""
    note: str = ""
    """Said in ``--help`` after the command's description (command-line matters)."""
    flags: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    """A choice field spelt as one flag per value: field -> {value: option}
    (``{"mode": {"all": "--all", "any": "--any"}}``)."""
