"""Is a quiet run waiting for terminal input? Ask the kernel, not the screen.

A run that has printed nothing for a moment is either busy (``sleep``, a slow build)
or blocked on a prompt (a password, ``read -p``, a pager, a REPL). The screen cannot
tell the two apart for sure; the kernel can. The pane's shell's ``/proc/PID/stat``
names the tty's foreground process group (``tpgid``); a process of that group
blocked in a system call that waits on the terminal and on nothing else is waiting
for input:

* ``read``/``readv``/``pread64`` on a tty fd (bash's ``read``, ``cat``, ``less``,
  ``sudo``'s and ``ssh``'s password and host-key questions: ``/dev/tty`` or the pane's
  pts);
* ``select``/``pselect6`` whose fd range holds only ttys (readline: Python's REPL, a
  shell, vim);
* ``poll``/``ppoll`` whose polled fds are all ttys (the ``pollfd`` array is read from
  ``/proc/PID/mem`` when allowed; otherwise, as on a remote host, only a process whose
  every open fd that could block is a tty counts: busybox ash's ``read``);
* ``epoll_wait`` whose epoll set (``/proc/PID/fdinfo``) holds only ttys.

The same kernel view tells when a run is over though no end marker came (C-c, or
an error that sends the shell back to its prompt): the run's shell itself is in the
foreground, blocked reading the terminal, and no longer holds the fd sane's runner
is called with (``RUN_FD``, see ``sane.protocol.runner``): it sits at its prompt
(:class:`Idle`). With that fd still open, the shell's own ``read`` is what waits.

``/proc/PID/syscall`` gives the blocked call and its arguments; it needs the same
permission as ptrace (root, or the same user). A process sleeping in ``nanosleep``, a
``futex``, or a ``poll`` on a socket is *not* waiting for input, however quiet.

An ssh pane shows only the local ``ssh`` client; its remote shell's pid (``$$``,
recorded at takeover as ``@sane_host_pid``) and the pane's side channel
(``@sane_side_channel``: ssh over the pane's ControlMaster) let the same snapshot be
taken from the remote ``/proc`` by a small POSIX-sh script. Only when the process
state cannot be read (no side channel, a remote host without ``/proc``, an ``ssh`` or
other remote client started by hand inside a local pane) does a documented prompt
pattern on the screen decide, and the result says so (``waiting_reason``).
"""

from __future__ import annotations

import os
import re
import shlex
import stat
import subprocess
import threading
from collections.abc import Callable, Iterable
from typing import NamedTuple

from sane import errors, procfs
from sane.protocol import fish
from sane.protocol.runner import (
    RUN_FD,
    RUN_FD_TARGET,
    RUN_SIGNAL_NUMBER,
    SHELL_FISH,
    SHELL_POSIX,
)
from sane.tmux import panes
from sane.tmux.control import ControlClient

REASON_TTY = "tty_read"
REASON_PATTERN = "prompt_pattern"
DEFAULT_QUIET_PERIOD = 0.3
SIDE_CHANNEL_TIMEOUT = 5.0

# Programs in a pane's foreground that stand for a process on another host: their own
# state says nothing about whether the remote command waits for input.
REMOTE_CLIENTS = frozenset({"ssh", "mosh-client", "telnet", "docker", "kubectl", "podman"})

# System call numbers by machine (``uname -m``): read-like, select-like, poll-like,
# epoll-like.
_READ, _SELECT, _POLL, _EPOLL = "read", "select", "poll", "epoll"
_SYSCALLS: dict[str, dict[int, str]] = {
    "x86_64": {
        0: _READ,
        19: _READ,
        17: _READ,
        295: _READ,
        23: _SELECT,
        270: _SELECT,
        7: _POLL,
        271: _POLL,
        232: _EPOLL,
        281: _EPOLL,
        441: _EPOLL,
    },
    "aarch64": {
        63: _READ,
        65: _READ,
        67: _READ,
        69: _READ,
        72: _SELECT,
        73: _POLL,
        22: _EPOLL,
        441: _EPOLL,
    },
}
_SYSCALLS["amd64"] = _SYSCALLS["x86_64"]
_SYSCALLS["arm64"] = _SYSCALLS["aarch64"]

