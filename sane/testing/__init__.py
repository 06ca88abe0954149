"""Test support: a real tmux server per test, and waiting on conditions, not sleeps."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from sane.poll import poll

T = TypeVar("T")


class RetryTimeout(AssertionError):
    pass


def retry_until(
    predicate: Callable[[], T],
    timeout: float = 10.0,
    interval: float = 0.005,
    message: str = "condition not met",
) -> T:
    """Call ``predicate`` until it returns a truthy value; return that value.

    Backs off from ``interval`` to 0.1 s between tries, and fails with
    ``message`` once ``timeout`` seconds have passed.
    """
    value = poll(predicate, timeout, first=interval)
    if not value:
        raise RetryTimeout(f"{message} (after {timeout:g}s)")
    return value
