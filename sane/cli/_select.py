"""Which servers a fleet command works on: the same rule for every command."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sane.fleet.registry import Server
    from sane.fleet.spec import ServerLike


def split_names(csv: str | None) -> list[str]:
    """``--servers a,b`` as a list (empty when not given)."""
    return [name for name in (csv or "").split(",") if name]


def selected_servers(names: Iterable[str], tag: str | None, all_servers: bool) -> list[Server]:
    """The servers named (in that order), or with ``tag``; all of them when nothing
    narrows the choice."""
    from sane.fleet.registry import select_servers

    return select_servers(None, names, tag, all_servers)


def selected_for_run(names: list[str], tag: str | None,
                     all_servers: bool) -> Sequence[ServerLike]:
    """The same choice, without importing pydantic when servers.json is as sane last
    validated it (a fleet run on warm panes costs less than that import)."""
    from sane.fleet.quick import quick_select
    from sane.paths import sane_home_dir

    picked = [name for name in names if name]
    quick = quick_select(sane_home_dir(), picked, tag,
                         all_servers or (not picked and tag is None))
    return quick if quick is not None else selected_servers(picked, tag, all_servers)
