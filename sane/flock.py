"""An exclusive ``flock`` with a deadline: flock itself can only wait forever or not
at all. Kept apart from ``sane.state`` so the hot path (attaching a control client)
can lock without importing what state files need."""

from __future__ import annotations

import fcntl

from sane.poll import poll


def flock_within(fd: int, timeout: float, first: float = 0.001, cap: float = 0.05) -> bool:
    """Take an exclusive ``flock`` on ``fd``, waiting at most ``timeout`` seconds;
    whether it was taken."""

    def acquired() -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    return bool(poll(acquired, timeout, first=first, cap=cap))