# Used only when the process state cannot be read. Matched against the prompt text
# (the cursor's line up to the cursor, else the last non-empty line).
PROMPT_PATTERNS = (
    re.compile(r"(?i)(password|passphrase|passcode|pin)\b[^\n]*:\s*$"),
    re.compile(r"(?i)\((yes/no(/\[fingerprint\])?|y/n)\)\s*\??\s*$"),
    re.compile(r"(?i)\[y/n\]\s*[?:]?\s*$"),
    re.compile(r"^(>>>|\.\.\.|In \[\d+\]:) $"),
    re.compile(r"^(:|\(END\)|--More--.*|lines \d+-\d+.*)\s*$"),
    re.compile(r"[?:>] $"),
)


class Waiting(NamedTuple):
    """A run found waiting for input: how sane knows, the program, the prompt text."""

    reason: str
    program: str | None
    prompt: str


class Idle(NamedTuple):
    """The run's shell is back at its own prompt, outside sane's runner.

    ``kernel``: the process state says so. False when it cannot be read (no /proc,
    no side channel) and nothing on the screen looks like a prompt of the command:
    then only a prompt marker seen since the run began makes it idle.
    """

    kernel: bool
    prompt: str
    editor: str = ""  # the pane's @sane_editor: what empties its command line
    # The kind of shell found there (runner.SHELL_POSIX or SHELL_FISH) when the kernel
    # says which; empty if unknown. After an `exec fish` in a POSIX shell (or the
    # reverse) it is not the kind the runner was installed for: the status probe must
    # be in the new shell's syntax to be answered at all.
    shell: str = ""


class Proc(NamedTuple):
    """What the kernel says about one process of the foreground group."""

    pid: int
    comm: str
    syscalls: list[str]  # /proc/PID/task/*/syscall lines (the main thread first)
    fds: dict[int, str]  # fd -> readlink target
    epoll: dict[int, list[int]]  # epoll fd -> fds in its set
    caught: int | None = None  # SigCgt of /proc/PID/status: the signals it has handlers for
    # fds on a directory or regular file: always ready, so a blocked poll or select is
    # not waiting on them (fish keeps its working directory open).
    ready: frozenset[int] = frozenset()
    # Which exec of the pid this is: the last 9 digits of its stack's start (field 28 of
    # /proc/PID/stat, random per exec); None when unknown. See :func:`in_runner`.
    image: int | None = None


class Snapshot(NamedTuple):
    machine: str
    tty: str  # the shell's fd 0 target, e.g. /dev/pts/3
    procs: list[Proc]

    @property
    def readable(self) -> bool:
        """Could every process's system call and fds be read (permission, /proc)?"""
        return bool(self.procs) and all(p.syscalls and p.fds for p in self.procs)


# -- deciding --------------------------------------------------------------------------


def _is_tty(target: str, tty: str) -> bool:
    return target == "/dev/tty" or (bool(tty) and target == tty)


# Fds a program waits on beside its terminal that only wake it up and never bring input
# from anyone: eventfds (fish's line editor, a REPL's threads), a signalfd or timerfd,
# and the FIFO fish pokes when a universal variable changes. An allow-list.
_WAKEUP_TARGETS = frozenset(
    {"anon_inode:[eventfd]", "anon_inode:[signalfd]", "anon_inode:[timerfd]"}
)
_WAKEUP_SUFFIXES = ("/fish_universal_variables.notifier",)
# Fds that are always ready for reading: a poll or select that watched one would return
# at once, so a process blocked there is not waiting on it. sane's runner holds
# /dev/null open (RUN_FD) while a command runs; fish holds /dev/zero.
_NEVER_BLOCKING_TARGETS = frozenset({"/dev/null", "/dev/zero"})


