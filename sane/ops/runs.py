"""Run a command in a pane and report exactly what happened.

One run: claim the pane (the ``@sane_run`` pane option, set atomically with
``set-option -o``), make sure the runner is installed, type one short line (or paste
a heredoc for long commands), then follow the pane's byte stream from the control
client until this run's end marker, the shell's exit, C-c's prompt, or the deadline.

A run still going at its deadline is handed over to later invocations: the pane's
output from that instant on is appended to a file by ``pipe-pane``, started through
the same control client, so tmux's ordering of ``%output`` before the command's reply
splits the stream exactly between what this process saw and what the file holds.
``run_wait`` / ``run_interrupt`` (any process, later) rebuild the stream from both
and return the rest of the output, nothing lost or repeated.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

from sane import errors
from sane.ops.context import Context
from sane.ops.holder import Holder, claim_line, release_line, run_of
from sane.ops.takeover import (
    PaneDied,
    ensure_runner,
    install_runner,
    respawn,
    runner_ready,
    tokens_of,
)
from sane.poll import poll
from sane.protocol import markers, output
from sane.protocol import scanner as sc
from sane.protocol.runner import SHELL_POSIX, RunInput, exit_status
from sane.protocol.runner import run_input as frame_command
from sane.tmux import panes
from sane.tmux.command import no_formats, quote
from sane.tmux.control import ControlClient, PaneStream

if TYPE_CHECKING:
    import threading
    from pathlib import Path

    from sane.models import RunResult, RunStatus
    from sane.ops.prompts import Waiting

# Imported lazily below (sane.paths, sane.state, shutil): only timeouts and truncation
# touch files, and a one-shot CLI run must not pay for pathlib/tempfile imports.

# While a pane is quiet, how often to check that it is still alive. Output wakes the
# waiter at once; this only bounds how late a silently dead pane is noticed.
LIVENESS_INTERVAL = 0.25
INTERRUPT_GRACE = 5.0
EXIT_SETTLE = 5.0
DEFAULT_MAX_OUTPUT = 1 << 20
# A run quiet this long is asked whether it waits for terminal input (sane.ops.prompts).
DEFAULT_QUIET_PERIOD = 0.3
# After a probe that found no prompt, the next one waits for a quiet stretch twice as
# long, up to this: a long quiet command is probed about once a second.
MAX_PROBE_GAP = 1.0
# An ssh pane's probe runs a process on both hosts (over the pane's ControlMaster):
# asked after this much quiet, then at most this far apart (issue 17: at 1 s, 400
# quiet servers cost a process each per second and `sleep 1` took 4 s).
REMOTE_QUIET_PERIOD = 2.0
MAX_REMOTE_PROBE_GAP = 8.0
# After sane sent C-c, the shell is asked about sooner: it is expected back at its prompt.
INTERRUPT_QUIET = 0.05


OutputHook = Callable[[ControlClient, str, sc.RunScanner], None]


class RunOptions(NamedTuple):
    timeout: float = 30.0
    interrupt_on_timeout: bool = False
    keep_ansi: bool = False
    max_output: int | None = DEFAULT_MAX_OUTPUT
    interrupt_grace: float = INTERRUPT_GRACE
    # Called after each chunk of output while the run is followed in-process: lets an
    # operation talk to its own command (create-file pastes its data on a marker).
    on_output: OutputHook | None = None
    # Quiet this many seconds, the run is checked for a prompt (``waiting_input``);
    # None or 0: never.
    quiet_period: float | None = DEFAULT_QUIET_PERIOD
    # The run's id, when the caller must know it before the run starts (a deploy
    # journals it first, so a crash mid-run can still find the run's record).
    run_id: str | None = None
    # Record the run, and pipe the pane's output to the record, before the command is
    # typed: if this process is killed mid-run, another can still `run_wait` it and
    # learn its exact output and exit code. Costs a pipe-pane and a record per run.
    durable: bool = False
    # Set from another thread to stop following the run at once and hand it over, as
    # at a timeout but never interrupted (an MCP call cancelled by its client, or a
    # run_wait of the same run from another call): the run stays resumable.
    stop: threading.Event | None = None
    # Who the run belongs to (a deploy: its id, step, server), kept in the run's record
    # so another caller finding the pane busy can be told, and not interrupt it blindly.
    owner: dict[str, str] | None = None
    # The command is a POSIX sh script (sane's own, like create-file's): in a shell of
    # another kind (fish) it runs through `sh -c`, a child of that shell.
    posix_script: bool = False


def runs_dir(ctx: Context) -> Path:
    return ctx.home / "runs"


def new_run_id() -> str:
    return "r" + os.urandom(6).hex()


# -- the busy flag ---------------------------------------------------------------------


def _mine(ctx: Context, run_id: str) -> Holder:
    return Holder.mine(run_id, str(ctx.home))


def _claim(ctx: Context, client: ControlClient, state: panes.PaneState, run_id: str) -> None:
    line = claim_line(state.pane_id, _mine(ctx, run_id))
    try:
        client.command(line)
        return
    except errors.TmuxError as exc:
        if "already set" not in exc.message:
            raise
    holder = ctx.pane_state(state.pane_id).run_id
    if holder is not None and _stale(ctx, holder):
        if _has_record(ctx, holder):
            client.command(*unpipe(state.pane_id))
            if _left_shell_exiting(ctx, holder):
                _acknowledge_exit(ctx, client, state.pane_id)
        _release(client, state.pane_id, holder)
        try:
            client.command(line)
            return
        except errors.TmuxError as exc:
            if "already set" not in exc.message:
                raise
            holder = ctx.pane_state(state.pane_id).run_id
    busy_id = run_of(holder)
    raise errors.PaneBusy(
        f"pane {state.pane_id} is running another command (run {busy_id}); "
        "wait for it (sane run wait) or interrupt it (sane run interrupt)",
        pane=state.pane_id,
        run_id=busy_id,
    )


def _release(
    client: ControlClient, pane_id: str, value: str, note: RunResult | None = None
) -> None:
    """Clear the busy flag if it still holds ``value``: an error path never clears a
    flag some other run holds. ``note``: the run's result, remembered in the pane
    (:func:`find_done`)."""
    with contextlib.suppress(errors.SaneError):  # the pane is gone: nothing to release
        current = client.command(f"display-message -p -t {pane_id} '#{{{panes.OPT_RUN}}}'")
        if current and current[0] == value:
            client.command(release_line(pane_id), *_note_done(pane_id, note))


def _piped_note(pane_id: str, run_id: str) -> str:
    """Marks the pane's pipe-pane as sane's (for that run), in the line that starts it."""
    return f"set-option -p -t {pane_id} {panes.OPT_PIPED} {run_id}"


def unpipe(pane_id: str) -> list[str]:
    """Stop the pane's pipe and its mark. tmux refuses pipe-pane on a dead pane and
    skips the rest of the line, so the mark then stays: the pipe, which respawn-pane
    keeps, is stopped once the pane lives again (:func:`sane.ops.takeover.respawn`)."""
    return [f"pipe-pane -t {pane_id}", f"set-option -p -u -t {pane_id} {panes.OPT_PIPED}"]


# Finished runs, newest first, in the pane option OPT_DONE: ``run_id:status:code:
# exited:bytes:ms;`` entries. tmux itself prepends each (``set-option -F``, in the same
# line that clears the busy flag: no extra round trip) and keeps the first DONE_LIMIT
# characters, so about the last ten runs of each pane stay known without a file.
DONE_LIMIT = 400


def _note_done(pane_id: str, result: RunResult | None) -> list[str]:
    """The tmux command that remembers a run that ended within its call (none if the
    result could not be built)."""
    if result is None:
        return []
    code = "" if result["exit_code"] is None else str(result["exit_code"])
    entry = (
        f"{result['run_id']}:{result['status']}:{code}:{int(result['shell_exited'])}:"
        f"{result['output_start'] + result['output_bytes']}:{round(result['duration_ms'])};"
    )
    return [
        f"set-option -p -F -t {pane_id} {panes.OPT_DONE} "
        f"'{entry} #{{={DONE_LIMIT}:{panes.OPT_DONE}}}'"
    ]


class DoneRun(NamedTuple):
    """A run that ended within its call, as its pane remembers it."""

    pane: str
    status: RunStatus
    exit_code: int | None
    shell_exited: bool
    output_bytes: int
    duration_ms: int


def parse_done(pane_id: str, value: str, run_id: str) -> DoneRun | None:
    """``run_id``'s entry in a pane's OPT_DONE value (a cut-off entry is ignored)."""
    for entry in value.split():
        fields = entry.split(":")
        if len(fields) != 6 or fields[0] != run_id or not entry.endswith(";"):
            continue
        status, code, exited, size, ms = fields[1], fields[2], fields[3], fields[4], fields[5][:-1]
        if (
            status in ("completed", "interrupted", "lost")
            and size.isdigit()
            and ms.isdigit()
            and (code == "" or code.isdigit())
        ):
            return DoneRun(
                pane_id,
                status,  # type: ignore[arg-type]
                int(code) if code else None,
                exited == "1",
                int(size),
                int(ms),
            )
    return None


def find_done(ctx: Context, run_id: str) -> DoneRun | None:
    """Look for ``run_id`` among the finished runs the panes of this tmux server keep."""
    try:
        lines = ctx.tmux(["list-panes", "-a", "-F", f"#{{pane_id}}\t#{{{panes.OPT_DONE}}}"])
    except errors.SaneError:
        return None
    for line in lines:
        pane_id, _, value = line.partition("\t")
        if run_id in value:
            found = parse_done(pane_id, value, run_id)
            if found is not None:
                return found
    return None


def _runs_of(ctx: Context, holder: Holder) -> Path:
    """The runs directory of the home that owns ``holder``'s run."""
    from pathlib import Path

    return Path(holder.home) / "runs" if holder.home else runs_dir(ctx)


