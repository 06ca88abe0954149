"""Waiting on a condition that nothing announces: call it, back off, give up in time.

For the few things tmux and the kernel send no event for (a pane's exec, a pane's
death, a free flock), sane polls with an exponential back-off from a couple of
milliseconds: quick when the answer is near, cheap when it is not, always bounded.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def poll(check: Callable[[], T], timeout: float, first: float = 0.002, cap: float = 0.1) -> T:
    """Call ``check`` until it returns something truthy or ``timeout`` seconds pass;
    return its last value (falsy on timeout)."""
    deadline = time.monotonic() + timeout
    delay = first
    while True:
        value = check()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(delay)
        delay = min(delay * 2, cap)