def _could_block(proc: Proc, below: int | None = None) -> list[int]:
    """The open fds (under ``below``) a blocked poll or select may be watching."""
    return [
        fd
        for fd, target in proc.fds.items()
        if target not in _NEVER_BLOCKING_TARGETS
        and fd not in proc.ready
        and (below is None or fd < below)
    ]


def _only_tty_input(fds: Iterable[int], proc: Proc, ttys: set[int]) -> bool:
    """Are ``fds`` a terminal and, beside it, only wake-up fds?"""
    watched = list(fds)
    others = [proc.fds.get(fd, "") for fd in watched if fd not in ttys]
    return any(fd in ttys for fd in watched) and all(
        t in _WAKEUP_TARGETS or t.endswith(_WAKEUP_SUFFIXES) for t in others
    )


def _blocked_on_tty(
    proc: Proc,
    line: str,
    table: dict[int, str],
    tty: str,
    read_mem: Callable[[int, int, int], bytes | None],
) -> bool:
    fields = line.split()
    if len(fields) < 4 or not fields[0].isdigit():
        return False  # "running", or "-1 ..." (not in a system call)
    kind = table.get(int(fields[0]))
    try:
        args = [int(f, 16) for f in fields[1:7]]
    except ValueError:
        return False
    ttys = {fd for fd, target in proc.fds.items() if _is_tty(target, tty)}
    if not ttys:
        return False
    if kind == _READ:
        return args[0] in ttys
    if kind == _SELECT:
        return args[1] != 0 and _only_tty_input(_could_block(proc, args[0]), proc, ttys)
    if kind == _POLL:
        polled = _pollfds(proc.pid, args[0], args[1], read_mem)
        if polled is None:  # its pollfd array is out of reach (a remote host): any fd
            return _only_tty_input(_could_block(proc), proc, ttys)
        return _only_tty_input(polled, proc, ttys)
    if kind == _EPOLL:
        members = proc.epoll.get(args[0])
        return _only_tty_input(members or (), proc, ttys)
    return False


def _pollfds(
    pid: int, address: int, count: int, read_mem: Callable[[int, int, int], bytes | None]
) -> list[int] | None:
    """The fds a blocked ``poll`` watches for input, from its ``pollfd`` array."""
    if count <= 0 or count > 64:
        return None
    data = read_mem(pid, address, 8 * count)
    if data is None or len(data) != 8 * count:
        return None
    fds = []
    for i in range(count):
        fd = int.from_bytes(data[8 * i : 8 * i + 4], "little", signed=True)
        events = int.from_bytes(data[8 * i + 4 : 8 * i + 6], "little")
        if fd >= 0 and events & 0x1:  # POLLIN
            fds.append(fd)
    return fds


def waiting_process(
    snapshot: Snapshot, read_mem: Callable[[int, int, int], bytes | None] | None = None
) -> Proc | None:
    """The process of the foreground group that waits on the terminal, if any."""
    table = _SYSCALLS.get(snapshot.machine)
    if table is None:
        return None
    mem = read_mem or (lambda pid, address, size: None)
    for proc in snapshot.procs:
        if any(_blocked_on_tty(proc, line, table, snapshot.tty, mem) for line in proc.syscalls):
            return proc
    return None


def matches_prompt_pattern(prompt: str) -> bool:
    return any(p.search(prompt) for p in PROMPT_PATTERNS)


# -- reading /proc here ----------------------------------------------------------------