def _stale(ctx: Context, value: str) -> bool:
    """Is the busy flag left over from a run that is provably over?

    Decided from the owner's own home (the flag names it), whichever home asks: the
    run's record says it ended, or it has no record and the process that claimed the
    flag is gone (it died inside its first call). A record that cannot be read
    proves nothing: the pane stays busy (its command may well be running)."""
    holder = Holder.parse(value)
    root = _runs_of(ctx, holder)
    if (root / holder.run_id / "record.json").exists():
        try:
            return run_finished(ctx, holder.run_id, root)
        except errors.SaneError:
            return False
    # No record: the owner is still inside its first call, unless it died.
    return not (holder.pid is not None and _pid_alive(holder.pid))


def _left_shell_exiting(ctx: Context, value: str) -> bool:
    """Did that run end in ``exit``, its shell still waiting for sane's keypress?"""
    holder = Holder.parse(value)
    root = _runs_of(ctx, holder)
    try:
        rec = _load_record(ctx, holder.run_id, root)
        scanner, _, _ = _replay(ctx, rec, root)
    except (errors.SaneError, OSError):
        return False
    outcome = scanner.outcome
    return outcome is not None and outcome.kind == sc.OUTCOME_EXITED and not rec.get("final")


def _has_record(ctx: Context, value: str) -> bool:
    """Whether the flag's run was handed over (its pipe-pane feeds its record)."""
    holder = Holder.parse(value)
    return (_runs_of(ctx, holder) / holder.run_id / "record.json").exists()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def pane_busy(ctx: Context, holder: str | None) -> bool:
    return holder is not None and not _stale(ctx, holder)


# -- sending ---------------------------------------------------------------------------


def _send(
    client: ControlClient, pane_id: str, typed: RunInput, nonce: str, claim: str | None
) -> None:
    """Type the run's input; with ``claim``, in the same tmux line as the claim, so a
    pane that is busy never receives a keystroke."""
    first = [claim] if claim is not None else []
    # `copy-mode -q` (a no-op unless the pane is in a mode) in the same line: a person
    # scrolling back in the pane a moment ago must not receive the keys.
    first.append(f"copy-mode -q -t {pane_id}")
    if typed.kind == "keys":
        client.command(*first, f"send-keys -t {pane_id} {quote(typed.text)} Enter")
    else:
        buffer = f"sane-{nonce}"
        client.command(
            *first,
            f"set-buffer -b {buffer} {quote(typed.text)}",
            f"paste-buffer -d -b {buffer} -t {pane_id}",
        )


# -- following -------------------------------------------------------------------------


class _Follow(NamedTuple):
    """How waiting ended: a marker outcome, the deadline, a prompt, or the pane's death."""

    kind: str  # "outcome" | "timeout" | "waiting" | "dead" | "lost" | "cancelled" (Ctrl-C)
    state: panes.PaneState | None = None
    waiting: Waiting | None = None
    # "lost" with the run's end seen live though its recording had died: the status
    # the shell reported, and whether the command ended the shell.
    code: int | None = None
    exited: bool = False


