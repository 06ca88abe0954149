"""Which servers a fleet command works on: the same rule for every command."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sane.fleet.registry import Server


def split_names(csv: str | None) -> list[str]:
    """``--servers a,b`` as a list (empty when not given)."""
    return [name for name in (csv or "").split(",") if name]


def selected_servers(names: Iterable[str], tag: str | None, all_servers: bool) -> list[Server]:
    """The servers named (in that order), or with ``tag``; all of them when nothing
    narrows the choice."""
    from sane.fleet.registry import select_servers

    return select_servers(None, names, tag, all_servers)
