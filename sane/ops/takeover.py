"""Make a pane ready for runs: a live POSIX shell with sane's runner installed.

Installing the runner once per shell (not per run) keeps each run to one short typed
line; the shell's pid and prompt token are kept in pane options so every later sane
process knows the runner is there.
"""

from __future__ import annotations

import time

from sane import errors, procfs
from sane.ops.context import LOCAL_WINDOW, ROLE_LOCAL, Context
from sane.ops.has_input import (
    PROMPT_WAIT,
    after_takeover,
    await_prompt,
    await_prompt_start,
    clear_typed,
    line_editor,
    record_prompt,
    takeover_guard,
)
from sane.ops.run.liveness import pane_dead
from sane.ops.run.pipe import unpipe
from sane.poll import poll
from sane.protocol import markers
from sane.protocol.runner import (
    SHELL_FISH,
    SHELL_POSIX,
    TAKEOVER_END,
    bootstrap_line,
    bootstrapped,
    loop_lines,
    shell_name,
    shell_probe,
    takeover_lines,
    typed_meanwhile,
)
from sane.protocol.scanner import ready_marker, wait_ready
from sane.tmux import panes
from sane.tmux.command import quote
from sane.tmux.control import ControlClient, PaneStream

# Programs sane may type into: POSIX-ish shells, fish (its own runner), and ssh (whose
# remote shell the runner's missing-runner guard then checks). An allow-list.
POSIX_SHELLS = frozenset(
    {
        "sh",
        "bash",
        "rbash",
        "dash",
        "zsh",
        "ksh",
        "ksh93",
        "mksh",
        "lksh",
        "oksh",
        "ash",
        "posh",
        "yash",
        "busybox",
        "ssh",
    }
)
FISH_SHELLS = frozenset({"fish"})
SHELLS = POSIX_SHELLS | FISH_SHELLS
# Shells sane has no runner for: a local pane running one is refused at once
# (shell_unsupported), never typed into until a timeout.
UNSUPPORTED_SHELLS = frozenset(
    {
        "csh",
        "tcsh",
        "rc",
        "es",
        "nu",
        "elvish",
        "xonsh",
        "pwsh",
        "ion",
        "oil",
        "osh",
        "ysh",
        "scsh",
        "sash",
        "tclsh",
    }
)
READY_TIMEOUT = 15.0
OPT_SHELL_NOTE = panes.OPT_SHELL_NOTE
RETYPE_AFTER = 3.0  # no READY this long after typing the takeover: type it again
RESPAWN_SETTLE = 3.0
MAX_TOKENS = 8


# Programs that exec a shell a moment after a pane starts (`env VAR=x bash`, ...).
# "tmux": a pane just created is, until its child execs, a fork of the tmux server and
# named like it (refused as not a shell at load, 1 run in 40).
WRAPPERS = frozenset(
    {
        "env",
        "login",
        "su",
        "sudo",
        "nice",
        "nohup",
        "setsid",
        "stdbuf",
        "setpriv",
        "runuser",
        "tmux",
    }
)


def _base(command: str) -> str:
    return command.lstrip("-").rsplit("/", 1)[-1]


def _starting(state: panes.PaneState) -> bool:
    """Is the pane still on its way to its program? A wrapper (:data:`WRAPPERS`), or
    the shell tmux starts a pane's command with (``default-shell -c 'fish ...'``)
    before it execs that command: the pane is named ``sh`` (or ``bash``) a moment, and
    a POSIX line typed then is read by fish (seen under load: fish's takeover never
    confirmed, ``runner_unavailable`` after 15 s). The kernel tells: the pane's first
    process still runs a command string (``-c`` in its argv)."""
    return (
        _base(state.current_command) in WRAPPERS
        or _runs_command_string(state.pid, state.current_command)
        or _shell_still_starting(state.pid, state.current_command)
    )


# A pane's shell younger than this that has a program in the foreground is taken to be
# running its rc files (yash's common init runs `ls` and `grep`; a .bashrc `dircolors`,
# `lesspipe`, `pyenv init`): it is waited for, not refused as "not a shell".
SHELL_STARTUP_SECONDS = 10.0


def _shell_still_starting(pid: int | None, current: str) -> bool:
    """Is the pane's first process (``pid``, on this host) a shell started within
    :data:`SHELL_STARTUP_SECONDS`, with a program that is not a shell in the terminal's
    foreground? That is its startup files at work (seen in CI: `pane_not_shell ...
    running 'ls'` for a yash with its sample config, taken over at once). A person's
    program in an older shell's pane is refused at once, as before."""
    if pid is None or is_shell(current):
        return False
    comm, age = procfs.name(pid), procfs.age(pid)
    if comm is None or age is None:
        return False
    return shell_kind(comm) is not None and age < SHELL_STARTUP_SECONDS