class _QuietWatch:
    """When to ask whether a quiet run waits for terminal input.

    Nothing is asked (no import, no tmux command, no /proc read) before the run has
    printed nothing for the quiet period, so a run that ends sooner pays nothing.
    After a probe that found no prompt the next one needs a quiet stretch twice as
    long (up to MAX_PROBE_GAP); any output starts over.
    """

    def __init__(self, client: ControlClient, pane_id: str, quiet: float | None) -> None:
        self.client = client
        self.pane_id = pane_id
        self.quiet = quiet or 0.0
        self.gap = self.quiet
        self.due = time.monotonic() + self.quiet if self.quiet > 0 else float("inf")
        self.remote: bool | None = None  # an ssh pane (its probe is a process): known later

    def output(self) -> None:
        if self.quiet > 0:
            self.gap = self._first_gap()
            self.due = time.monotonic() + self.gap

    def _first_gap(self) -> float:
        return max(self.quiet, REMOTE_QUIET_PERIOD) if self.remote else self.quiet

    def _learn_remote(self) -> bool:
        """Whether this is an ssh pane (it has a side channel): asked once, at the first
        quiet stretch, so a run that ends sooner never asks. An ssh pane's first
        probe then waits for REMOTE_QUIET_PERIOD of quiet in all: a fleet's quiet
        ``sleep 1`` starts no process at all."""
        try:
            side = self.client.command(
                f"display-message -p -t {self.pane_id} '#{{{panes.OPT_SIDE_CHANNEL}}}'"
            )
        except errors.SaneError:
            side = []
        self.remote = bool(side and side[0])
        if self.remote:
            began = self.due - self.gap
            self.gap = self._first_gap()
            self.due = began + self.gap
        return time.monotonic() >= self.due

    def wait_time(self, now: float) -> float:
        return max(0.0, self.due - now)

    def check(self, scanner: sc.RunScanner, deadline: float) -> Waiting | None:
        """Probe if the quiet stretch is over and the command is running.

        A shell found back at its own prompt (C-c, an error that aborted the runner)
        is asked for the status the run left, with a probe line carrying a fresh
        nonce: the run ends on that marker (or on its own end marker, should it have
        been on its way), never on anything the shell or the command could print."""
        now = time.monotonic()
        if now < self.due:
            return None
        if not scanner.started or scanner.exit_pending():
            # Nothing to ask yet: ask again a quiet stretch later. (Leaving ``due`` in
            # the past made the caller's wait zero: a run whose start marker was late
            # spun, asking tmux about its pane in a loop; 400 servers under load sent
            # 34,000 such commands and starved tmux until most runs timed out.)
            self.due = now + max(self.gap, self.quiet)
            return None
        if self.remote is None and not self._learn_remote():
            return None
        from sane.ops.prompts import Idle, probe

        # An ssh pane's probe is a side-channel call: keep it within the run's time.
        found = probe(self.client, self.pane_id, max(0.5, min(5.0, deadline - now)))
        waiting: Waiting | None = None
        if isinstance(found, Idle):
            if found.kernel or scanner.prompt_seen:
                self._ask_status(scanner)
        elif found is not None:
            waiting = found
            # The shell itself blocked in a read may be its `read` builtin, or a
            # program's read right before it exits, its output still on its way
            # through tmux. tmux sends a pane's output in order with command replies:
            # one more round trip lets output that was written before the probe arrive.
            with contextlib.suppress(errors.SaneError):
                self.client.command(f"display-message -p -t {self.pane_id} ''")
        if waiting is None:
            self.gap = min(self.gap * 2, MAX_REMOTE_PROBE_GAP if self.remote else MAX_PROBE_GAP)
            self.due = time.monotonic() + self.gap
        else:
            waiting = waiting._replace(prompt=_own_prompt(waiting.prompt, scanner))
        return waiting

    def _ask_status(self, scanner: sc.RunScanner) -> None:
        from sane.protocol.runner import status_probe

        nonce = markers.new_nonce()
        scanner.expect_status(nonce)
        with contextlib.suppress(errors.SaneError):
            self.client.command(
                f"send-keys -t {self.pane_id} -l -- {quote(status_probe(nonce, scanner.shell))}",
                f"send-keys -t {self.pane_id} Enter",
            )


def _own_prompt(screen: str, scanner: sc.RunScanner) -> str:
    """The prompt as the run printed it.

    The screen's cursor line may start with text that is not the run's (the shell's
    own prompt, drawn after sane's typed line was echoed ahead: ``$ Token: ``): keep
    the part the run printed when the line ends with it. Nothing left of the cursor
    (``echo 'Continue?'; read a``): the run's own last non-empty line, never the
    screen above it (which may hold sane's typed line). Full-screen programs (a
    pager) draw with cursor moves: the screen's line is the better answer there.
    """
    text = output.clean(scanner.region()[-4096:]).decode("utf-8", "replace")
    tail = text.rsplit("\n", 1)[-1].rsplit("\r", 1)[-1]
    if tail.strip() and screen.endswith(tail):
        return tail
    if screen.strip():
        return screen
    return next((x for x in reversed(text.splitlines()) if x.strip()), "")


def _follow(
    ctx: Context,
    client: ControlClient,
    pane_id: str,
    stream: PaneStream,
    scanner: sc.RunScanner,
    deadline: float,
    on_output: OutputHook | None = None,
    quiet: float | None = None,
    stop: threading.Event | None = None,
) -> _Follow:
    acknowledged = False
    watch = _QuietWatch(client, pane_id, quiet)
    raced = b""
    while True:
        data, raced = raced, b""
        if not data:
            now = time.monotonic()
            remaining = deadline - now
            if remaining <= 0 or (stop is not None and stop.is_set()):
                return _Follow("timeout")
            data = stream.take(min(remaining, LIVENESS_INTERVAL, watch.wait_time(now)))
        if data:
            watch.output()
            if scanner.feed(data) is not None:
                return _Follow("outcome")
            if on_output is not None:
                on_output(client, pane_id, scanner)
            continue
        if stream.closed:
            return _Follow("lost")
        if scanner.exit_pending() and not acknowledged:
            acknowledged = True
            _acknowledge_exit(ctx, client, pane_id)
            continue
        waiting = watch.check(scanner, deadline)
        if waiting is not None:
            # The probe's tmux round trips let output that raced it arrive (the
            # command may have ended that very moment): output wins over the probe.
            raced = stream.take(0)
            if not raced:
                return _Follow("waiting", waiting=waiting)
            continue
        dead = _dead_state(ctx, pane_id)
        if dead is not None:
            if scanner.feed(stream.take(0)) is not None:
                return _Follow("outcome")
            return _Follow("dead", dead)


def _dead_state(ctx: Context, pane_id: str) -> panes.PaneState | None:
    """The pane's state if it is dead, once tmux knows how its process ended (it marks
    a pane dead on the pty's end of file, and records the status a moment later, when
    it reaps the process: the status decides the run's exit code)."""
    try:
        state = ctx.pane_state(pane_id)
    except errors.PaneNotFound:
        return panes.PaneState(
            pane_id, "", None, True, None, None, False, False, None, None, None, None, None, ""
        )
    if not state.dead:
        return None
    if state.dead_status is None and state.dead_signal is None:
        seen = [state]

        def reaped() -> bool:
            with contextlib.suppress(errors.PaneNotFound):
                seen.append(ctx.pane_state(pane_id))
            return seen[-1].dead_status is not None or seen[-1].dead_signal is not None

        poll(reaped, EXIT_SETTLE)
        state = seen[-1]
    return state


def _status_of(
    follow: _Follow, scanner: sc.RunScanner, interrupted: bool
) -> tuple[RunStatus, int | None, bool]:
    """(status, exit_code, shell_exited) for a finished or dead run."""
    outcome = scanner.outcome
    if follow.kind == "outcome" and outcome is not None:
        if outcome.kind == sc.OUTCOME_REPLACED:
            # `exec bash`: the run's shell is gone, a new one sits at its prompt; the
            # old shell's status is unknown. The next run installs sane's runner anew.
            return "lost", None, True
        exited = outcome.kind == sc.OUTCOME_EXITED
        if outcome.kind == sc.OUTCOME_ABORTED or interrupted:
            return "interrupted", outcome.exit_code, exited
        return "completed", outcome.exit_code, exited
    state = follow.state
    if (
        follow.kind == "dead"
        and state is not None
        and state.dead_status is not None
        and state.dead_signal is None
        and scanner.exit_pending()
    ):
        # The command's own `exit N` ran (its EXIT-trap marker had begun to arrive)
        # and the rest of the marker died with the pane: tmux recorded the status
        # (for an ssh pane, ssh passes the remote shell's status on).
        scanner.end_before_partial_marker()
        return "completed", state.dead_status, True
    if (
        follow.kind == "dead"
        and state is not None
        and state.dead_status is not None
        and state.dead_signal is None
        and not (
            state.dead_status == 255
            and (state.server is not None or state.current_command == "ssh")
        )
    ):
        # The shell ended during the run without sane's EXIT marker: the command
        # replaced sane's EXIT trap with its own (`trap 'cleanup' EXIT; exit 4`), or
        # `set -e` ended the shell. The shell's exit status, which tmux keeps, is the
        # command's (an ssh pane's 255 is ssh's own failure: lost). Without the trap's
        # wait for a key the shell dies at once, and tmux drops what it had not yet
        # sent of the pane's output: the output may miss its tail, even its begin
        # marker.
        scanner.end_before_partial_marker()
        return "completed", state.dead_status, True
    scanner.end_before_partial_marker()
    if follow.kind == "lost" and follow.code is not None:
        return "lost", follow.code, follow.exited
    return "lost", None, follow.kind == "dead"