def _local_proc(pid: int) -> Proc | None:
    comm = procfs.read_text(f"/proc/{pid}/comm")
    if comm is None:
        return None
    syscalls = []
    try:
        tasks = sorted(os.listdir(f"/proc/{pid}/task"), key=lambda t: t != str(pid))
    except OSError:
        return None
    for task in tasks:
        line = procfs.read_text(f"/proc/{pid}/task/{task}/syscall")
        if line is not None:
            syscalls.append(line.strip())
    fds: dict[int, str] = {}
    epoll: dict[int, list[int]] = {}
    ready: set[int] = set()
    try:
        names = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        names = []
    for name in names:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{name}")
        except OSError:
            continue
        fds[int(name)] = target
        if target.startswith("/") and not target.startswith("/dev/") and _always_ready(pid, name):
            ready.add(int(name))
        if target == "anon_inode:[eventpoll]":
            info = procfs.read_text(f"/proc/{pid}/fdinfo/{name}") or ""
            epoll[int(name)] = [int(m) for m in re.findall(r"^tfd:\s*(\d+)", info, re.M)]
    caught = _caught(procfs.read_text(f"/proc/{pid}/status"))
    image = procfs.image(pid)
    return Proc(pid, comm.strip(), syscalls, fds, epoll, caught, frozenset(ready), image)


def _always_ready(pid: int, fd: str) -> bool:
    """Is the fd on a directory or regular file (poll and select call it ready)?"""
    try:
        mode = os.stat(f"/proc/{pid}/fd/{fd}").st_mode
    except OSError:
        return False
    return stat.S_ISDIR(mode) or stat.S_ISREG(mode)


def _caught(status: str | None) -> int | None:
    """The SigCgt mask of a /proc/PID/status text (None if absent)."""
    for line in (status or "").splitlines():
        if line.startswith("SigCgt:"):
            try:
                return int(line.split()[1], 16)
            except (IndexError, ValueError):
                return None
    return None


def local_snapshot(shell_pid: int) -> Snapshot | None:
    """The foreground group of the shell's terminal, read from this machine's /proc."""
    fields = procfs.stat_fields(shell_pid)
    if fields is None or len(fields) <= procfs.TPGID:
        return None
    tpgid = int(fields[procfs.TPGID])
    if tpgid <= 0:
        return None
    tty = _tty_path(int(fields[procfs.TTY]))
    members = [tpgid]  # the group leader first: usually the one that waits
    for pid in _group_candidates(shell_pid):
        if pid != tpgid:
            stat = procfs.stat_fields(pid)
            if stat is not None and len(stat) > procfs.PGRP and stat[procfs.PGRP] == str(tpgid):
                members.append(pid)
    procs = [p for p in map(_local_proc, members) if p is not None]
    return Snapshot(os.uname().machine, tty, procs)


def _tty_path(tty_nr: int) -> str:
    """The controlling terminal's path from ``stat``'s ``tty_nr`` (pseudo-terminals:
    majors 136-143); "" for anything else."""
    major = (tty_nr >> 8) & 0xFFF
    minor = (tty_nr & 0xFF) | ((tty_nr >> 12) & 0xFFF00)
    return f"/dev/pts/{(major - 136) * 256 + minor}" if 136 <= major <= 143 else ""


_PTY_MASTERS = frozenset({"/dev/ptmx", "/dev/pts/ptmx"})


def relayed_snapshot(snapshot: Snapshot) -> Snapshot | None:
    """The terminal behind a relay in the foreground, if there is one.

    A program holding a pty master (sudo's ``use_pty``, the default on Debian;
    ``script``; ``expect``) runs its command on a terminal of its own and copies the
    pane's keystrokes to it, so it is itself busy polling both: the command that
    waits is in the foreground of that inner terminal.
    """
    for proc in snapshot.procs:
        if not any(target in _PTY_MASTERS for target in proc.fds.values()):
            continue
        for pid in _group_candidates(proc.pid)[1:]:
            stat = procfs.stat_fields(pid)
            if stat is None or len(stat) <= procfs.TPGID or int(stat[procfs.TPGID]) <= 0:
                continue
            inner = _tty_path(int(stat[procfs.TTY]))
            if inner and inner != snapshot.tty:
                return local_snapshot(pid)
    return None


