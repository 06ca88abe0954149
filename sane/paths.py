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
    """Create ``path`` (and parents) readable by the owner only; return it.

    A failure (a file in the way, a read-only or full file system) is ``state_invalid``
    naming the directory, not a bare OSError."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        from sane.state import os_failure

        raise os_failure("create the directory", path, exc) from exc
    return path