def _acknowledge_exit(ctx: Context, client: ControlClient, pane_id: str) -> None:
    """Let a shell that ran ``exit`` finish dying, once its marker has been read.

    The runner's EXIT trap waits for a line on the tty (see the runner's docs); type
    it, then wait for tmux to see the pane dead so the next run respawns it.
    """
    try:
        client.command(f"send-keys -t {pane_id} Enter")
    except errors.SaneError:
        return
    # No tmux event announces a pane's death to a waiter: poll.
    poll(lambda: _dead_state(ctx, pane_id) is not None, EXIT_SETTLE)


def _settle(ctx: Context, client: ControlClient, pane_id: str, scanner: sc.RunScanner) -> None:
    if scanner.outcome is not None and scanner.outcome.kind == sc.OUTCOME_EXITED:
        _acknowledge_exit(ctx, client, pane_id)


# -- results ---------------------------------------------------------------------------


def _result(
    ctx: Context,
    rec: dict[str, Any],
    scanner: sc.RunScanner,
    status: RunStatus,
    exit_code: int | None,
    shell_exited: bool,
    duration_ms: float,
    waiting: Waiting | None = None,
) -> RunResult:
    """Build the result from the output not yet returned; advance the record."""
    region = scanner.region()
    raw_from = rec["raw_returned"]
    piece = region[raw_from:]
    if status in ("running", "waiting_input"):
        piece = piece[: output.safe_cut(piece)]
    data = output.clean(
        piece,
        keep_ansi=rec["keep_ansi"],
        aborted=status == "interrupted",
        exited=shell_exited,
        lost=status == "lost",
    )
    start = rec["returned"]
    rec["raw_returned"] = raw_from + len(piece)
    rec["returned"] = start + len(data)
    spill: str | None = None
    max_output = rec["max_output"]
    if max_output is not None and len(data) > max_output:
        from sane.paths import private_dir
        from sane.state import write_atomic

        directory = private_dir(runs_dir(ctx) / rec["run_id"])
        spill_path = directory / f"output-{start}"
        write_atomic(spill_path, data)
        spill = str(spill_path)
        prune_runs(ctx, keep=rec["run_id"])  # old spills go as new ones come
    rendered = output.render(data, max_output, f"full output in {spill}")
    # A TypedDict is a plain dict at run time: no need to import sane.models for it.
    result: RunResult = {
        "run_id": rec["run_id"],
        "pane": rec["pane"],
        "command": rec["command"],
        "status": status,
        "exit_code": exit_code,
        "output": rendered.text,
        "output_base64": rendered.text_base64,
        "output_start": start,
        "output_bytes": rendered.size,
        "truncated": rendered.truncated,
        "full_output_path": spill,
        "shell_exited": shell_exited,
        "shell_restarted": bool(rec.get("shell_restarted")),
        "duration_ms": round(duration_ms, 3),
        "prompt": waiting.prompt if waiting is not None else None,
        "waiting_reason": waiting.reason if waiting is not None else None,
        "waiting_program": waiting.program if waiting is not None else None,
    }
    return result


def _save_record(ctx: Context, rec: dict[str, Any], head: bytes | None = None) -> None:
    from sane.paths import private_dir
    from sane.state import write_atomic, write_json

    directory = private_dir(runs_dir(ctx) / rec["run_id"])
    if head is not None:
        write_atomic(directory / "head", head)
    write_json(directory / "record.json", rec)


RECORD_MAX_AGE = 7 * 24 * 3600.0


def prune_runs(ctx: Context, keep: str = "", max_age: float = RECORD_MAX_AGE) -> list[str]:
    """Remove records of runs that ended and were last touched over ``max_age`` seconds
    ago (they hold command text and output: keep them no longer than a wait needs),
    and spilled outputs as old. A record whose run may still be going is kept, however
    old. Runs on each hand-over and each spill, so it costs nothing on a run that
    finishes in time with its output in the result."""
    removed: list[str] = []
    root = runs_dir(ctx)
    try:
        entries = list(root.iterdir())
    except OSError:
        return removed
    limit = time.time() - max_age
    for directory in entries:
        run_id = directory.name
        if run_id == keep:
            continue
        try:
            if not (directory / "record.json").exists():
                # No record: the spilled output of a run that ended within its call
                # (its result named the file). Kept as long as a record would be.
                if _newest(directory) > limit:
                    continue
                ended = True
            elif (directory / "record.json").stat().st_mtime > limit:
                continue
            else:
                ended = run_finished(ctx, run_id)
        except (OSError, errors.SaneError):
            continue
        if ended:
            forget_run(ctx, run_id)
            removed.append(run_id)
    return removed


def _newest(directory: Path) -> float:
    """The latest change to ``directory`` or a file in it."""
    return max(
        [directory.stat().st_mtime, *(entry.stat().st_mtime for entry in directory.iterdir())]
    )


# What a run record must hold for any call to use it, and of which type (a record of
# another shape, `[]` or a field missing, is `state_invalid`: before, it was a
# KeyError in `run wait` and an internal_error after every later hand-over).
_RECORD_FIELDS: dict[str, type | tuple[type, ...]] = {
    "run_id": str,
    "pane": str,
    "session_id": str,
    "command": str,
    "tokens": list,
    "started": (int, float),
    "keep_ansi": bool,
    "returned": int,
    "raw_returned": int,
}


def _load_record(ctx: Context, run_id: str, root: Path | None = None) -> dict[str, Any]:
    if not run_id or "/" in run_id or run_id.startswith("."):
        raise errors.InvalidArgument(f"not a run id: {run_id!r}", run_id=run_id)
    from sane.state import read_json

    path = (root or runs_dir(ctx)) / run_id / "record.json"
    try:
        rec = read_json(path)
    except FileNotFoundError:
        raise errors.RunNotFound(
            f"no run {run_id} to wait on: only runs left running by a timeout are kept",
            run_id=run_id,
        ) from None
    wrong = ([] if isinstance(rec, dict) else ["the record"]) or [
        name for name, kind in _RECORD_FIELDS.items() if not isinstance(rec.get(name), kind)
    ]
    if not wrong and not isinstance(rec.get("nonce"), str | None):
        wrong = ["nonce"]
    if not wrong and not isinstance(rec.get("final"), dict | None):
        wrong = ["final"]
    if wrong:
        raise errors.StateError(
            f"run record {path} is corrupt ({', '.join(wrong)}): the run cannot be followed",
            path=str(path),
            run_id=run_id,
        )
    result: dict[str, Any] = rec
    return result