def _group_candidates(shell_pid: int) -> list[int]:
    """The shell and its descendants (where a foreground job lives), from the kernel's
    ``children`` lists: a few reads instead of one per process on the machine (~25 us
    each); every pid in /proc where those lists are missing."""
    found: list[int] = []
    todo = [shell_pid]
    while todo and len(found) < 4096:
        pid = todo.pop()
        found.append(pid)
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for task in tasks:
            text = procfs.read_text(f"/proc/{pid}/task/{task}/children")
            if text is None:
                return [int(name) for name in os.listdir("/proc") if name.isdigit()]
            todo.extend(int(child) for child in text.split())
    return found


def read_local_mem(pid: int, address: int, size: int) -> bytes | None:
    try:
        with open(f"/proc/{pid}/mem", "rb") as fh:
            fh.seek(address)
            return fh.read(size)
    except (OSError, ValueError, OverflowError):
        return None


# -- reading /proc on the other end of an ssh pane --------------------------------------

# Prints the same facts as local_snapshot, one per line: A machine; then per terminal
# G tty_nr, and per process of its foreground group P pid comm, C its SigCgt mask,
# I its exec image (stat field 28), S syscall line (per thread), F fd target, R fd on
# a directory or regular file, E epollfd member. Members are looked for
# among the shell's descendants (all of /proc without the kernel's children lists); behind a relay
# (a process holding a pty master) the inner terminal follows as another G block, up
# to three deep. Builtins only, but for uname and one `ls` per process: a few ms.
_REMOTE_SCRIPT = r"""
kids() { for t in /proc/$1/task/*; do c=; read -r c < $t/children  # no newline: status 1
  for k in $c; do echo $k; kids $k; done; done; }
snap() {
  sp=$1; depth=$2; read -r s < /proc/$sp/stat || return 0
  s=${s##*) }; set -- $s; tp=$6; tn=$5
  [ "$tp" -gt 0 ] 2>/dev/null || return 0
  echo "G $tn"
  if [ -r /proc/$sp/task/$sp/children ]; then all=$(kids $sp)
  else all=$(cd /proc && echo [0-9]*); fi
  relays=; first=1
  for m in $tp $all; do
    [ -z "$first" ] && [ "$m" = "$tp" ] && continue; first=
    read -r s < /proc/$m/stat 2>/dev/null || continue
    s=${s##*) }; set -- $s; [ "$3" = "$tp" ] || continue
    read -r c < /proc/$m/comm; echo "P $m $c"; echo "I ${26}"
    while read -r k v; do [ "$k" = SigCgt: ] && echo "C $v"; done < /proc/$m/status
    for t in /proc/$m/task/*; do read -r y < $t/syscall && echo "S $y"; done
    fds=$(LC_ALL=C ls -l /proc/$m/fd 2>/dev/null)  # one fork, not a readlink per fd
    IFS=$nl; set -f  # one word per line, never a glob ("socket:[4]")
    for line in $fds; do
      IFS=$sp0; case $line in *" -> "*) ;; *) continue;; esac
      l=${line#* -> }; f=${line% -> *}; f=${f##* }; echo "F $f $l"
      { [ -d /proc/$m/fd/$f ] || [ -f /proc/$m/fd/$f ]; } && echo "R $f"
      case $l in
        /dev/ptmx|/dev/pts/ptmx) relays="$relays $m";;
        *eventpoll*) while read -r k v r; do
          [ "$k" = tfd: ] && echo "E $f $v"; done < /proc/$m/fdinfo/$f;;
      esac
    done
    IFS=$sp0; set +f
  done
  [ "$depth" -lt 3 ] || return 0
  for r in $relays; do for k in $(kids $r); do
    read -r s < /proc/$k/stat 2>/dev/null || continue; s=${s##*) }; set -- $s
    if [ "$6" -gt 0 ] && [ "$5" != 0 ] && [ "$5" != "$tn" ]; then
      snap $k $((depth + 1)); return 0; fi
  done; done
}
sp0=$IFS; nl='
'
echo "A $(uname -m)"; snap "$1" 0
"""


