"""Crash-safe state files: a reader sees the old file or the new one, never half.

Write to a temp file in the same directory, fsync it, rename it over the target,
fsync the directory. Files are created 0600: state may name hosts and commands.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from sane import errors


def write_atomic(path: Path, data: bytes) -> None:
    directory = path.parent
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    except OSError as exc:
        raise errors.StateError(f"cannot write {path}: {exc.strerror}", path=str(path)) from exc
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise errors.StateError(f"cannot write {path}: {exc.strerror}", path=str(path)) from exc


def write_json(path: Path, value: Any) -> None:
    write_atomic(path, json.dumps(value, indent=2, sort_keys=True).encode() + b"\n")


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_bytes())
    except FileNotFoundError:
        raise
    except (OSError, ValueError) as exc:
        raise errors.StateError(f"cannot read {path}: {exc}", path=str(path)) from exc
