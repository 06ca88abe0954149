"""What a selection (``--servers``/``--tag``/``--all``, or the tools' ``servers``/
``tag``/``all``) asks for, before the registry is read: one rule for every command.

Nothing given means every server. A list of servers that is given but names none
(``--servers ''``, ``servers: []``) is ``no_servers_selected``: it used to read as
"nothing narrows the choice" and ran on every server. Kept free of pydantic, so the
quick fleet-run path can use it too.
"""

from __future__ import annotations

from collections.abc import Iterable

from sane import errors


def narrow(
    names: Iterable[str] | None, tag: str | None, all_servers: bool
) -> tuple[list[str], bool]:
    """(the names picked, whether every server is meant)."""
    given = None if names is None else list(names)
    picked = [name for name in given or () if name]
    if given is not None and not picked and tag is None and not all_servers:
        raise errors.NoServersSelected(
            "no servers selected: the list of servers is empty (name servers, or use "
            "--tag or --all)",
            servers=given,
            tag=None,
            tags=[],
        )
    return picked, all_servers or (not picked and tag is None)
