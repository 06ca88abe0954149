"""Crash-safe state files: a reader sees the old file or the new one, never half.

Write to a temp file in the same directory, fsync it, rename it over the target,
fsync the directory. Files are created 0600: state may name hosts and commands.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sane import errors
from sane.flock import flock_within

LOCK_TIMEOUT = 10.0


def os_failure(action: str, path: Path, exc: OSError) -> errors.StateError:
    """``state_invalid`` naming the file and the cause (``details.errno``: ENOSPC,
    EROFS, EACCES...), so a full disk or a read-only home is told apart from a bug."""
    return errors.StateError(f"cannot {action} {path}: {exc.strerror}", path=str(path),
                             errno=errno.errorcode.get(exc.errno or 0, str(exc.errno)))


def write_atomic(path: Path, data: bytes) -> None:
    directory = path.parent
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    except OSError as exc:
        raise os_failure("write", path, exc) from exc
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
        raise os_failure("write", path, exc) from exc


def write_json(path: Path, value: Any) -> None:
    write_atomic(path, json.dumps(value, indent=2, sort_keys=True).encode() + b"\n")


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_bytes())
    except FileNotFoundError:
        raise
    except (OSError, ValueError) as exc:
        raise errors.StateError(f"cannot read {path}: {exc}", path=str(path)) from exc


@contextlib.contextmanager
def file_lock(path: Path, timeout: float = LOCK_TIMEOUT) -> Iterator[None]:
    """Exclusive lock for a read-modify-write of ``path`` (an ``flock`` on
    ``path.lock``), waited for at most ``timeout`` seconds, then ``state_locked``."""
    lock_path = path.with_name(path.name + ".lock")
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise os_failure("lock", path, exc) from exc
    try:
        if not flock_within(fd, timeout):
            raise errors.StateLocked(
                f"{path} stayed locked for {timeout:g}s by another process", path=str(path)
            )
        yield
    finally:
        os.close(fd)

