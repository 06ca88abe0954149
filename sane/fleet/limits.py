"""The local limits a big fleet runs into, checked before a pane is made, so a server
that cannot get one fails alone with ``resource_limit`` naming the limit and its value
(never a hang, an ``internal_error`` or an unexplained ``unreachable``).

What a server's pane costs here (measured, issue 17): in the tmux server its pty
master (about 2 descriptors per pane in all); in sane's process a few descriptors
for the moments it runs an ssh beside the pane; one pseudo-terminal of the host's
``/proc/sys/kernel/pty/max``. tmux out of descriptors stops answering (its clients
hang; tmux 3.3a was seen to crash later), and tmux out of ptys says only "fork
failed": both are cheaper to see coming than to diagnose after.
"""

from __future__ import annotations

import contextlib
import os
import resource
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING

from sane import errors

if TYPE_CHECKING:
    from sane.ops.context import Context

# Descriptors one more pane takes in the tmux server (its pty master and what tmux
# keeps beside it: 1.71 per server measured with 1,000 connected, bench_scale
# --parts resources), and what tmux keeps for itself on top (socket, log, clients).
TMUX_FDS_PER_PANE = 2
TMUX_RESERVE = 8
# Descriptors sane's process needs at once per server being connected (an ssh beside
# the pane: three pipes; its pane lock), and for itself beyond what it has open (a
# state file, a lock file, a /proc read): see room_to_connect.
SANE_FDS_PER_SERVER = 6
SANE_RESERVE = 8
PTY_MAX = "/proc/sys/kernel/pty/max"
PTY_NR = "/proc/sys/kernel/pty/nr"

_pids: dict[object, int] = {}
_pids_lock = threading.Lock()
_own_limit_raised = False