# -- the public operations -------------------------------------------------------------


def run_command(
    ctx: Context,
    command: str,
    pane: str | None = None,
    options: RunOptions | None = None,
    pane_state: panes.PaneState | None = None,
) -> RunResult:
    """Run ``command`` in ``pane`` (default: sane's local pane) and report it exactly.

    ``pane_state``: the pane's state as the caller just read it (a fleet run lists all
    server panes in one tmux call), saving a query per run.
    """
    opts = options or RunOptions()
    errors.refuse_nul("command", command)
    if opts.timeout < 0:
        raise errors.InvalidArgument("timeout must be >= 0", timeout=opts.timeout)
    started_wall = time.time()
    started = time.perf_counter()
    deadline = time.monotonic() + opts.timeout
    if pane_state is not None:
        state = pane_state
    else:
        state = ctx.pane_state(pane) if pane is not None else ctx.default_pane()
    restarted = False
    for attempt in range(3):
        if state.dead:
            state = respawn(ctx, state)
            restarted = True
        try:
            return _run(ctx, state, command, opts, deadline, started, started_wall, restarted)
        except PaneDied:
            if attempt == 2:
                raise
            state = ctx.pane_state(state.pane_id)
    raise AssertionError("unreachable")


def _run(
    ctx: Context,
    state: panes.PaneState,
    command: str,
    opts: RunOptions,
    deadline: float,
    started: float,
    started_wall: float,
    restarted: bool = False,
) -> RunResult:
    client = ctx.client(state.session_id)
    pane_id = state.pane_id
    run_id = opts.run_id or new_run_id()
    stream = client.watch(pane_id)
    try:
        mine = _mine(ctx, run_id).value
        claim: str | None = claim_line(pane_id, _mine(ctx, run_id))
        rec: dict[str, Any] = {
            "run_id": run_id,
            "pane": pane_id,
            "session_id": state.session_id,
            "socket": ctx.server.label,
            "command": command,
            "nonce": None,
            "tokens": [],
            "started": started_wall,
            "owner": opts.owner,
            "keep_ansi": opts.keep_ansi,
            "max_output": opts.max_output,
            "returned": 0,
            "raw_returned": 0,
            "final": None,
            # The shell is not the one sane's earlier runs in this pane used: respawned
            # after it died, or its runner gone (a new shell exec'd in its place).
            "shell_restarted": restarted
            or (state.token is not None and not state.runner_installed),
        }
        try:
            if not runner_ready(state) or state.dead or state.in_mode or opts.durable:
                _claim(ctx, client, state, run_id)
                claim = None
                state = ensure_runner(ctx, client, stream, state)
            scanner, follow = _start_and_follow(
                ctx,
                client,
                stream,
                state,
                command,
                deadline,
                claim,
                run_id,
                opts.on_output,
                rec if opts.durable else None,
                opts.quiet_period,
                opts.stop,
                opts.posix_script,
                rec,
            )
        except errors.PaneBusy:
            raise
        except KeyboardInterrupt:
            # Ctrl-C (SIGINT) while this process follows the run: a durable run keeps its
            # record, pipe and flag, so another process resumes it (a deploy's step is
            # recovered, not lost); it is not this process's to end.
            if not (opts.durable and rec.get("durable")):
                _release(client, pane_id, mine)
            raise
        except BaseException:
            if opts.durable:
                _end_durable(ctx, client, rec)
            _release(client, pane_id, mine)  # ours only: the claim may have failed
            raise
        rec["nonce"], rec["tokens"] = scanner.nonce, sorted(scanner.tokens)
        rec["shell"] = scanner.shell
        interrupted = False
        stopped = opts.stop is not None and opts.stop.is_set()
        if follow.kind == "timeout" and opts.interrupt_on_timeout and not stopped:
            interrupted = True
            follow = _interrupt(ctx, client, pane_id, stream, scanner, opts.interrupt_grace)
        if follow.kind == "cancelled":
            raise errors.HandedOver(_hand_over(ctx, client, stream, scanner, rec, started))
        if follow.kind in ("timeout", "waiting"):
            return _hand_over(ctx, client, stream, scanner, rec, started, follow.waiting)
        status, code, exited = _status_of(follow, scanner, interrupted)
        _settle(ctx, client, pane_id, scanner)
        duration_ms = (time.perf_counter() - started) * 1000
        result: RunResult | None = None
        try:
            if opts.durable:
                _end_durable(
                    ctx,
                    client,
                    rec,
                    {
                        "status": status,
                        "exit_code": code,
                        "shell_exited": exited,
                        "duration_ms": round(duration_ms, 3),
                    },
                )
            result = _result(ctx, rec, scanner, status, code, exited, duration_ms)
        finally:  # the run ended: its flag goes, whatever recording it did
            client.send(
                release_line(pane_id), *_note_done(pane_id, result)
            )  # ours: it ran; answered at close
        return result
    finally:
        client.unwatch(pane_id, stream)


def _start_and_follow(
    ctx: Context,
    client: ControlClient,
    stream: PaneStream,
    state: panes.PaneState,
    command: str,
    deadline: float,
    claim: str | None,
    run_id: str,
    on_output: OutputHook | None = None,
    durable: dict[str, Any] | None = None,
    quiet: float | None = None,
    stop: threading.Event | None = None,
    posix_script: bool = False,
    rec: dict[str, Any] | None = None,
) -> tuple[sc.RunScanner, _Follow]:
    force_paste = False
    reinstalled = False
    while True:
        nonce = markers.new_nonce()
        scanner = sc.RunScanner(nonce, tokens_of(state), state.shell_kind)
        typed = frame_command(nonce, command, force_paste, state.shell_kind, posix_script)
        if durable is not None:
            _make_durable(ctx, client, state, durable, scanner)
        try:
            _send(client, state.pane_id, typed, nonce, claim)
        except errors.TmuxError as exc:
            if claim is None or "already set" not in exc.message:
                raise
            _claim(ctx, client, state, run_id)  # stale flag cleared, or PaneBusy
            state = ensure_runner(ctx, client, stream, ctx.pane_state(state.pane_id))
            scanner = sc.RunScanner(nonce, tokens_of(state), state.shell_kind)
            typed = frame_command(nonce, command, force_paste, state.shell_kind, posix_script)
            _send(client, state.pane_id, typed, nonce, None)
        claim = None
        try:
            follow = _follow(
                ctx, client, state.pane_id, stream, scanner, deadline, on_output, quiet, stop
            )
        except KeyboardInterrupt:
            # Ctrl-C with the command typed (a second one, or one where no soft stop is
            # armed): it may be running, so its flag must not be cleared; _run hands
            # the run over (resumable, the pane busy with it) and re-raises.
            return scanner, _Follow("cancelled")
        outcome = scanner.outcome
        if follow.kind != "outcome" or outcome is None:
            return scanner, follow
        if outcome.kind == sc.OUTCOME_MISSING_RUNNER and not reinstalled:
            # Another shell runs inside the pane (a nested shell, ssh): install there.
            reinstalled = True
            state = install_runner(ctx, client, stream, state)
            if rec is not None:
                rec["shell_restarted"] = True
            continue
        if outcome.kind == sc.OUTCOME_LENGTH_MISMATCH and not force_paste:
            force_paste = True  # the shell truncated the typed line: use a heredoc
            continue
        if outcome.kind in (
            sc.OUTCOME_MISSING_RUNNER,
            sc.OUTCOME_LENGTH_MISMATCH,
            sc.OUTCOME_DECODE_FAILED,
        ):
            raise errors.RunnerUnavailable(
                f"the shell in pane {state.pane_id} could not run the command "
                f"({outcome.kind.replace('_', ' ')})",
                pane=state.pane_id,
                reason=outcome.kind,
            )
        return scanner, follow


