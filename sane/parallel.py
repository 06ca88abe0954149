"""Run a function on many items with at most N at a time, on reusable plain threads.

``concurrent.futures`` would do, but importing it (with ``logging``) costs ~9 ms here,
a third of a whole warm fleet run; this is the one bounded map sane needs.

The worker threads outlive a call and wait for the next one: starting and joining 20
threads costs 2-5 ms per fleet run on 2 cores (more while the runs compete for the
GIL), a sixth of a warm ``true`` on 20 servers through the library or the MCP server.
Beyond MAX_IDLE they wait IDLE_LINGER seconds before they exit: a warm ``true`` on 200
servers started 136 threads per call and spent ~0.4 ms of CPU per server on starting
and ending them (sane's CPU 310 -> 225 ms per call, same fleet, same run).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")

# How many servers a fleet command works on at once unless told otherwise (--max-parallel):
# the one default of up/connect, fleet run/put/detect and the library.
DEFAULT_PARALLEL = 5
# Idle workers kept for the next call; more than this many exit when they have had
# no work for IDLE_LINGER seconds (a big fleet's repeated calls reuse them).
MAX_IDLE = 64
IDLE_LINGER = 30.0


class _Worker:
    """A daemon thread that runs one job at a time, then waits among the idle ones.

    ``_go`` is a lock used as a one-slot semaphore: released to hand over a job. The
    worker is back among the idle ones before it reports the job done, so the caller's
    next call finds it there."""

    def __init__(self) -> None:
        self._go = threading.Lock()
        self._go.acquire()
        self._job: tuple[Callable[[], None], Callable[[], None]] | None = None
        threading.Thread(target=self._loop, name="sane-worker", daemon=True).start()

    def run(self, job: Callable[[], None], done: Callable[[], None]) -> None:
        self._job = (job, done)
        self._go.release()

    def _loop(self) -> None:
        linger = False  # one of the idle ones beyond MAX_IDLE: exits when unused
        while True:
            if linger and not self._go.acquire(timeout=IDLE_LINGER):
                with _idle_lock:
                    if self in _idle:  # nobody took it meanwhile: leave
                        _idle.remove(self)
                        return
                self._go.acquire()  # taken just now: its job is on the way
            elif not linger:
                self._go.acquire()
            task, self._job = self._job, None
            assert task is not None
            task[0]()  # never raises: bounded_map's job catches everything
            with _idle_lock:
                linger = len(_idle) >= MAX_IDLE
                _idle.append(self)
            task[1]()
            del task  # an idle worker keeps nothing of the last call alive


_idle: list[_Worker] = []
_idle_lock = threading.Lock()


def _after_fork_in_child() -> None:
    """A forked child has none of the parent's threads, and the lock may have been
    held by one of them at the fork."""
    global _idle_lock
    _idle.clear()
    _idle_lock = threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)


def _workers(count: int) -> list[_Worker]:
    with _idle_lock:
        taken = _idle[-count:] if count else []
        del _idle[len(_idle) - len(taken) :]
    try:
        return taken + [_Worker() for _ in range(count - len(taken))]
    except BaseException:  # no thread could be started: give the idle ones back
        with _idle_lock:
            _idle.extend(taken)
        raise


def spawn(job: Callable[[], None]) -> None:
    """Run ``job`` on one of the reusable workers without waiting for it: a fleet's one
    follower (sane.fleet.loop) hands it a run whose next step blocks. ``job`` must
    catch everything it raises (as ``bounded_map``'s does)."""
    _workers(1)[0].run(job, _nothing)


def _nothing() -> None:
    return None


def bounded_map(work: Callable[[T], R], items: Sequence[T], max_parallel: int) -> list[R]:
    """``[work(item) for item in items]``, at most ``max_parallel`` running at once,
    results in input order. As with ``Executor.map``, every item is worked on even
    when one raises; the first exception is raised once all have finished."""
    results: list[R | None] = [None] * len(items)
    failures: list[BaseException] = []
    next_index = iter(range(len(items)))
    lock = threading.Lock()
    count = min(max(1, max_parallel), len(items))
    running = count
    finished = threading.Event()

    def drain() -> None:
        while True:
            with lock:
                index = next(next_index, None)
            if index is None:
                break
            try:
                results[index] = work(items[index])
            except BaseException as exc:  # handed to the caller below
                with lock:
                    failures.append(exc)

    def done() -> None:
        nonlocal running
        with lock:
            running -= 1
            if running == 0:
                finished.set()

    if count:
        for worker in _workers(count):
            worker.run(drain, done)
        finished.wait()
    if failures:
        raise failures[0]
    return results  # type: ignore[return-value]  # every slot was filled