def _runs_command_string(pid: int | None, name: str) -> bool:
    """Is ``pid`` (a pane's first process, on this host) a shell named ``name``,
    started with ``-c`` (it runs a command string, not a person's prompt) and still in
    the terminal's foreground (its command has not started a shell that took the
    terminal, as an interactive one does)? False when /proc does not say (another OS,
    the process gone)."""
    if pid is None or shell_kind(name) != SHELL_POSIX:
        return False
    fields, argv = procfs.stat_fields(pid), procfs.argv(pid)
    try:
        # its group is the tty's
        in_foreground = fields is not None and fields[procfs.PGRP] == fields[procfs.TPGID]
    except IndexError:
        return False
    if not in_foreground or argv is None:
        return False
    for arg in argv[1:]:
        if not arg.startswith(b"-") or arg in (b"-", b"--"):
            return False  # options end before any -c
        if not arg.startswith(b"--") and b"c" in arg[1:]:
            return True
    return False


def is_shell(command: str) -> bool:
    return _base(command) in SHELLS


def shell_kind(command: str) -> str | None:
    """The runner a pane's foreground program takes: fish's, the POSIX one, or None
    when it cannot be told from here (not a shell sane drives)."""
    base = _base(command)
    if base in FISH_SHELLS:
        return SHELL_FISH
    if base in POSIX_SHELLS and base != "ssh":
        return SHELL_POSIX
    return None


def tokens_of(state: panes.PaneState) -> list[str]:
    return state.token.split() if state.token else []


def ensure_runner(
    ctx: Context,
    client: ControlClient,
    stream: PaneStream,
    state: panes.PaneState,
    clear_input: bool = False,
) -> panes.PaneState:
    """Return the pane's state once its shell is known to hold the runner."""
    pane = state.pane_id
    if state.in_mode:
        client.command(f"copy-mode -q -t {pane}")
    if state.dead:
        raise PaneDied(pane)
    if runner_ready(state):
        return state
    return install_runner(ctx, client, stream, pane, clear_input=clear_input)


def runner_ready(state: panes.PaneState) -> bool:
    """Does the pane's shell hold a runner of its own kind? Not when a person started a
    shell of another kind in it (fish in a bash pane): a line typed for the first
    would be a syntax error in the second, and the run would never end."""
    return state.runner_installed and shell_kind(state.current_command) in (None, state.shell_kind)


class PaneDied(Exception):
    """The pane's shell is gone; the caller respawns it (with no client attached)."""


def respawn(ctx: Context, state: panes.PaneState) -> panes.PaneState:
    """Bring a dead pane back.

    tmux (3.3a up to at least 3.6a, tmux/tmux#5499) segfaults the whole server when
    a pane is respawned while a control client attached to its session has not
    consumed all of the pane's output. So sane's own local pane is replaced (killed and
    created again: its id changes, sane finds it by role); a pane of the user's is
    respawned in place after sane detaches its own client from that session. An ssh
    pane is reopened by the fleet layer, which knows the server.
    """
    if state.role == ROLE_LOCAL:
        from sane.tmux.control import attach_detach_lock
        from sane.tmux.structure import ensure_local_pane

        with attach_detach_lock(ctx.server):  # may end the session: see that lock
            ctx.server.run("kill-pane", "-t", state.pane_id)
        pane = ensure_local_pane(ctx.server, ctx.session_name, LOCAL_WINDOW, ROLE_LOCAL)
        return _wait_for_shell(ctx, pane, RESPAWN_SETTLE)
    if state.role is not None and state.server is not None:
        raise errors.ConnectionFailed(
            f"the ssh session of server {state.server} ended; `sane connect {state.server}` "
            "or a run with --server reopens it",
            server=state.server,
            pane=state.pane_id,
        )
    ctx.hub.drop(state.session_id)
    ctx.server.run("respawn-pane", "-t", state.pane_id)
    # respawn-pane keeps the pane's pipe; one sane left (its run ended with the shell's
    # death, when tmux refuses pipe-pane) would record every later run into that run's
    # file and make the pane look piped by someone else: stop it. A user's own pipe
    # (no mark) stays.
    ctx.server.run(
        "if-shell",
        "-F",
        "-t",
        state.pane_id,
        f"#{{{panes.OPT_PIPED}}}",
        " ; ".join(unpipe(state.pane_id)),
    )
    # The pane's start command may pass through a wrapper (env, a login script)
    # before its shell runs: give it a moment to become one.
    return _wait_for_shell(ctx, state.pane_id, RESPAWN_SETTLE)