def parse_remote(text: str) -> list[Snapshot]:
    """The terminals (the pane's first, then those behind relays) the script printed."""
    machine = ""
    found: list[tuple[str, list[Proc]]] = []
    for line in text.splitlines():
        tag, _, rest = line.partition(" ")
        rest = rest.strip() if tag != "P" else rest
        procs = found[-1][1] if found else None
        if tag == "A":
            machine = rest
        elif tag == "G" and rest.lstrip("-").isdigit():
            found.append((_tty_path(int(rest)), []))
        elif procs is None:
            continue
        elif tag == "P":
            pid, _, comm = rest.partition(" ")
            if pid.isdigit() and not any(p.pid == int(pid) for p in procs):
                procs.append(Proc(int(pid), comm, [], {}, {}))
        elif procs and tag == "S":
            procs[-1].syscalls.append(rest)
        elif procs and tag == "F":
            fd, _, target = rest.partition(" ")
            if fd.isdigit():
                procs[-1].fds[int(fd)] = target
        elif procs and tag == "C" and all(c in "0123456789abcdefABCDEF" for c in rest) and rest:
            procs[-1] = procs[-1]._replace(caught=int(rest, 16))
        elif procs and tag == "I" and rest.isdigit():
            procs[-1] = procs[-1]._replace(image=procfs.exec_image(int(rest)))
        elif procs and tag == "R" and rest.isdigit():
            procs[-1] = procs[-1]._replace(ready=procs[-1].ready | {int(rest)})
        elif procs and tag == "E":
            fd, _, member = rest.partition(" ")
            if fd.isdigit() and member.isdigit():
                procs[-1].epoll.setdefault(int(fd), []).append(int(member))
    if not machine:
        return []
    return [Snapshot(machine, tty, procs) for tty, procs in found if procs]


