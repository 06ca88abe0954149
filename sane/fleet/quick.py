"""Pick servers from servers.json without pydantic, when its bytes were validated before.

Every time ``Registry`` validates servers.json (reading it, or writing it under its
lock) it keeps a copy of those exact bytes in ``servers.json.validated``. When the
file still has exactly those bytes, its entries are known to be valid and can be used
as they are; any other file (edited by hand, half-written, newer than the copy) makes
``quick_select`` return None and the caller goes the validating way, which reports
``config_invalid`` or keeps a copy of the new bytes. (A byte comparison of a small
file, rather than a digest: ``hashlib`` alone costs ~5 ms to import here.)
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

from sane.fleet.spec import ServerSpec

STAMP_SUFFIX = ".validated"


def _read(path: str) -> bytes:
    with open(path, "rb") as fh:
        return fh.read()


def _validated_entries(home: str | os.PathLike[str]) -> list[dict[str, Any]] | None:
    path = os.path.join(home, "servers.json")
    try:
        raw = _read(path)
        validated = _read(path + STAMP_SUFFIX)
    except OSError:
        return None
    if raw != validated:
        return None
    entries: list[dict[str, Any]] = json.loads(raw)["servers"]
    return entries


def quick_select(
    home: str | os.PathLike[str], names: Sequence[str], tag: str | None, all_servers: bool
) -> list[ServerSpec] | None:
    """The same choice as ``Registry.select`` (names in order, a tag, or all), or None
    when the validating path must answer (unvalidated bytes, an unknown name, a
    choice that leaves no server)."""
    entries = _validated_entries(home)
    if entries is None:
        return None
    try:
        specs = {e["name"]: ServerSpec(**e) for e in entries}
    except TypeError:  # a field ServerSpec does not know yet: validate the slow way
        return None
    if names:
        if any(name not in specs for name in names):
            return None  # the validating path names what is missing
        return [specs[name] for name in names]
    if tag is not None:
        tagged = [spec for spec in specs.values() if tag in spec.tags]
        return tagged or None  # nothing selected: the validating path says so
    if all_servers:
        return list(specs.values()) or None
    return None
