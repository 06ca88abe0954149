"""This host's ``/proc``, read one way: a process's stat fields, name, argv and age.

Several layers ask the kernel about a process: is a pane's shell at its prompt
(``ops.prompts``), still starting or running a command string (``ops.takeover``), is
a pane's process a zombie (``ops.run.ending``), which processes are this one's
ancestors (``ops.context``), which a demo started (``demo.fleet``). Each used to open
``/proc/PID/stat`` and split it after the last ``)`` by hand (the command name may
hold spaces and parentheses). Every function answers None when ``/proc`` cannot say
(another OS, the process gone, no permission)."""

from __future__ import annotations

import os

# Indexes into :func:`stat_fields` (proc(5)'s fields 3 to 8, 22 and 28).
STATE, PPID, PGRP, SESSION, TTY, TPGID, START_TIME, START_STACK = 0, 1, 2, 3, 4, 5, 19, 25


def read_text(path: str) -> str | None:
    """A /proc file's text (undecodable bytes replaced), or None."""
    try:
        with open(path, "rb") as fh:
            return fh.read().decode("utf-8", "replace")
    except OSError:
        return None


def stat_fields(pid: int | str) -> list[str] | None:
    """``/proc/PID/stat`` after the command name: state, ppid, pgrp, session, tty,
    tpgid... (index them with the constants above)."""
    text = read_text(f"/proc/{pid}/stat")
    if text is None or ")" not in text:
        return None
    return text[text.rindex(")") + 2 :].split()


def field(pid: int | str, index: int) -> int | None:
    """One numeric field of :func:`stat_fields`."""
    fields = stat_fields(pid)
    try:
        return int(fields[index]) if fields is not None else None
    except (IndexError, ValueError):
        return None


def state(pid: int | str) -> str | None:
    """The process's state letter (``R``, ``S``, ``Z``...)."""
    fields = stat_fields(pid)
    return fields[STATE] if fields else None


def name(pid: int | str) -> str | None:
    """The command name as the kernel keeps it (stat's field 2, at most 15 bytes)."""
    text = read_text(f"/proc/{pid}/stat")
    if text is None or "(" not in text or ")" not in text:
        return None
    return text[text.index("(") + 1 : text.rindex(")")]


def argv(pid: int | str) -> list[bytes] | None:
    """The process's arguments, as it was started."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            data = fh.read()
    except OSError:
        return None
    return data.removesuffix(b"\0").split(b"\0") if data else []


def age(pid: int | str) -> float | None:
    """Seconds since the process started."""
    started = field(pid, START_TIME)
    uptime = read_text("/proc/uptime")
    if started is None or uptime is None:
        return None
    try:
        return float(uptime.split()[0]) - started / os.sysconf("SC_CLK_TCK")
    except (IndexError, ValueError):
        return None


def exec_image(start_stack: int) -> int | None:
    """Which exec of a process this is: the last 9 digits of its stack's start address
    (stat's field 28), which address-space randomisation draws anew at every exec, as
    sane's runner prints them at takeover (``sane.protocol.runner``: the IMAGE marker).
    None for 0 (the kernel hides the address from a reader without ptrace rights)."""
    return start_stack % 10**9 or None


def image(pid: int | str) -> int | None:
    """:func:`exec_image` of a process of this host (None if ``/proc`` cannot say)."""
    start_stack = field(pid, START_STACK)
    return exec_image(start_stack) if start_stack is not None else None