def remote_snapshots(
    side_channel: str, host_pid: int, timeout: float = SIDE_CHANNEL_TIMEOUT
) -> list[Snapshot]:
    """The remote terminals' foreground groups, through the pane's ssh side channel
    (none when the remote /proc cannot be read)."""
    try:
        argv = shlex.split(side_channel)
    except ValueError:
        return []
    command = f"sh -c {shlex.quote(_REMOTE_SCRIPT)} sane-probe {host_pid}"
    try:
        proc = subprocess.run(
            [*argv, command],
            capture_output=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return []
    if proc.returncode != 0:
        return []
    return parse_remote(proc.stdout.decode("utf-8", "replace"))


# -- the prober a follow loop uses -----------------------------------------------------

_INFO_FIELDS = (
    "pane_pid",
    "pane_current_command",
    "cursor_x",
    "cursor_y",
    panes.OPT_HOST_PID,
    panes.OPT_SIDE_CHANNEL,
    panes.OPT_EDITOR,
    panes.OPT_SHELL_IMAGE,
)
_INFO = panes.format_of(_INFO_FIELDS)


REMOTE_PROBES_AT_ONCE = 4
_remote_probes = threading.BoundedSemaphore(REMOTE_PROBES_AT_ONCE)


def probe(
    client: ControlClient, pane_id: str, timeout: float = SIDE_CHANNEL_TIMEOUT
) -> Waiting | Idle | None:
    """Does the command in ``pane_id`` wait for terminal input right now, or is its
    shell back at the prompt (:class:`Idle`)? ``timeout`` bounds an ssh pane's
    side-channel call."""
    try:
        return _probe(client, pane_id, timeout)
    except errors.SaneError:
        return None


def local_snapshots(shell_pid: int) -> list[Snapshot]:
    """The pane's terminal, then the terminals behind relays in it (three at most)."""
    found: list[Snapshot] = []
    snapshot = local_snapshot(shell_pid)
    while snapshot is not None and len(found) < 4:
        found.append(snapshot)
        snapshot = relayed_snapshot(snapshot)
    return found


def _probe(client: ControlClient, pane_id: str, timeout: float) -> Waiting | Idle | None:
    lines = client.command(f"display-message -p -t {pane_id} '{_INFO}'")
    try:
        records = panes.split_records(lines, len(_INFO_FIELDS))
    except ValueError:
        return None
    fields = records[0] if records else []
    if len(fields) != len(_INFO_FIELDS) or not fields[0].isdigit():
        return None
    pane_pid, current, cx, cy, host_pid, side, editor, image = fields
    # The shell that holds sane's runner: its pid on its own host (READY's $$).
    shell_pid = int(host_pid) if host_pid.isdigit() else int(pane_pid)
    read_mem: Callable[[int, int, int], bytes | None] | None = None
    if side and current == "ssh":
        # A process on each host: at most REMOTE_PROBES_AT_ONCE at a time in this
        # process (a fleet's quiet panes would otherwise start hundreds at once); a
        # probe that finds them all busy knows nothing yet and is asked again later.
        if not _remote_probes.acquire(blocking=False):
            return None
        try:
            snapshots = remote_snapshots(side, int(host_pid), timeout) if host_pid.isdigit() else []
        finally:
            _remote_probes.release()
    else:
        snapshots = local_snapshots(int(pane_pid))
        read_mem = read_local_mem
    for depth, snapshot in enumerate(snapshots):
        proc = waiting_process(snapshot, read_mem)
        if proc is None:
            continue
        prompt = _prompt(client, pane_id, cx, cy)
        if depth == 0 and proc.pid == shell_pid and not in_runner(proc, image):
            return Idle(True, prompt, editor, SHELL_FISH if proc.comm == "fish" else SHELL_POSIX)
        return Waiting(REASON_TTY, proc.comm, prompt)
    if (
        snapshots
        and snapshots[0].readable
        and not _only_remote_clients(p.comm for p in snapshots[0].procs[:1])
    ):
        return None  # the kernel says: not waiting on the terminal
    # The process state cannot tell: fall back to the screen.
    prompt = _prompt(client, pane_id, cx, cy)
    if matches_prompt_pattern(prompt):
        return Waiting(REASON_PATTERN, None, prompt)
    return Idle(False, prompt, editor)


def in_runner(proc: Proc, image: str = "") -> bool:
    """Is sane's runner on the shell's call stack (its fd open)? fish opens the
    runner's redirection at an fd of its choosing: there the target tells. ``image``:
    the pane's recorded exec image of the runner's shell (``@sane_shell_image``)."""
    # RUN_FD survives exec; the runner's caught RUN_SIGNAL does not: a shell that
    # exec'd another (`exec bash`, `exec fish`) is a new shell at its own prompt, not
    # the runner. (fish's runner catches it for good: at its prompt the fd is shut.)
    # ksh93 catches RUN_SIGNAL itself from its start (nearly every signal): there the
    # exec image tells, recorded at takeover and new with every exec.
    if image.isdigit() and proc.image is not None and proc.image != int(image):
        return False
    caught = proc.caught is None or bool(proc.caught >> (RUN_SIGNAL_NUMBER - 1) & 1)
    if proc.comm == "fish":
        return fish.RUN_TARGET in proc.fds.values() and caught
    return proc.fds.get(RUN_FD) == RUN_FD_TARGET and caught


def _prompt(client: ControlClient, pane_id: str, cx: str, cy: str) -> str:
    """The cursor's line up to the cursor (trailing spaces kept: ``Name? ``)."""
    if not (cx.isdigit() and cy.isdigit()):
        return ""
    lines = client.command(f"capture-pane -p -N -t {pane_id} -S {cy} -E {cy}")
    return lines[-1][: int(cx)] if lines else ""


def _only_remote_clients(comms: Iterable[str]) -> bool:
    names = list(comms)
    return bool(names) and all(name in REMOTE_CLIENTS for name in names)