def _wait_for_shell(ctx: Context, pane: str, timeout: float) -> panes.PaneState:
    """The pane's state once its wrapper has exec'd the shell (or the time is up):
    no tmux event marks a pane's exec, so poll."""
    seen: list[panes.PaneState] = []

    def settled() -> panes.PaneState | None:
        seen.append(ctx.pane_state(pane))
        state = seen[-1]
        return state if state.dead or not _starting(state) else None

    return poll(settled, timeout) or seen[-1]


def _keys(pane: str, line: str) -> str:
    """The tmux command typing one line as hex keys (any character, no key-name
    parsing), then Enter."""
    return f"send-keys -t {pane} -H " + " ".join(f"{b:02x}" for b in line.encode()) + " 0d"


def _paste(pane: str, lines: list[str], nonce: str, bracketed: bool = True) -> list[str]:
    """The tmux commands that enter ``lines`` as a paste, then press Enter.

    Why not keys: tmux handles ``send-keys`` key by key and a line editor (readline,
    zle) redraws after each one; the takeover's ~2.2 KB cost 80-190 ms of CPU per
    pane that way (dash, bash, zsh, measured), 5-50 ms as one paste. A shell that
    asked for bracketed paste (bash, zsh, fish) gets the lines as one multi-line
    input, run in order when Enter comes (``-p`` adds the brackets only then);
    any other shell reads the same bytes as if typed (``paste-buffer`` turns each
    newline into Enter). The lines hold no ESC byte, so nothing ends the bracket.
    ``bracketed=False``: lines for a program reading the tty itself (the
    bootstrap's ``read``), never wrapped in brackets it would read as text."""
    buffer = f"sane-takeover-{nonce}"
    return [
        f"set-buffer -b {buffer} {quote(chr(10).join(lines))}",
        f"paste-buffer {'-p ' if bracketed else ''}-d -b {buffer} -t {pane}",
        f"send-keys -t {pane} Enter",
    ]


def _remote_kind(
    ctx: Context, client: ControlClient, stream: PaneStream, pane: str, deadline: float
) -> tuple[str, str, str]:
    """Which runner the shell behind an ssh pane takes, asked with a line every shell
    parses alike (``shell_probe``), the note the pane keeps about it, and the shell's
    name (its editor decides sane's check of the line). A shell sane cannot drive
    there (tcsh, csh, any other) is replaced by a POSIX ``sh`` (``exec``, as a person
    would), and the note says so (``@sane_shell_note``, set with the
    runner's other options)."""
    seen = bytearray()
    nonce = markers.new_nonce()
    # The line is emptied first: the login files may have printed terminal queries,
    # whose answers the shell read as typed text (fish keeps `[1;1R[?1;2c...` on its
    # line, and after the syntax error the probe joined to it made, keeps the line and
    # the next probe's copy too: runner_unavailable, measured). Whatever is there is
    # none of sane's to run; an unknown shell has no widget to hold it with. Padded
    # (clear_typed): busybox ash's reader drops an unknown ESC with up to 15 bytes after
    # it, and a plain C-e C-u went that way (seen, 2 of 12 runs of test_login_queries'
    # ash case: `cP>|tmux 3.3a` ran joined to the probe, creating a file `tmux`).
    probe = [*clear_typed(pane), _keys(pane, shell_probe(nonce))]
    client.command(*probe)
    retype_at = time.monotonic() + RETYPE_AFTER
    while (found := shell_name(seen, nonce)) is None:
        if time.monotonic() >= retype_at:  # the login shell may still be starting
            retype_at = time.monotonic() + RETYPE_AFTER
            client.command(*probe)
        remaining = deadline - time.monotonic()
        if remaining <= 0 or stream.closed:
            raise errors.RunnerUnavailable(
                f"the shell behind pane {pane} did not answer sane's shell probe in time "
                "(is it idle at its prompt?)",
                pane=pane,
            )
        data = stream.take(min(remaining, 0.25))
        if data:
            seen += data
        elif pane_dead(ctx, pane):  # e.g. ssh refused: tmux's "Pane is dead" was
            # the output that made the caller type the probe
            raise errors.RunnerUnavailable(
                f"pane {pane} died before its shell answered sane's shell probe", pane=pane
            )
    _await_prompt_after_probe(stream, seen, nonce)
    name = found[1]
    if name in FISH_SHELLS:
        kind, note = SHELL_FISH, ""
    elif name in POSIX_SHELLS and name != "ssh":
        kind, note = SHELL_POSIX, ""
    else:
        client.command(_keys(pane, " exec sh"))
        kind, note = (
            SHELL_POSIX,
            (f"the login shell {name} cannot be driven by sane: it started sh in its place"),
        )
    return kind, note, name if not note else "sh"