def _interrupt(
    ctx: Context,
    client: ControlClient,
    pane_id: str,
    stream: PaneStream,
    scanner: sc.RunScanner,
    grace: float,
) -> _Follow:
    scanner.feed(stream.take(0))
    scanner.mark_interrupt()
    client.command(f"send-keys -t {pane_id} C-c")
    return _follow(
        ctx, client, pane_id, stream, scanner, time.monotonic() + grace, quiet=INTERRUPT_QUIET
    )


def _make_durable(
    ctx: Context,
    client: ControlClient,
    state: panes.PaneState,
    rec: dict[str, Any],
    scanner: sc.RunScanner,
) -> None:
    """Save the run's record and start piping the pane to it, before anything is typed."""
    from sane.paths import private_dir

    directory = private_dir(runs_dir(ctx) / rec["run_id"])
    stream_path = directory / "stream"
    if not rec.get("durable"):
        if ctx.pane_state(state.pane_id).piped:
            raise errors.RunNotResumable(
                f"pane {state.pane_id} has a pipe-pane of its own, so a durable run "
                "cannot record its output",
                pane=state.pane_id,
            )
        stream_path.touch(mode=0o600)
        client.command(
            f"pipe-pane -o -t {state.pane_id} "
            + quote(no_formats(f"exec cat >> {shlex.quote(str(stream_path))}")),
            _piped_note(state.pane_id, rec["run_id"]),
        )
        rec["durable"] = True
        rec["resumable"] = True
    rec["nonce"], rec["tokens"] = scanner.nonce, sorted(scanner.tokens)
    rec["shell"] = scanner.shell
    _save_record(ctx, rec, head=b"")


def _end_durable(
    ctx: Context, client: ControlClient, rec: dict[str, Any], final: dict[str, Any] | None = None
) -> None:
    """Stop the pipe. A run that ended keeps its record, marked final, until the
    caller has noted the result (``forget_run``): dying before that must not lose it.
    A run that never started is forgotten at once."""
    if not rec.get("durable"):
        return
    with contextlib.suppress(errors.SaneError):
        client.command(*unpipe(rec["pane"]))
    if final is None:
        forget_run(ctx, rec["run_id"])
    else:
        # Best effort: on a full disk the record stays as it was before the command
        # (its stream has the output), as after a crash, and the caller still gets
        # the result it is holding.
        with contextlib.suppress(errors.StateError):
            _save_record(ctx, {**rec, "final": final})


def forget_run(ctx: Context, run_id: str) -> None:
    """Remove a run's record (a durable run's caller calls it once the result is safe)."""
    import shutil

    if run_id and "/" not in run_id and not run_id.startswith("."):
        shutil.rmtree(runs_dir(ctx) / run_id, ignore_errors=True)


def _hand_over(
    ctx: Context,
    client: ControlClient,
    stream: PaneStream,
    scanner: sc.RunScanner,
    rec: dict[str, Any],
    started: float,
    waiting: Waiting | None = None,
) -> RunResult:
    """The deadline passed or a prompt waits for an answer: record the rest of the
    stream to a file for later calls.

    If the record cannot be written (a full disk, a read-only ``$SANE_HOME``) the
    hand-over is undone, the pane's busy flag released (else this process would hold
    the pane busy forever, nobody able to wait on the run) and ``state_invalid`` says
    so: the command may still be running in the pane.
    """
    import shutil

    from sane.paths import private_dir

    pane_id = rec["pane"]
    try:
        directory = private_dir(runs_dir(ctx) / rec["run_id"])
        stream_path = directory / "stream"
        if rec.get("durable"):
            # The file has held the pane's output since before the command was typed.
            scanner.feed(stream.take(0))
            head = b""
        else:
            try:
                stream_path.touch(mode=0o600)
            except OSError as exc:
                from sane.state import os_failure

                raise os_failure("write", stream_path, exc) from exc
            head = None
        state = ctx.pane_state(pane_id) if head is None else None
        if state is not None:
            rec["resumable"] = not state.piped
        if state is not None and not state.piped:
            shell = f"exec cat >> {shlex.quote(str(stream_path))}"
            reply = client.send(
                f"pipe-pane -o -t {pane_id} {quote(no_formats(shell))}",
                _piped_note(pane_id, rec["run_id"]),
            )
            client.result(reply)
            # What tmux sent before pipe-pane's reply is ours; the file holds the rest (the
            # reader thread may already have pushed later output too: cut it off exactly).
            scanner.feed(stream.take_until(reply.positions.get(stream, stream.pushed)))
        elif state is not None:
            scanner.feed(stream.take(0))
        if scanner.outcome is not None:
            # It finished in the meantime: no hand-over needed after all.
            client.command(*unpipe(pane_id))
            shutil.rmtree(directory, ignore_errors=True)
            status, code, exited = _status_of(_Follow("outcome"), scanner, False)
            _settle(ctx, client, pane_id, scanner)
            done = _result(
                ctx, rec, scanner, status, code, exited, (time.perf_counter() - started) * 1000
            )
            _release(client, pane_id, _mine(ctx, rec["run_id"]).value, note=done)
            return done
        result = _result(
            ctx,
            rec,
            scanner,
            "waiting_input" if waiting else "running",
            None,
            False,
            (time.perf_counter() - started) * 1000,
            waiting,
        )
        _save_record(ctx, rec, head=bytes(scanner.buf) if head is None else head)
        prune_runs(ctx, keep=rec["run_id"])
        return result
    except errors.StateError as exc:
        if rec.get("durable"):
            raise  # its record and pipe predate this failure: `run wait` can still follow
        with contextlib.suppress(errors.SaneError):
            client.command(*unpipe(pane_id))
        shutil.rmtree(runs_dir(ctx) / rec["run_id"], ignore_errors=True)
        _release(client, pane_id, _mine(ctx, rec["run_id"]).value)
        raise errors.StateError(
            f"{exc.message}; run {rec['run_id']} {'waits for input' if waiting else 'timed out'} "
            "and could not be recorded, so "
            f"it cannot be waited on: its command may still be running in pane {pane_id}",
            **{**exc.details, "run_id": rec["run_id"], "pane": pane_id},
        ) from exc


def _replay(
    ctx: Context, rec: dict[str, Any], root: Path | None = None
) -> tuple[sc.RunScanner, Path, int]:
    """A scanner fed with everything recorded so far; the stream file and its size."""
    directory = (root or runs_dir(ctx)) / rec["run_id"]
    scanner = sc.RunScanner(rec["nonce"], rec["tokens"], rec.get("shell", SHELL_POSIX))
    scanner.feed((directory / "head").read_bytes())
    stream_path = directory / "stream"
    data = stream_path.read_bytes() if stream_path.exists() else b""
    scanner.feed(data)
    return scanner, stream_path, len(data)


