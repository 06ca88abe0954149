"""A child process with pipes on its stdin, stdout and stderr, without ``subprocess``.

Every sane command starts exactly one process of its own, the tmux control client,
and importing ``subprocess`` (with ``selectors``, ``signal``, ``locale``) costs 5-8 ms
here: a tenth of a ``sane-run-command``. ``os.posix_spawn`` starts the client just as
well; the rest of sane uses ``subprocess`` as usual, imported where it is needed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from typing import BinaryIO


class ProcessTimeout(Exception):
    """The process did not exit within the time given to ``wait``."""


class PipedProcess:
    """``Popen(argv, stdin=PIPE, stdout=PIPE, stderr=PIPE)``, for what sane needs."""

    def __init__(self, argv: list[str], bufsize: int = 1 << 16) -> None:
        fds: list[int] = []
        try:
            stdin_r, stdin_w = os.pipe()  # both ends close on exec (PEP 446)...
            fds += [stdin_r, stdin_w]
            stdout_r, stdout_w = os.pipe()
            fds += [stdout_r, stdout_w]
            stderr_r, stderr_w = os.pipe()
            fds += [stderr_r, stderr_w]
            # ...but dup2 gives the child its 0, 1 and 2 without that flag.
            actions = [
                (os.POSIX_SPAWN_DUP2, stdin_r, 0),
                (os.POSIX_SPAWN_DUP2, stdout_w, 1),
                (os.POSIX_SPAWN_DUP2, stderr_w, 2),
                *((os.POSIX_SPAWN_CLOSE, fd) for fd in _inherited_fds()),
            ]
            spawn = os.posix_spawn if os.sep in argv[0] else os.posix_spawnp
            # As Popen's restore_signals: Python ignores SIGPIPE, the child must not.
            self.pid = spawn(
                argv[0],
                argv,
                os.environ,
                file_actions=actions,
                setsigdef=(signal.SIGPIPE, signal.SIGXFSZ),
            )
        except BaseException:
            for fd in fds:
                os.close(fd)
            raise
        for fd in (stdin_r, stdout_w, stderr_w):
            os.close(fd)
        self.stdin: BinaryIO = os.fdopen(stdin_w, "wb", buffering=bufsize)
        self.stdout: BinaryIO = os.fdopen(stdout_r, "rb", buffering=bufsize)
        self.stderr: BinaryIO = os.fdopen(stderr_r, "rb")
        self.returncode: int | None = None
        # One waitpid at a time (the reader thread and close() both ask): once the
        # child is reaped its pid may be reused, and must not be waited on or killed.
        self._wait_lock = threading.Lock()

    def poll(self) -> int | None:
        """The exit status once the process has ended (and is reaped), else None."""
        with self._wait_lock:
            if self.returncode is None:
                try:
                    pid, status = os.waitpid(self.pid, os.WNOHANG)
                except ChildProcessError:  # reaped elsewhere (SIGCHLD ignored): ended
                    self.returncode = -1
                    return self.returncode
                if pid:
                    self.returncode = os.waitstatus_to_exitcode(status)
            return self.returncode

    def wait(self, timeout: float = 60.0) -> int:
        """Wait for the end, with ``Popen.wait``'s back-off (the kernel gives no event
        for a child's exit that a thread could wait on portably, with a timeout)."""
        deadline = time.monotonic() + timeout
        delay = 0.0005
        while (code := self.poll()) is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ProcessTimeout(f"process {self.pid} still running after {timeout:g}s")
            time.sleep(min(delay, remaining))
            delay = min(delay * 2, 0.05)
        return code

    def kill(self) -> None:
        with self._wait_lock:
            if self.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, signal.SIGKILL)


def _inherited_fds() -> list[int]:
    """Descriptors above 2 this process would hand to a child, as ``Popen(close_fds=
    True)`` closes them: ones a caller passed to sane (Python's own are not
    inheritable). Only where /proc or /dev/fd lists them.

    Only those below the soft ``nofile`` limit: glibc refuses a close action for a
    descriptor at or past it (``EBADF``), and one passed to sane by a parent with a
    higher limit (a job runner's pipe at 251 under ``prlimit --nofile=200``) made
    every control client fail to start, reported as tmux missing (issue 17). Such a
    descriptor is left to the child, which tmux's client never uses."""
    limit = os.sysconf("SC_OPEN_MAX")  # the soft limit, with no module to load
    for listing in ("/proc/self/fd", "/dev/fd"):
        try:
            names = os.listdir(listing)
        except OSError:
            continue
        found = []
        for name in names:
            fd = int(name)
            if 2 < fd < limit:
                try:
                    if os.get_inheritable(fd):
                        found.append(fd)
                except OSError:  # the listing's own descriptor, closed by now
                    pass
        return found
    return []