def _await_prompt_after_probe(stream: PaneStream, seen: bytearray, nonce: str) -> None:
    """Wait until the shell draws something after the probe's answer line (its
    prompt: its editor reads keys again), for at most ``PROMPT_WAIT``.

    Keys typed while the probe still runs reach the terminal in its canonical mode,
    where the line kill that starts the takeover only erases back to what the shell
    had left unread (measured: tmux's answers to queries the login files printed,
    typed-ahead behind the probe; zsh then read them as text, which joined the
    takeover's first line and ran, `>|tmux` creating a file)."""
    found, _ = markers.scan(seen, 0)
    answer = next(m for m in found if m.tag == nonce and m.kind == markers.SHELL)
    line_end = seen.find(b"\n", answer.end) + 1
    deadline = time.monotonic() + PROMPT_WAIT
    while len(seen) <= line_end:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or stream.closed:
            return
        seen += stream.take(min(remaining, 0.25))


def _unconfirmed(pane: str, current_command: str, closed: bool) -> errors.RunnerUnavailable:
    """``runner_unavailable`` for a takeover that ended unconfirmed, saying what ended
    it. It used to ask "is it a POSIX shell, and idle?" whatever the cause, and under
    load an idle bash whose takeover only ran past its deadline read as a wrong shell
    (issue 17, sweep17 (b)). What the shell showed cannot tell load from a busy shell
    (sane's own typing shows either way), so both are named."""
    if closed:
        return errors.RunnerUnavailable(
            f"tmux stopped sending pane {pane}'s output before its shell confirmed "
            "sane's runner (the control client ended); the pane is kept: run again",
            pane=pane,
            current_command=current_command,
            ended_by="control_client",
        )
    return errors.RunnerUnavailable(
        f"the deadline came before the shell in pane {pane} confirmed sane's runner "
        "(a loaded machine or a slow login; or a shell that is busy, or not POSIX); "
        "the pane is kept: run again",
        pane=pane,
        current_command=current_command,
        ended_by="deadline",
    )