def run_finished(ctx: Context, run_id: str, root: Path | None = None) -> bool:
    """Whether the recorded run ended (``root``: another home's runs directory)."""
    rec = _load_record(ctx, run_id, root)
    if rec.get("final") is not None:
        return True
    try:
        scanner, _, _ = _replay(ctx, rec, root)
    except OSError as exc:
        from sane.state import os_failure

        raise os_failure("read", (root or runs_dir(ctx)) / run_id, exc) from exc
    return scanner.outcome is not None


def run_wait(
    ctx: Context,
    run_id: str,
    timeout: float = 30.0,
    interrupt: bool = False,
    interrupt_grace: float = INTERRUPT_GRACE,
    quiet_period: float | None = DEFAULT_QUIET_PERIOD,
) -> RunResult:
    """Wait again on a run left ``running`` or ``waiting_input``; return the output not
    returned yet."""
    return _resume(ctx, run_id, timeout, quiet_period, interrupt, interrupt_grace)


def run_input(
    ctx: Context,
    run_id: str,
    text: str,
    enter: bool = True,
    timeout: float = 30.0,
    quiet_period: float | None = DEFAULT_QUIET_PERIOD,
    multi_line: bool = False,
) -> RunResult:
    """Answer a run's prompt: type ``text`` literally (then Enter unless ``enter`` is
    false) into the run's pane and follow the run on, as :func:`run_wait` does.

    Refused with ``run_finished`` when the run has ended: the text would reach the
    idle shell as a command. ``text`` is never written to any record or log.
    ``text`` is one line (:func:`check_answer`) unless ``multi_line``.
    """
    errors.refuse_nul("text", text)
    check_answer(text, multi_line)
    return _resume(ctx, run_id, timeout, quiet_period, keys=(text, enter))


def check_answer(text: str, multi_line: bool = False) -> None:
    """An answer holds printable characters and tabs only (and newlines when
    ``multi_line``), else ``invalid_argument`` naming the first other one.

    A terminal acts on control characters instead of passing them to the program:
    a newline or CR ends the line (whatever follows would reach the shell as a
    command once the program exits), C-c/C-z/C-\\ signal, C-d ends input, C-u/C-w
    erase. So an answer is one line of text; line breaks only when asked for."""
    for index, ch in enumerate(text):
        if ch == "\t" or (ch == "\n" and multi_line) or not (ch < " " or ch == "\x7f"):
            continue
        what = "a line break" if ch in "\r\n" else f"the control character {ch!r}"
        hint = (
            "pass --multi-line (MCP: multi_line) to type several lines; each line ends with Enter"
            if ch == "\n"
            else "send keys such as C-d with send_keys; interrupt with run_interrupt"
        )
        raise errors.InvalidArgument(
            f"the answer holds {what} at index {index}: an answer is one line of text",
            field="text",
            index=index,
            hint=hint,
        )


def _resume(
    ctx: Context,
    run_id: str,
    timeout: float,
    quiet_period: float | None,
    interrupt: bool = False,
    interrupt_grace: float = INTERRUPT_GRACE,
    keys: tuple[str, bool] | None = None,
) -> RunResult:
    try:
        rec = _load_record(ctx, run_id)
    except errors.RunNotFound:
        done = find_done(ctx, run_id)
        if done is None:
            raise
        raise _done_in_time(run_id, done) from None
    final = rec.get("final")
    scanner, stream_path, size = _replay(ctx, rec)
    if keys is not None and (final is not None or scanner.outcome is not None):
        raise _finished(run_id, final)
    if final is not None:
        return _result(
            ctx,
            rec,
            scanner,
            final["status"],
            final["exit_code"],
            final["shell_exited"],
            final["duration_ms"],
        )
    if not rec.get("resumable", True):
        raise errors.RunNotResumable(
            f"pane {rec['pane']} already had a pipe-pane of its own when run {run_id} "
            "timed out, so its later output could not be recorded",
            run_id=run_id,
        )
    deadline = time.monotonic() + timeout
    pane_id = rec["pane"]
    follow: _Follow
    client: ControlClient | None = None
    try:
        client = ctx.client(rec["session_id"])
    except errors.SaneError:
        follow = _Follow("lost")
    else:
        if keys is not None:
            _type_answer(ctx, client, pane_id, run_id, *keys)
        follow = _follow_file(
            ctx,
            client,
            pane_id,
            scanner,
            stream_path,
            size,
            deadline,
            interrupt,
            interrupt_grace,
            quiet_period,
        )
    if follow.kind in ("timeout", "waiting"):
        result = _result(
            ctx,
            rec,
            scanner,
            "waiting_input" if follow.waiting else "running",
            None,
            False,
            (time.time() - rec["started"]) * 1000,
            follow.waiting,
        )
        _save_record(ctx, rec)
        return result
    status, code, exited = _status_of(follow, scanner, interrupt)
    duration = (time.time() - rec["started"]) * 1000
    if client is not None:
        with contextlib.suppress(errors.SaneError):  # while the pane lives (see unpipe)
            client.command(*unpipe(pane_id))
        _settle(ctx, client, pane_id, scanner)
        holder = _holder_value(ctx, pane_id, run_id)
        if holder is not None:
            _release(client, pane_id, holder)
    result = _result(ctx, rec, scanner, status, code, exited, duration)
    rec["final"] = {
        "status": status,
        "exit_code": code,
        "shell_exited": exited,
        "duration_ms": round(duration, 3),
    }
    # The run is over and its pane free: a full disk must not turn the result this call
    # holds into an error (it was lost so, the flag already released). Unsaved, a later
    # wait works it out again from the stream.
    with contextlib.suppress(errors.StateError):
        _save_record(ctx, rec)
    return result


def _finished(run_id: str, final: dict[str, Any] | None) -> errors.RunFinished:
    return errors.RunFinished(
        f"run {run_id} has ended, so nothing was typed (the text would have gone to the "
        "shell as a command); `sane run wait` returns its result",
        run_id=run_id,
        status=final["status"] if final else None,
    )


def _done_in_time(run_id: str, done: DoneRun) -> errors.RunFinished:
    """``run_finished`` for a run that ended within the call that started it: that call
    returned its result and all its output, so there is nothing to wait for, interrupt
    or answer. The error carries the result (not ``run_not_found``: the id was real)."""
    code = "" if done.exit_code is None else f", exit {done.exit_code}"
    return errors.RunFinished(
        f"run {run_id} already ended ({done.status}{code}) within the call that started "
        f"it, which returned its result and all {done.output_bytes} bytes of its output; "
        "nothing was sent to the pane",
        run_id=run_id,
        pane=done.pane,
        status=done.status,
        exit_code=done.exit_code,
        shell_exited=done.shell_exited,
        output_bytes=done.output_bytes,
        duration_ms=done.duration_ms,
    )


