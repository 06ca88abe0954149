"""Make a process miss SIGCHLDs, as tmux does now and then (tmux/tmux#311):
``python -m tests.swallow_sigchld PID SENDER COUNT`` traces PID (ptrace) and suppresses
every SIGCHLD it is sent, passing every other signal on, until COUNT of them came from
process SENDER (a ``kill``, as sane's nudge is); then it lets PID go. It prints
``ready`` once tracing, then one line per signal suppressed: ``swallowed PID CODE``,
the signal's sender and its ``si_code`` (0 for a ``kill``, 1 for the kernel's news of
a child that exited).

A real missed signal cannot be had on demand (it needs libutempter's helper to run at
the very moment): this is the same loss, made exact. Every child's SIGCHLD is missed
while tracing (the pane's process, libutempter's helper run when a pane dies), and the
sender's first COUNT nudges. Linux x86-64 or aarch64 (the siginfo layout read); needs
the right to trace the process (root, or the same user without Yama's restriction).
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PTRACE_CONT = 7
PTRACE_DETACH = 17
PTRACE_GETSIGINFO = 0x4202
PTRACE_SEIZE = 0x4206
PTRACE_EVENT_STOP = 128
WALL = 0x40000000


def _ptrace(libc: ctypes.CDLL, request: int, pid: int, data: int = 0) -> None:
    if libc.ptrace(request, pid, None, ctypes.c_void_p(data)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"ptrace({request}, {pid}): {os.strerror(err)}")


def _sender(libc: ctypes.CDLL, pid: int) -> tuple[int, int]:
    """(si_pid, si_code) of the signal the tracee is stopped with (siginfo_t: three
    ints, then the sender's pid at offset 16)."""
    info = ctypes.create_string_buffer(128)
    _ptrace(libc, PTRACE_GETSIGINFO, pid, ctypes.addressof(info))
    code = int.from_bytes(info.raw[8:12], sys.byteorder, signed=True)
    return int.from_bytes(info.raw[16:20], sys.byteorder, signed=True), code


def main(pid: int, sender: int, count: int) -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]
    _ptrace(libc, PTRACE_SEIZE, pid)
    print("ready", flush=True)
    from_sender = 0
    while True:
        _, status = os.waitpid(pid, WALL)
        if not os.WIFSTOPPED(status):
            return 1  # the process ended
        sig = os.WSTOPSIG(status)
        if status >> 16 == PTRACE_EVENT_STOP:  # a group stop: let it go on
            _ptrace(libc, PTRACE_CONT, pid)
        elif sig == signal.SIGCHLD:
            by, code = _sender(libc, pid)
            print(f"swallowed {by} {code}", flush=True)
            from_sender += by == sender and code == 0
            if from_sender == count:
                _ptrace(libc, PTRACE_DETACH, pid)  # in the stop: the signal is dropped
                return 0
            _ptrace(libc, PTRACE_CONT, pid)
        else:
            _ptrace(libc, PTRACE_CONT, pid, sig)


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])))