def install_runner(
    ctx: Context,
    client: ControlClient,
    stream: PaneStream,
    pane: str,
    deadline: float | None = None,
    clear_input: bool = False,
) -> panes.PaneState:
    """Install sane's runner in the shell of pane ``pane``; its state then.

    The pane's state is read here, once (what runs in it decides the runner), so a
    caller needs none beforehand: a server's new pane costs no round trip to tmux
    between its ssh's first output and the shell probe.

    Keys a person types into the pane while a POSIX shell's bootstrap loop reads are
    never run (``sane.protocol.runner.bootstrap_line``): the runner is installed,
    then ``pane_has_input`` names them, unless ``clear_input``."""
    state = ctx.pane_state(pane)
    if _starting(state):
        state = _wait_for_shell(ctx, pane, RESPAWN_SETTLE)
    if _base(state.current_command) in UNSUPPORTED_SHELLS:
        raise errors.ShellUnsupported(
            f"pane {pane} is running the shell {_base(state.current_command)!r}, which sane "
            "cannot drive (it drives POSIX shells and fish); start one of those in the pane",
            pane=pane,
            shell=_base(state.current_command),
        )
    if not is_shell(state.current_command):
        raise errors.PaneNotShell(
            f"pane {pane} is running {state.current_command!r}, not a shell; "
            "sane only types into an idle POSIX shell",
            pane=pane,
            current_command=state.current_command,
        )
    kind = shell_kind(state.current_command)
    probed = kind is None
    options: list[str] = []
    name = _base(state.current_command)
    note = state.shell_note
    if kind is None:  # ssh: the shell on the other end decides
        if deadline is None:
            deadline = time.monotonic() + READY_TIMEOUT
        kind, note, name = _remote_kind(ctx, client, stream, pane, deadline)
        options.append(f"set-option -p -t {pane} {OPT_SHELL_NOTE} {quote(note)}")
    token = markers.new_token()
    nonces: list[str] = []
    # A person's text on the line is put aside first (sane.ops.has_input). Behind ssh
    # the line is emptied before that: what is on it came in before sane's probe had
    # run (tmux's answers to queries the login files printed, which the shell reads
    # as typed text after the probe), in a pane sane opened itself.
    guard = [*(clear_typed(pane) if probed else []), *takeover_guard(pane, name)]

    # A POSIX shell is given one short line (bootstrap_line) that reads the takeover's
    # lines with the tty's echo off; fish gets its lines pasted at the prompt.
    bootstrap = kind == SHELL_POSIX
    body_sent = False

    def type_takeover() -> None:
        # Same token every time: whichever copy the shell runs, its prompt marker is
        # the one recorded. A fresh shell may still be starting (rc files, or a
        # program in them reading the tty, can swallow typed-ahead keys): retype.
        nonce = markers.new_nonce()
        first = guard if not nonces else []
        nonces.append(nonce)
        lines = [bootstrap_line(nonce)] if bootstrap else takeover_lines(nonce, token, kind)
        client.command(*first, *_paste(pane, lines, nonce))

    type_takeover()
    seen = bytearray()
    if deadline is None:
        deadline = time.monotonic() + READY_TIMEOUT
    retype_at = time.monotonic() + RETYPE_AFTER
    while not any(wait_ready(seen, nonce) for nonce in nonces):
        if bootstrap and not body_sent and (nonce := bootstrapped(seen, nonces)) is not None:
            # The loop reads, echo off: the lines once, for that copy's nonce (a copy
            # typed again and read by the loop is skipped there, never run).
            body_sent = True
            body = loop_lines(nonce, [*takeover_lines(nonce, token, kind), TAKEOVER_END])
            client.command(*_paste(pane, body, nonce, bracketed=False))
        if not body_sent and time.monotonic() >= retype_at:
            retype_at = time.monotonic() + RETYPE_AFTER
            type_takeover()
        remaining = deadline - time.monotonic()
        if remaining <= 0 or stream.closed:
            raise _unconfirmed(pane, state.current_command, stream.closed)
        data = stream.take(min(remaining, 0.25))
        if data:
            seen += data
        elif pane_dead(ctx, pane):
            raise errors.RunnerUnavailable(
                f"pane {pane} died before sane's runner was ready", pane=pane
            )
    tokens = " ".join([token, *tokens_of(state)][:MAX_TOKENS])
    ready = next(m for m in (ready_marker(seen, n) for n in nonces) if m is not None)
    if ready.arg:
        options.append(f"set-option -p -t {pane} {panes.OPT_HOST_PID} {ready.arg}")
    found, _ = markers.scan(seen, 0)
    image = next((m.arg for m in found if m.kind == markers.IMAGE and m.tag == ready.tag), None)
    options.append(
        f"set-option -p -t {pane} {panes.OPT_SHELL_IMAGE} {image}"
        if image
        else f"set-option -p -u -t {pane} {panes.OPT_SHELL_IMAGE}"
    )
    widgets = any(m.kind == markers.EDITOR and m.tag in nonces for m in found)
    editor = line_editor(widgets, name)
    if guard and widgets:
        await_prompt_start(stream, seen, ready.end, frozenset({token}))
        # Typed first in the line below, which sets the options after it: one round
        # trip to tmux, not two (a cold connect waits for each, 0.2-0.8 s under load).
        options.insert(0, after_takeover(pane))
    if not widgets:  # the prompt drawn after READY: what a bare command line shows
        prompt = await_prompt(stream, seen, ready.end, frozenset({token}))
        if prompt is not None:
            options.extend(record_prompt(pane, prompt))
    # A pane sane made (it has a role) has been kept on exit since it was made
    # (``structure.prepare_commands``): setting it again would cost tmux a pass over
    # every window (any option change does), once per server of a cold connect.
    if not state.role:
        options.append(f"set-option -p -t {pane} remain-on-exit on")
    # One tmux line: the shell pid last, since it is what marks the runner installed
    # (``PaneState.runner_installed``) for every other sane process.
    client.command(
        *options,
        f"set-option -p -t {pane} {panes.OPT_TOKEN} '{tokens}'",
        f"set-option -p -t {pane} {panes.OPT_SHELL_KIND} {kind}",
        f"set-option -p -t {pane} {panes.OPT_EDITOR} {editor}",
        f"set-option -p -t {pane} {panes.OPT_SHELL_PID} {state.pid}",
    )
    typed = typed_meanwhile(seen, ready.tag)
    if typed and not clear_input:
        raise errors.PaneHasInput(
            f"a person typed into pane {pane} while sane was setting up its shell "
            f"({typed!r}); sane ran none of it and discarded it (it is not on the line). "
            "The pane is ready: run again, or ask for clear_input to go on past such text",
            pane=pane,
            text=typed,
            vi_command_mode=False,
            exact=True,
            discarded=True,
        )
    return state._replace(
        shell_pid=state.pid, token=tokens, shell_kind=kind, editor=editor, shell_note=note
    )