def _type_answer(
    ctx: Context, client: ControlClient, pane_id: str, run_id: str, text: str, enter: bool
) -> None:
    """Type into the run's command, only while the pane's busy flag still names the run.

    ``send-keys -l --`` sends every character as itself (no key names, no option
    parsing); ``copy-mode -q`` first, as for a run, so a person's scrollback mode does
    not eat the keys.
    """
    if _holder_value(ctx, pane_id, run_id) is None:
        raise _finished(run_id, None)
    from sane.ops.prompts import Idle, probe

    if not (text or enter):
        return
    found = probe(client, pane_id)
    if found is None or (isinstance(found, Idle) and not found.kernel):
        # Busy (the kernel says so), or the process state could not be read and the
        # screen shows no prompt: typed ahead, the text would run as a shell command
        # if the command ended without reading it.
        raise errors.RunNotWaiting(
            f"run {run_id} is not waiting for input (its command is busy, or the pane's "
            "process state could not be read and the screen shows no prompt), so "
            "nothing was typed: text typed ahead would run as a shell command if the "
            "command ends without reading it; answer once `sane run wait` says "
            "waiting_input",
            run_id=run_id,
            pane=pane_id,
        )
    if isinstance(found, Idle):
        # The run's own shell sits at its prompt, outside sane's runner: the run is
        # over though its end never reached the record (its pipe died, say). Whatever
        # is typed now would run as a command.
        raise errors.RunFinished(
            f"run {run_id} has ended: the shell in pane {pane_id} is back at its own "
            "prompt, so nothing was typed (the text would have run as a command); "
            "`sane run wait` returns how it ended",
            run_id=run_id,
            pane=pane_id,
            status=None,
        )
    line = [f"copy-mode -q -t {pane_id}"]
    if text:
        line.append(f"send-keys -t {pane_id} -l -- {quote(text)}")
    if enter:
        line.append(f"send-keys -t {pane_id} Enter")
    client.command(*line)


def _holder_value(ctx: Context, pane_id: str, run_id: str) -> str | None:
    try:
        holder = ctx.pane_state(pane_id).run_id
    except errors.SaneError:
        return None
    if holder is not None and run_of(holder) == run_id:
        return holder
    return None


def _follow_file(
    ctx: Context,
    client: ControlClient,
    pane_id: str,
    scanner: sc.RunScanner,
    stream_path: Path,
    offset: int,
    deadline: float,
    interrupt: bool,
    grace: float,
    quiet: float | None = None,
) -> _Follow:
    """Follow a handed-over run through its pipe-pane file.

    The control client's ``%output`` for the pane wakes us when there is news; the
    file may lag the notification by a moment (``cat`` writes it), so a quiet wait
    backs off from 2 ms to 50 ms rather than trusting a single wake-up.
    """
    if scanner.outcome is not None:
        return _Follow("outcome")
    # The file's size before the watch begins: from there on it receives at least every
    # byte the watch does (pipe-pane and %output carry the same pane output), so it has
    # caught up once it grew by as much as the watch received.
    base = stream_path.stat().st_size
    wake = client.watch(pane_id)
    watch = _QuietWatch(
        client, pane_id, min(quiet or INTERRUPT_QUIET, INTERRUPT_QUIET) if interrupt else quiet
    )
    # Whether anything tmux sent since the watch began looks like one of sane's markers.
    # Only such bytes make a lagging file matter when a prompt is found: without this,
    # bytes cat wrote to the file before `base` but that reached the watch after it
    # (the control client lags under load) kept the file "behind" forever.
    sent = _MarkerSeen()
    live = _LiveEnd(scanner)
    try:
        if interrupt:
            scanner.mark_interrupt()
            client.command(f"send-keys -t {pane_id} C-c")
            deadline = max(deadline, time.monotonic() + grace)
        backoff = 0.002
        acknowledged = False
        last_check = time.monotonic()
        with open(stream_path, "rb") as fh:
            fh.seek(offset)
            while True:
                data = fh.read()
                if data:
                    backoff = 0.002
                    watch.output()
                    if scanner.feed(data) is not None:
                        return _Follow("outcome")
                    continue
                now = time.monotonic()
                if now >= deadline:
                    return _Follow("timeout")
                if wake.closed:
                    return _Follow("lost")
                if now - last_check >= LIVENESS_INTERVAL:
                    last_check = now
                    if scanner.exit_pending() and not acknowledged:
                        acknowledged = True
                        _acknowledge_exit(ctx, client, pane_id)
                        continue
                    dead = _dead_state(ctx, pane_id)
                    if dead is not None:
                        if scanner.feed(fh.read()) is not None:
                            return _Follow("outcome")
                        return _Follow("dead", dead)
                    if live.end is not None and not ctx.pane_state(pane_id).piped:
                        # The run's end went by on the live stream, and the pipe that
                        # records it is gone (its writer died; tmux closes a pipe on
                        # its first failed write): the file will not get it.
                        if scanner.feed(fh.read()) is not None:
                            return _Follow("outcome")
                        end = live.end
                        replaced = end.kind == markers.NEW_SHELL
                        return _Follow(
                            "lost",
                            exited=end.kind == markers.EXITED or replaced,
                            code=None if end.arg is None or replaced else exit_status(end.arg),
                        )
                waiting = watch.check(scanner, deadline)
                if waiting is not None:
                    # Output that raced the probe wins, as in _follow; and the file
                    # (written by pipe-pane's cat, which may lag) must hold everything
                    # tmux sent, or an end marker may still be on its way into it.
                    data = fh.read()
                    fresh = live.note(sent.note(wake.take(0)))
                    if fresh or data or (sent.marker and fh.tell() - base < wake.pushed):
                        watch.output()  # look again after another quiet period
                        if data and scanner.feed(data) is not None:
                            return _Follow("outcome")
                        continue
                    return _Follow("waiting", waiting=waiting)
                if live.note(
                    sent.note(wake.take(min(backoff, deadline - now, watch.wait_time(now) + 0.001)))
                ):
                    backoff = 0.002
                    watch.output()
                else:
                    backoff = min(backoff * 2, 0.05)
    finally:
        client.unwatch(pane_id, wake)


class _LiveEnd:
    """The end of a run (its own end or exit marker, or the answer of a status probe),
    as the live stream shows it: what tells a run over whose recording died."""

    def __init__(self, scanner: sc.RunScanner) -> None:
        self.scanner = scanner
        self.end: markers.Marker | None = None
        self._buf = bytearray()

    def note(self, data: bytes) -> bytes:
        if data and self.end is None:
            self._buf += data
            found, resume = markers.scan(self._buf, 0)
            for m in found:
                if self.scanner.ends_run(m):
                    self.end = m
                    break
            del self._buf[:resume]
        return data


class _MarkerSeen:
    """Remembers whether a marker prefix passed in a byte stream fed in pieces."""

    def __init__(self) -> None:
        self.marker = False
        self._tail = b""

    def note(self, data: bytes) -> bytes:
        if data and not self.marker:
            joined = self._tail + data
            self.marker = markers.PREFIX in joined
            self._tail = joined[-(len(markers.PREFIX) - 1) :]
        return data


def run_interrupt(ctx: Context, run_id: str, grace: float = INTERRUPT_GRACE) -> RunResult:
    """Send C-c to a run left ``running`` and return how it ended."""
    return run_wait(ctx, run_id, timeout=0.0, interrupt=True, interrupt_grace=grace)
