"""Make a process miss its next SIGCHLDs, as tmux does now and then (tmux/tmux#311):
``python -m tests.swallow_sigchld PID COUNT`` traces PID (ptrace), suppresses the next
COUNT SIGCHLDs it is sent, passes every other signal on, then lets it go. It prints
``ready`` once tracing, then one ``swallowed`` line per signal suppressed.

A real missed signal cannot be had on demand (it needs utempter's helper to run at the
very moment): this is the same loss, made exact. Linux only; needs the right to trace
the process (root, or the same user without Yama's restriction).
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PTRACE_CONT = 7
PTRACE_DETACH = 17
PTRACE_SEIZE = 0x4206
PTRACE_EVENT_STOP = 128
WALL = 0x40000000


def _ptrace(libc: ctypes.CDLL, request: int, pid: int, data: int = 0) -> None:
    if libc.ptrace(request, pid, None, ctypes.c_void_p(data)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"ptrace({request}, {pid}): {os.strerror(err)}")


def main(pid: int, count: int) -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]
    _ptrace(libc, PTRACE_SEIZE, pid)
    print("ready", flush=True)
    swallowed = 0
    while True:
        _, status = os.waitpid(pid, WALL)
        if not os.WIFSTOPPED(status):
            return 1  # the process ended
        sig = os.WSTOPSIG(status)
        if status >> 16 == PTRACE_EVENT_STOP:  # a group stop: let it go on
            _ptrace(libc, PTRACE_CONT, pid)
        elif sig == signal.SIGCHLD:
            swallowed += 1
            print("swallowed", flush=True)
            if swallowed == count:
                _ptrace(libc, PTRACE_DETACH, pid)  # in the stop: the signal is dropped
                return 0
            _ptrace(libc, PTRACE_CONT, pid)
        else:
            _ptrace(libc, PTRACE_CONT, pid, sig)


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]), int(sys.argv[2])))
