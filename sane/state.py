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

# How long the lock may stay with one holder: a stuck process, not a queue of busy ones
# (each new holder writes a fresh token into the lock file, which restarts the wait).
LOCK_TIMEOUT = 10.0


def os_failure(action: str, path: Path, exc: OSError) -> errors.SaneError:
    """``state_invalid`` naming the file and the cause (``details.errno``: ENOSPC,
    EROFS, EACCES...), so a full disk or a read-only home is told apart from a bug;
    ``resource_limit`` naming ``nofile`` when sane was out of descriptors (the file is
    fine: a big fleet at a low ``ulimit -n``)."""
    return errors.out_of_files(exc, f"cannot {action} {path}", path=str(path)) or errors.StateError(
        f"cannot {action} {path}: {exc.strerror}",
        path=str(path),
        errno=errno.errorcode.get(exc.errno or 0, str(exc.errno)),
    )


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
    ``path.lock``), then ``state_locked`` once one holder has kept it ``timeout``
    seconds. Fifty processes queueing for the lock on a loaded machine make progress
    and wait as long as the queue takes (a fixed deadline failed them); each holder
    writes a new token into the lock file, and a waiter restarts its clock on each."""
    lock_path = path.with_name(path.name + ".lock")
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise os_failure("lock", path, exc) from exc
    try:
        if not _flock_while_handed_on(fd, timeout):
            raise errors.StateLocked(
                f"{path} stayed locked for {timeout:g}s by another process", path=str(path)
            )
        with contextlib.suppress(OSError):  # the token only informs waiters
            os.pwrite(fd, f"{os.getpid():>10} {os.urandom(8).hex()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)


def _flock_while_handed_on(fd: int, timeout: float) -> bool:
    """``flock_within`` whose ``timeout`` restarts whenever the lock file's token
    changes (the lock went to another holder since)."""
    import time

    def token() -> bytes:
        try:
            return os.pread(fd, 64, 0)
        except OSError:
            return b""

    seen = token()
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if flock_within(fd, max(0.0, min(left, 0.5))):
            return True
        now = token()
        if now != seen:
            seen, deadline = now, time.monotonic() + timeout
        elif time.monotonic() >= deadline:
            return False
