"""Where sane keeps its state: ``$SANE_HOME`` (default ``~/.sane``)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path


def sane_home() -> Path:
    from pathlib import Path

    value = os.environ.get("SANE_HOME")
    return Path(value).expanduser() if value else Path.home() / ".sane"


def private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) readable by the owner only; return it."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path