def open_files_limit(pid: int | str = "self") -> int | None:
    """The soft ``nofile`` limit of process ``pid`` (None when unreadable)."""
    try:
        with open(f"/proc/{pid}/limits", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Max open files"):
                    soft = line.split()[3]
                    return None if soft == "unlimited" else int(soft)
    except (OSError, ValueError, IndexError):
        return None
    return None


def open_files(pid: int | str = "self") -> int | None:
    """How many descriptors process ``pid`` has open (None when unreadable)."""
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


def raise_own_open_files_limit() -> None:
    """Lift sane's soft ``nofile`` to its hard limit (what the system allows this
    process anyway): the common soft 1024 would otherwise end a fleet of ~150 (an ssh
    beside each server's pane holds ~6). Called by every fleet operation; once."""
    global _own_limit_raised
    if _own_limit_raised:
        return
    _own_limit_raised = True
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        with contextlib.suppress(OSError, ValueError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _tmux_pid(ctx: Context) -> int | None:
    """The tmux server's pid (asked once per server and process; asked again when that
    process is gone)."""
    key = ctx.server
    with _pids_lock:
        pid = _pids.get(key)
    if pid is not None and os.path.exists(f"/proc/{pid}"):
        return pid
    try:
        pid = int(ctx.tmux(["display-message", "-p", "#{pid}"])[0])
    except (errors.SaneError, ValueError, IndexError):
        return None
    with _pids_lock:
        _pids[key] = pid
    return pid


def _read_int(path: str) -> int | None:
    try:
        with open(path, encoding="ascii") as fh:
            return int(fh.read().strip())
    except (OSError, ValueError):
        return None


def devpts_room(pid: int) -> tuple[int, int] | None:
    """(``max=``, ptys in use) of the devpts instance process ``pid`` sees at
    ``/dev/pts``, when that instance has a ``max=`` of its own (a container's, a mount
    namespace's: the kernel's ``pty/max`` is not what stops it then); else None."""
    try:
        with open(f"/proc/{pid}/mountinfo", encoding="utf-8", errors="replace") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return None
    limit: int | None = None
    for line in lines:  # mounts stacked on /dev/pts: the last one is what it sees
        fields, _, fs = line.partition(" - ")
        if fields.split(" ")[4:5] == ["/dev/pts"] and fs.startswith("devpts "):
            words = fs.split(" ")
            options = words[2].split(",") if len(words) > 2 else []
            sizes = [o[4:] for o in options if o.startswith("max=")]
            limit = int(sizes[0]) if sizes and sizes[0].isdigit() else None
    if limit is None:
        return None
    try:
        used = sum(entry.isdigit() for entry in os.listdir(f"/proc/{pid}/root/dev/pts"))
    except OSError:
        return None
    return limit, used


def check_room_for_pane(ctx: Context, name: str) -> None:
    """Raise ``resource_limit`` if one more pane (for server ``name``) would pass the
    tmux server's open-files limit or the host's pseudo-terminals (sane's own
    descriptors: ``room_to_connect``)."""
    pid = _tmux_pid(ctx)
    if pid is not None:
        limit, used = open_files_limit(pid), open_files(pid)
        if (
            limit is not None
            and used is not None
            and used + TMUX_FDS_PER_PANE + TMUX_RESERVE > limit
        ):
            raise _tmux_out_of_files(
                name,
                pid,
                f"the tmux server has {used} of its {limit} open files in use: no room "
                "for another pane",
                limit,
                used,
            )
        room = devpts_room(pid)
        if room is not None and room[1] + 1 > room[0]:
            raise _devpts_full(name, pid, room, "no room for another pseudo-terminal")
    limit, used = _read_int(PTY_MAX), _read_int(PTY_NR)
    if limit is not None and used is not None and used + 1 > limit:
        raise errors.ResourceLimit(
            f"{name}: all {limit} pseudo-terminals of this host are in use (pty/max)",
            server=name,
            limit="pty/max",
            value=limit,
            in_use=used,
            hint=f"raise {PTY_MAX} (sysctl kernel.pty.max) or close panes",
        )


_room = threading.Condition()
_connecting = 0  # servers between room_to_connect's check and their pane's readiness


@contextlib.contextmanager
def room_to_connect(name: str) -> Iterator[None]:
    """Hold a share of sane's own descriptors while server ``name`` is connected: wait
    for one when the others connecting use them; ``resource_limit`` naming ``nofile``
    only when this server alone cannot fit (none other connecting).

    Why a budget: the check per server read /proc/self/fd, so 50 threads of
    ``--max-parallel 50`` passed it at once and then ran out (EMFILE); and its fixed
    reserve of 32 refused every server below about 40 open files, even one at a
    time. Here the check and the share taken are one step under a lock; a share is
    counted on top of what is open already (a server's own descriptors may be both),
    which only makes servers wait a little sooner."""
    global _connecting
    raise_own_open_files_limit()
    limit = open_files_limit()
    with _room:
        while limit is not None and (used := open_files()) is not None:
            if used + (_connecting + 1) * SANE_FDS_PER_SERVER + SANE_RESERVE <= limit:
                break
            if _connecting == 0:
                raise errors.ResourceLimit(
                    f"{name}: sane has {used} of its {limit} open files in use, and needs "
                    f"{SANE_FDS_PER_SERVER} to connect a server and {SANE_RESERVE} more "
                    "free (nofile)",
                    server=name,
                    limit="nofile",
                    value=limit,
                    in_use=used,
                    process="sane",
                    hint="raise ulimit -n",
                )
            _room.wait()
        _connecting += 1
    try:
        yield
    finally:
        with _room:
            _connecting -= 1
            _room.notify_all()


def _tmux_out_of_files(
    name: str, pid: int | None, what: str, limit: int | None, used: int | None
) -> errors.ResourceLimit:
    """``resource_limit`` naming the tmux server's ``nofile``: its value, its use and
    its pid (what to raise it with) where they could be read."""
    return errors.ResourceLimit(
        f"{name}: {what} (nofile)",
        server=name,
        limit="nofile",
        value=limit,
        in_use=used,
        process="tmux" if pid is None else f"tmux (pid {pid})",
        hint=f"raise the tmux server's limit (prlimit --pid {pid or 'PID'} --nofile=N:N, "
        "or ulimit -n before it starts: it needs about 2 per pane) or close panes",
    )


def from_tmux_failure(exc: errors.TmuxError, name: str, ctx: Context) -> errors.SaneError:
    """tmux's own words about a window it could not make, with the limit named when
    it is one: out of descriptors (``nofile``) or of pseudo-terminals (the devpts
    instance the tmux server sees, or the host's ``pty/max``: see ``pty_limit``)."""
    low = exc.message.lower()
    if "too many open files" in low:
        # The limit tmux hit, its value and use read as the check before reads them.
        # Before, value None and process "tmux": nothing to raise, nor whose.
        pid = _tmux_pid(ctx)
        return _tmux_out_of_files(
            name,
            pid,
            f"tmux could not open a pane: {exc.message}",
            None if pid is None else open_files_limit(pid),
            None if pid is None else open_files(pid),
        )
    if "no space left on device" in low or "out of pty" in low or "openpty" in low:
        return pty_limit(ctx, name, exc.message)
    return exc


def pty_limit(ctx: Context, name: str, said: str) -> errors.ResourceLimit:
    """``resource_limit`` for a pseudo-terminal tmux could not open, naming the limit
    it hit: its devpts instance's own ``max=`` (a container's, a mount namespace's)
    unless the host's ``pty/max`` is the one that is full. Before, it always named
    the host's (4096) though tmux had hit its devpts' max of 4: the check before a
    pane is made sees the devpts, but a pty taken between that check and the window
    (another program, another sane) reached tmux's own limit first."""
    pid = _tmux_pid(ctx)
    room = devpts_room(pid) if pid is not None else None
    host_limit, host_used = _read_int(PTY_MAX), _read_int(PTY_NR)
    host_full = host_limit is not None and host_used is not None and host_used >= host_limit
    if pid is not None and room is not None and (room[1] >= room[0] or not host_full):
        return _devpts_full(name, pid, room, f"tmux could not open a pseudo-terminal: {said}")
    return errors.ResourceLimit(
        f"{name}: tmux could not open a pseudo-terminal: {said} (pty/max: "
        f"{host_used} of {host_limit} in use)",
        server=name,
        limit="pty/max",
        value=host_limit,
        in_use=host_used,
        hint=f"raise {PTY_MAX} (sysctl kernel.pty.max) or close panes",
    )


def _devpts_full(name: str, pid: int, room: tuple[int, int], what: str) -> errors.ResourceLimit:
    """``resource_limit`` naming the ``max=`` of the devpts the tmux server sees."""
    return errors.ResourceLimit(
        f"{name}: {what}: {room[1]} of the {room[0]} pseudo-terminals of the tmux "
        "server's devpts are in use (devpts max)",
        server=name,
        limit="devpts max",
        value=room[0],
        in_use=room[1],
        process=f"tmux (pid {pid})",
        hint="the devpts the tmux server sees was mounted with max=N: mount it "
        "with a larger max=, or close panes",
    )


def spawn_failure(exc: OSError, name: str) -> errors.SaneError | None:
    """``resource_limit`` for a process sane could not start for server ``name``
    because a limit was reached (its pipes or the fork itself), naming the limit and
    its value; None for any other failure (the caller's own handling applies)."""
    import errno

    if exc.errno == errno.EMFILE:
        return errors.out_of_files(
            exc, f"{name}: sane could not start ssh", server=name, in_use=open_files()
        )
    if exc.errno == errno.ENFILE:
        return errors.out_of_files(exc, f"{name}: sane could not start ssh", server=name)
    if exc.errno == errno.EAGAIN:
        soft, _ = resource.getrlimit(resource.RLIMIT_NPROC)
        return errors.ResourceLimit(
            f"{name}: sane could not start ssh: {exc.strerror} (nproc)",
            server=name,
            limit="nproc",
            value=None if soft == resource.RLIM_INFINITY else soft,
            process="sane",
            hint="raise ulimit -u (processes per user), or lower --max-parallel",
        )
    return None
