"""Never type into a command line that holds a person's text.

Every operation that types (run-command, create-file, detect-platform, the runner's
takeover, fleet runs on ssh panes) goes through the run path, which asks this module
what to type before its line and what to do when the shell reports held text:

* a shell whose editor sane programmed at takeover (bash, zsh, fish: see
  :mod:`sane.protocol.editor`) gets the hold key right before sane's line, in the same
  tmux command, so nothing can come between them; the runner refuses to run when the
  widget held text, and :func:`refuse` puts the text back and raises
  ``pane_has_input`` naming it exactly. With ``clear_input`` the drop key is typed
  instead: the text is discarded, never run, and the run goes ahead.
* the takeover, which installs those widgets, cannot use them yet: before its lines
  the person's text is killed (with a sentinel, so the kill is never empty) into the
  editor's kill ring, and yanked back once the widgets are in; the first run's hold
  then finds it (the widgets drop the sentinel).
"""

from __future__ import annotations

import secrets
import time
from typing import NamedTuple, NoReturn, Protocol

from sane import errors
from sane.protocol.editor import (
    BACK_KEY,
    DROP_KEY,
    EDITOR_HOLD,
    EDITOR_SCREEN,
    EDITOR_SCREEN_VI,
    EDITOR_TTY,
    HELD_CONTINUATION,
    HELD_VI_COMMAND,
    HOLD_KEY,
    SCREEN_EDITORS,
    TAKEOVER_SENTINEL,
    YANK_KEY,
    DrawnPrompt,
    drawn_prompt,
)
from sane.protocol.markers import PROMPT, PROMPT_END, scan
from sane.protocol.queries import asks
from sane.protocol.scanner import OUTCOME_EXITED, OUTCOME_REPLACED, RunScanner
from sane.tmux import panes
from sane.tmux.command import quote
from sane.tmux.control import ControlClient, PaneStream


def _hex_keys(pane_id: str, keys: str) -> str:
    return f"send-keys -t {pane_id} -H " + " ".join(f"{b:02x}" for b in keys.encode())


# Keys that empty a command line: C-e C-u (end of line, kill to its start) in an
# editor's emacs mode; in the terminal's canonical mode (dash, posh) ^E is a character
# and ^U the kernel's line kill.
_KILL_LINE_KEYS = ("C-e", "C-u")
KILL_LINE = " ".join(_KILL_LINE_KEYS)
# The characters those keys send (what tmux types for C-e and C-u: the letter's low
# five bits), typed as text with a line (``before_typing``).
KILL_LINE_CHARS = "".join(chr(ord(key[-1]) & 0x1F) for key in _KILL_LINE_KEYS)


# Set on a pane whose last run's output held a terminal query tmux answers.
OPT_ANSWERED = "@sane_answered"


def clear_line(state: panes.PaneState) -> list[str]:
    """The tmux commands emptying the pane's command line, whatever sane's check of it
    (after a run whose output asked the terminal something: tmux's answer went to
    the shell's input, where the editor reads it as typed keys)."""
    pane = state.pane_id
    # C-g first: an answer may have put the editor in a mode of its own (the DCS of
    # XTVERSION starts with M-P, a history search in readline), which it ends.
    drop = [_hex_keys(pane, DROP_KEY)] if state.editor == EDITOR_HOLD else []
    mark = [f"set-option -p -t {pane} {OPT_ANSWERED} 1"] if checks_screen(state) else []
    return [f"send-keys -t {pane} C-g", *drop, f"send-keys -t {pane} {KILL_LINE}", *mark]


# busybox ash's key reader takes an ESC it does not know (the start of a query's
# answer) with up to 15 bytes after it and discards them all, however many keys that
# is (measured, strace: the C-e C-u sent after XTVERSION's answer went that way, and
# the answers' unread tail stayed on the line to run with sane's next line). Sixteen
# C-e first (end of line: in emacs modes it changes nothing, and the C-c after them
# ends the line anyway), so the key after them is read as a key.
_PAD = " ".join(["C-e"] * 16)


def clear_answers(
    client: ControlClient, stream: PaneStream, scanner: RunScanner, state: panes.PaneState
) -> list[str]:
    """The tmux commands to send as the pane is freed after a run whose output asked
    the terminal something (tmux's answers went to the shell's input).

    Where the screen is checked (mksh, ksh93, yash, busybox ash), the answers are
    settled now, while the pane is still claimed: the editors of these shells read
    them as keys they cannot be told to ignore (yash, in vi mode by default, takes the
    answers' ESC for the command mode and their letters for commands: `c` waits for a
    motion, `t` for a character; ash keeps the tail of one after its reader dropped
    the rest). A prompt drawn after sane's keys does not prove they were read: the
    end of XTVERSION's answer, ``ESC \\``, is yash's vi-mode completion
    (vi-complete-max), which loads its scripts for a time that grows with the load,
    with the terminal's signals on, and redraws the prompt when done. Taken for the
    prompt after sane's C-c (measured, strace and the control stream), it let the
    pane go while the C-c was still unread (the next run was refused: the check saw
    the abort's new line before its prompt); a C-c arriving during the completion is
    a SIGINT, which flushed sane's keys and left an interrupt pending that discarded
    the next run's line unrun (``running`` with no output for good).

    So the clearing first proves the editor reads keys again, before it types a C-c:
    padding and a comment marker (:func:`_echoed`), whose echo comes once every key
    before it (the answers, what they started) was read; then padding, C-c (now the
    editor's abort, never a signal: nothing the marker typed starts a completion) and a
    second marker, whose echo proves the abort was read too (a C-c in a vi search
    ends the search, not the line: the marker's ``#`` then accepts that line as a
    comment); then C-c, whose prompt is the only one that can follow, and the one
    recorded for the next run's check. Elsewhere, or if no echo or prompt came in
    time: :func:`clear_line`."""
    if state.editor not in SCREEN_EDITORS:
        return clear_line(state)
    pane = state.pane_id
    stream.take(0)  # what came before: no prompt of this clearing
    buf = bytearray()
    start = _echoed(client, stream, buf, pane, _PAD, SETTLE_WAIT)
    if start is not None:
        start = _echoed(client, stream, buf, pane, f"{_PAD} C-c", SETTLE_WAIT, start)
    if start is None:
        return clear_line(state)
    client.command(f"send-keys -t {pane} C-c")
    drawn = await_prompt(stream, buf, start, scanner.tokens)
    return record_prompt(pane, drawn) if drawn is not None else clear_line(state)


# How long the clearing waits for each marker's echo (it ends as soon as the echo is
# there): first the editor reads the answers' keys and what they started (yash's
# completion loads its scripts: 0.3 s seen on a loaded machine).
SETTLE_WAIT = 10.0


def _echoed(
    client: ControlClient,
    stream: PaneStream,
    buf: bytearray,
    pane: str,
    keys: str,
    wait: float,
    start: int = 0,
) -> int | None:
    """Type ``keys`` then a comment marker (``##`` and a nonce) and wait for the
    marker's echo after ``start`` in ``buf`` (more read from ``stream``): the editor
    has then read every key before it and reads keys as text. The position in ``buf``
    after the echo; None if it did not come within ``wait`` seconds.

    ``##``: in a vi command mode the first ``#`` accepts the line as a comment (yash,
    ksh93, mksh) and the second starts the marker on the new line; in an insert or
    emacs mode both are text. Either way the line holds a comment, nothing to run. The
    nonce is hex: no key of it starts a completion, an editor or an accept in a vi
    command mode."""
    mark = "##" + secrets.token_hex(4)
    client.command(f"send-keys -t {pane} {keys}", f"send-keys -t {pane} -l -- {quote(mark)}")
    echo = mark[1:].encode()  # after an accept-with-hash, one # is on the new line
    deadline = time.monotonic() + wait
    while (at := buf.find(echo, start)) < 0:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or stream.closed:
            return None
        buf += stream.take(min(remaining, 0.25))
    return at + len(echo)


def answers_cleared(
    client: ControlClient, stream: PaneStream, scanner: RunScanner, state: panes.PaneState
) -> list[str]:
    """:func:`clear_answers` if the run's output asked the terminal something (else
    nothing): the tmux commands to send as the pane is freed. Where no answer came in
    time, the plain clearing (:func:`clear_line`)."""
    if not asks(scanner.region()):
        return []
    try:
        return clear_answers(client, stream, scanner, state)
    except errors.TmuxError:
        return clear_line(state)


def clear_answers_left(client: ControlClient, state: panes.PaneState, scanner: RunScanner) -> None:
    """After a handed-over run ended (found by ``run wait`` or by the next run's claim),
    while its flag still holds the pane: if its output asked the terminal something,
    tmux's answers reached the shell's input after sane stopped watching the live
    output, and the editor holds them as typed keys (bash's next runs were refused
    ``pane_has_input`` naming `1R1;2c`, text nobody typed; busybox ash ran an
    answer's tail). They are cleared as the end of a run followed live clears them."""
    if not asks(scanner.region()):
        return
    stream = client.watch(state.pane_id)
    try:
        client.command(*answers_cleared(client, stream, scanner, state))
    finally:
        client.unwatch(state.pane_id, stream)


# Typed before every line into mksh, ksh93 and yash (``EDITOR_SCREEN_VI``): in vi
# command mode (`set -o vi`, a person pressed Escape on the empty line, which the screen
# does not show) sane's line was read as vi commands (mksh: `ne_go:-printf}: inaccessible
# or not found`, the run `running` for good). ESC `i` enters insert mode from any vi
# mode (in insert mode ESC goes to command mode first; in command mode it only beeps);
# in emacs mode ESC `i` is an unbound meta key (a beep; ksh93 would insert an alias
# named `_i`); two DEL then erase `^[i` where ksh93 has no editor (the kernel's line:
# its erase character) and erase nothing, with a beep, on an editor's empty line.
# Measured with real tmux panes in each shell and state (emacs, vi insert, vi command,
# no editor): the line after the keys runs as typed, and the keys echo only BELs (no
# redraw: mksh redraws its prompt for C-u). Not busybox ash: its key reader takes an
# ESC it does not know with the 15 bytes after it (``_PAD``); its vi command mode
# takes sane's line whole (measured), so it stays ``EDITOR_SCREEN`` and gets nothing.
INSERT_KEYS = "\x1bi\x7f\x7f"
# The shells given them (by the name their pane runs or their ssh probe found).
VI_SCREEN_SHELLS = frozenset({"mksh", "lksh", "ksh", "ksh93", "yash"})


def before_typing(state: panes.PaneState, clear_input: bool) -> str:
    """The keys to type right before sane's line, as the characters they send (typed
    by the same ``send-keys -l``, sane.ops.run.command.typing_line): the hold key, or
    with ``clear_input`` the drop key, where the shell's editor has sane's widgets;
    :data:`INSERT_KEYS` in mksh, ksh93 and yash; nothing elsewhere."""
    if state.editor == EDITOR_SCREEN_VI:
        return INSERT_KEYS
    if state.editor != EDITOR_HOLD:
        return ""
    # Then C-e C-u: nothing where the widget emptied the line; where the shell in the
    # foreground turns out not to be the one with the widgets (it exec'd another, a
    # person started a shell or ssh in the pane), the key arrived as text: that line
    # is killed, so sane's line (whose missing-runner guard then speaks) runs alone.
    return (DROP_KEY if clear_input else HOLD_KEY) + KILL_LINE_CHARS


def emptied_first(editor: str) -> str:
    """The keys, as the characters they send, that empty the command line before a
    line sane types at a prompt it found idle without looking at the line (the status
    probe, sane.ops.run.quiet): whatever the line holds is discarded, never run with
    sane's line. Seen under load: a handed-over run's follower, its pipe-pane file
    behind the shell, typed the probe after tmux's answers to the run's queries and
    the shell ran `...^[P>|tmux 3.3a^[\\ __sane_z=$?; ...`, creating a file `tmux`
    (dash's `>84;0;0c` a file `84`).

    The line kill, C-e C-u, in the shells whose editors sane programmed (bash, zsh,
    fish) and in the kernel's canonical mode (dash, posh: ^E is text, ^U the kill).
    In mksh, ksh93 and yash (``EDITOR_SCREEN_VI``) ESC `S` first: in a vi mode ESC
    leaves insert (or replace) mode, or ends what the answers' letters began (a
    pending motion, a `?` search), and `S` changes the whole line: empty, in insert
    mode; in emacs mode ESC `S` is an unbound meta key. Then C-e C-u: emacs mode's
    end and line kill; in vi insert mode C-e is text (ksh93) or nothing, which C-u
    kills back to where `S` began the insert, the line's start. Before, C-a C-k
    alone (7bc1ec1) were text in vi insert mode, where ksh93 typed them onto the
    probe's line and mksh's and ksh93's interrupted runs never ended. mksh's C-u
    draws its prompt again after a CR, on the same line, which the scanner takes
    for the prompt already drawn (``RunScanner``), so an interrupted run's output
    stays its own. busybox ash (``EDITOR_SCREEN``): sixteen C-e first, so an ESC its
    reader holds (the start of an answer it does not know, which takes up to 15
    bytes after it) takes only those (``_PAD``), then C-e C-u, which its editor
    reads as end and kill in its emacs and vi insert modes alike."""
    if editor in (EDITOR_HOLD, EDITOR_TTY):
        return KILL_LINE_CHARS
    if editor == EDITOR_SCREEN_VI:
        return _VI_CHANGE_LINE + KILL_LINE_CHARS
    if editor == EDITOR_SCREEN:
        return KILL_LINE_CHARS[0] * len(_PAD.split()) + KILL_LINE_CHARS
    return ""


# ESC `S`: vi's change-whole-line from any vi mode (see emptied_first).
_VI_CHANGE_LINE = "\x1bS"


# Shells whose editors take sane's widgets, and the takeover's guard keys there: those
# that put the cursor at the end of the line, in a mode where the sentinel is text,
# and those that then kill the whole line. In a vi command mode (a person pressed Esc)
# the plain End, sentinel, C-u were vi commands: bash's space moves and its `#` is
# insert-comment, which accepts the line (the person's text went to history as a
# comment, and the kill took `sane-takeover`, later reported as the person's text:
# every run refused); zsh's `#` accepted `#echo abc` too (run: `command not found`).
# In vi insert mode bash and zsh read C-e as a literal ^E, and zsh's C-u kills only
# back to where the insert began.
# * bash: End, then ESC `A`: in vi insert mode ESC enters the command mode, and there
#   `A` appends at the line's end; in emacs mode ESC `A` is M-A, readline's
#   do-lowercase-version of the unbound M-a (nothing). C-u kills in both insert modes.
# * zsh (no End key by default; ESC `A` is emacs's accept-and-hold): ESC C-v is
#   unbound in emacs and leaves either vi mode in the command mode (C-v unbound
#   there). Then C-e (end of line in emacs, unbound in vicmd), `$a` (vicmd: append
#   at the end; emacs: text) and two backspaces (emacs: erase that text; vi insert:
#   nothing, the insert began there). To kill: ESC C-v again, C-u (emacs: the whole
#   line; vicmd: unbound), `0Di` (vicmd: the whole line into the cut buffer, then
#   insert mode; emacs: text) and three backspaces, as before.
# * fish: End and C-u are bound in every mode; its vi normal mode has no pair harmless
#   in its emacs mode (there ESC is `cancel` and `A` self-inserts), so the sentinel
#   is typed as a bracketed paste, which fish inserts as text in every mode.
class _Guard(NamedTuple):
    """A shell's takeover guard: the keys before the sentinel, the sentinel as the
    characters typed (sent as they are: ``send-keys -H``), the keys killing the line."""

    to_end: str
    sentinel: str
    kill: str


# The sentinel as a bracketed paste (fish): ESC [200~ ... ESC [201~.
_PASTED_SENTINEL = f"\x1b[200~{TAKEOVER_SENTINEL}\x1b[201~"
_GUARD_KEYS = {
    "bash": _Guard("End Escape A", TAKEOVER_SENTINEL, "C-u"),
    "zsh": _Guard(
        "Escape C-v C-e '$' a BSpace BSpace",
        TAKEOVER_SENTINEL,
        "Escape C-v C-u 0 D i BSpace BSpace BSpace",
    ),
    "fish": _Guard("End", _PASTED_SENTINEL, "C-u"),
}


def clear_typed(pane_id: str) -> list[str]:
    """The tmux commands emptying a command line whatever its editor (a shell without
    widgets, or one whose widgets are not there yet): its text is discarded, never
    run. Padded (``_PAD``): busybox ash may still hold the tail of a query's answer."""
    return [f"send-keys -t {pane_id} {_PAD} C-u"]


def takeover_guard(pane_id: str, shell: str) -> list[str]:
    """The tmux commands to send before the takeover lines into ``shell``: the person's
    text (if any) is killed into the editor's kill ring, the sentinel with it, so the
    takeover's lines arrive on an empty line; :func:`after_takeover` yanks it back
    once the widgets are there, and the first run's hold finds it."""
    guard = _GUARD_KEYS.get(shell)
    if guard is None:
        # No widgets will hold a person's text, and no prompt is recorded yet to tell
        # it from: the line is emptied (padded, see _PAD: busybox ash may still hold
        # the tail of answers to queries its login files printed), its text discarded
        # unrun. Before, the takeover's first line was joined to it: `rm -rf DIR #`
        # ran rm and commented out sane's definitions (the run "completed" with
        # `__sane_rc: not found`); ash ran `cP>|tmux 3.3a...`.
        return clear_typed(pane_id)
    return [
        f"send-keys -t {pane_id} {guard.to_end}",
        _hex_keys(pane_id, guard.sentinel),
        f"send-keys -t {pane_id} {guard.kill}",
    ]


def after_takeover(pane_id: str) -> str:
    """The yank key: the text killed by :func:`takeover_guard` goes back on the line."""
    return _hex_keys(pane_id, YANK_KEY)


def refuse(
    client: ControlClient,
    stream: PaneStream,
    scanner: RunScanner,
    pane_id: str,
) -> None:
    """The runner found a person's text on the command line and ran nothing: put the
    text back where the person left it (the back key's widget) and say so.

    The back key is typed once the shell draws its prompt again (its prompt marker):
    until then the terminal is in its canonical mode, where a line kill typed next
    (the C-e C-u after the drop key of a clear_input run) would take the key with it."""
    kind = scanner.outcome.exit_code if scanner.outcome is not None else None
    text, vi_command = scanner.held, kind == HELD_VI_COMMAND
    if kind == HELD_CONTINUATION:
        _refuse_continuation(client, pane_id)
    await_prompt_start(stream, scanner.buf, scanner.final or 0, scanner.tokens)
    client.command(_hex_keys(pane_id, BACK_KEY))
    shown = text if text is not None else "(unreadable)"
    raise errors.PaneHasInput(
        f"the command line of pane {pane_id} holds text a person typed ({shown!r}); sane "
        "typed nothing into it and ran nothing. Finish or clear it, or ask for "
        "clear_input to discard it",
        pane=pane_id,
        text=text,
        vi_command_mode=vi_command,
        exact=text is not None,
    )


def _refuse_continuation(client: ControlClient, pane_id: str) -> NoReturn:
    """bash at a continuation (the held kind 2: sane.protocol.editor): the widget took
    sane's line off the editor's line and put the person's back; the command's earlier
    lines are in bash's parser, which nobody can read, so the text is not named: the
    screen's cursor line is (``details.line``), and the continuation stays as it was."""
    rows = client.command(
        f"display-message -p -t {pane_id} '#{{cursor_y}}'", f"capture-pane -p -N -t {pane_id}"
    )
    y = int(rows[0]) if rows and rows[0].isdigit() else -1
    line = rows[1 + y].rstrip() if 0 <= y < len(rows) - 1 else None
    _refuse_a_continuation(pane_id, line, f"the screen's line is {line!r}", False)


def await_prompt_start(
    stream: PaneStream, buf: bytearray, start: int, tokens: frozenset[str]
) -> bool:
    """Wait until the shell starts drawing its prompt after ``start`` in ``buf`` (more
    read from ``stream``): from then on its editor reads keys in raw mode, where a
    line kill sane types is the editor's, not the kernel's (which would take any key
    typed before it on that line). False if no prompt came in time."""
    deadline = time.monotonic() + PROMPT_WAIT
    while True:
        found, _ = scan(buf, start)
        if any(m.kind == PROMPT and m.tag in tokens for m in found):
            return True
        remaining = deadline - time.monotonic()
        if remaining <= 0 or stream.closed:
            return False
        buf += stream.take(min(remaining, 0.25))


# -- shells without widgets: the screen --------------------------------------------------

# How long to wait for the prompt to be drawn after a run's end or the takeover (it
# follows within microseconds; the wait ends as soon as it is there).
PROMPT_WAIT = 2.0


class Bytes(Protocol):
    """Where the bytes after a run's end come from: the live stream of the process
    that followed the run (a PaneStream), or a handed-over run's stream file."""

    @property
    def closed(self) -> bool: ...

    def take(self, timeout: float) -> bytes: ...


def await_prompt(
    stream: Bytes, buf: bytearray, start: int, tokens: frozenset[str], wait: float = PROMPT_WAIT
) -> DrawnPrompt | None:
    """The prompt the shell draws after ``start`` in ``buf`` (more read from
    ``stream``), as the screen shows its last line; None if none came within ``wait``
    seconds.

    yash's right prompt follows its prompt's end in the same write, unless yash had no
    room for it: once the prompt's end is there, its right prompt is waited for
    ``PROMPT_WAIT`` more (however late the prompt came), then taken as not drawn.
    Either way what is recorded is what sane saw: if it was drawn after all (a write
    split and delayed that long), the screen shows more than the prompt recorded, and
    the next run is refused."""
    deadline = time.monotonic() + wait
    left: DrawnPrompt | None = None
    while (drawn := drawn_prompt(buf, start, tokens)) is None:
        now = time.monotonic()
        if left is None and (left := drawn_prompt(buf, start, tokens, True)) is not None:
            deadline = now + PROMPT_WAIT
        remaining = deadline - now
        if remaining <= 0 or stream.closed:
            return drawn_prompt(buf, start, tokens, True)
        buf += stream.take(min(remaining, 0.25))
    return drawn


def await_settled(stream: Bytes, scanner: RunScanner, wait: float = SETTLE_WAIT) -> int | None:
    """Where in ``scanner.buf`` (more read from ``stream``) the shell is done with
    every line sane typed for the ended run (``RunScanner.settled_at``); None if a
    status probe's answer did not come within ``wait`` seconds (it must come: the
    probe was typed at the idle shell's prompt)."""
    deadline = time.monotonic() + wait
    while (at := scanner.settled_at()) is None:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or stream.closed:
            return None
        scanner.buf += stream.take(min(remaining, 0.25))
    return at


def record_prompt(pane_id: str, drawn: DrawnPrompt) -> list[str]:
    """The tmux commands keeping the prompt as drawn (``@sane_prompt``, and yash's
    right prompt with the spaces before it, ``@sane_prompt_right``)."""
    return [
        f"set-option -p -t {pane_id} {panes.OPT_PROMPT} {quote(drawn.line)}",
        f"set-option -p -t {pane_id} {panes.OPT_PROMPT_RIGHT} {quote(drawn.right)}"
        if drawn.right
        else f"set-option -p -u -t {pane_id} {panes.OPT_PROMPT_RIGHT}",
    ]


def forget_prompt(pane_id: str) -> list[str]:
    """The tmux commands forgetting the prompt kept (not seen after the last run)."""
    return [
        f"set-option -p -u -t {pane_id} {panes.OPT_PROMPT}",
        f"set-option -p -u -t {pane_id} {panes.OPT_PROMPT_RIGHT}",
    ]


def forget_replaced_shell(pane_id: str) -> list[str]:
    """The tmux commands after a run whose shell exec'd another (``exec bash``): the
    runner and the editor's widgets went with the old shell, whose pid the new one
    keeps (and over ssh the pane's own process, ssh, never changes). The runner's
    shell pid is forgotten, so the next run takes the new shell over (its guard first)
    instead of typing the hold key into an editor with no widget for it; and the pane
    is marked new, so that run (also one that reaches a server's pane, whose opening
    installs the runner itself) says ``shell_restarted``."""
    return [
        f"set-option -p -u -t {pane_id} {panes.OPT_SHELL_PID}",
        f"set-option -p -t {pane_id} {panes.OPT_SHELL_NEW} 1",
    ]


def prompt_after_run(stream: Bytes, scanner: RunScanner, pane_id: str) -> list[str]:
    """The tmux commands keeping the prompt a screen-checked shell drew after the
    run's end (in ``scanner.buf``, more read from ``stream``), which the next run's
    check compares against, whichever way the run ended: followed to its end by the
    call that typed it, by a later run wait, run input or interrupt, or found over by
    the next run (a ``cd`` or a new ``PS1`` shows in the prompt drawn then, and only
    then). Also the end of the answered-queries flag, which was that run's alone."""
    unmark = f"set-option -p -u -t {pane_id} {OPT_ANSWERED}"
    outcome = scanner.outcome
    if outcome is not None and outcome.kind == OUTCOME_REPLACED:
        # The run's shell exec'd another (same pid): the runner and the editor's widgets
        # went with it. Forgotten here, so the next run takes the new shell over (its
        # guard first) instead of typing the hold key into an editor without a widget
        # for it (seen over ssh: `770~` left on the line, then refused as typed text).
        return [unmark, *forget_replaced_shell(pane_id)]
    if outcome is None or scanner.final is None or outcome.kind in _NO_PROMPT:
        return [unmark]
    # After the answer of a status probe typed meanwhile, if any: the prompt drawn
    # before it is not the shell's last, and keys typed until the prompt after it
    # reach the terminal in its canonical mode (seen under load, mksh: the clearing
    # of tmux's answers, echoed by the kernel, was recorded as the bare prompt and
    # the next run refused).
    start = await_settled(stream, scanner)
    drawn = await_prompt(stream, scanner.buf, start, scanner.tokens) if start is not None else None
    # Not seen in time (a prompt slow to draw, a machine under load): the prompt
    # recorded before the run is forgotten, never compared against. It may be the
    # prompt of before a `cd` or a new PS1, and a person's text could then look like
    # it: a line of `PS1=''` plus a typed `$ ` matched the old `$ `, and sane's line
    # went after it, a comment (mksh, ksh93, yash, ash; the run never ran).
    kept = record_prompt(pane_id, drawn) if drawn is not None else forget_prompt(pane_id)
    return [*kept, unmark]


def note_quiet(
    client: ControlClient, stream: PaneStream, scanner: RunScanner, pane_id: str
) -> list[str]:
    """After a run this process followed live, whose prompt it saw drawn: when that
    prompt is the last thing the pane printed, let the control client remember the
    place, so the next run here can skip :func:`check_screen` while nothing more came
    (``ControlClient.quiet``): the screen then still shows that bare prompt. Saves a
    tmux round trip per run of a screen-checked shell. The tmux commands to send as
    the pane is freed: tmux keeps the screen's place then
    (``sane.tmux.panes.mark_screen_place``), and the next run's line is typed only if
    tmux finds it unchanged: output tmux has shown but this client has not read yet
    (its reader lags under load) is never taken for a quiet pane."""
    buf = scanner.buf
    found, _ = scan(buf, scanner.final or 0)
    ends = [m.end for m in found if m.kind == PROMPT_END and m.tag in scanner.tokens]
    if ends and ends[-1] == len(buf) and not stream.take(0) and stream.taken_at is not None:
        client.note_quiet(pane_id, stream.taken_at)
        return [panes.mark_screen_place(pane_id)]
    return []


# Runs after which the run's shell draws no prompt: it exited, or exec'd another.
_NO_PROMPT = frozenset({OUTCOME_EXITED, OUTCOME_REPLACED})


class Ended:
    """The bytes of a stream that has ended (a run's stream file read whole)."""

    closed = True

    def take(self, timeout: float) -> bytes:
        return b""


# Shells that read their command line in the terminal's canonical mode (no line
# editor of their own): the kernel holds the typed text and can show it.
TTY_SHELLS = frozenset({"dash", "posh"})
# Their continuation prompt: dash's and posh's default PS2, which the takeover gives a
# bold space (sane.protocol.runner.TTY_PS2_PRINTF; a PS2 set otherwise is not
# recognised: docs/protocol.md, limits).
TTY_PS2 = "> "
# The kernel's reprint character (VREPRINT, on by default with IEXTEN): it echoes
# ``^R``, a newline and the line typed so far, and changes nothing.
_REPRINT_ECHO = b"^R"


def line_editor(widgets: bool, shell: str) -> str:
    """How a shell's command line is checked (``@sane_editor``)."""
    if widgets:
        return EDITOR_HOLD
    if shell in TTY_SHELLS:
        return EDITOR_TTY
    return EDITOR_SCREEN_VI if shell in VI_SCREEN_SHELLS else EDITOR_SCREEN


def checks_screen(state: panes.PaneState) -> bool:
    return state.editor in SCREEN_EDITORS or state.editor == EDITOR_TTY


def _kernel_line(client: ControlClient, stream: PaneStream, pane: str) -> str | None:
    """The text in the terminal's line buffer, as the kernel echoes it for two
    reprint characters (the second tells where the first's echo ends); None if the
    echo did not come (the terminal is not in canonical mode)."""
    client.command(f"send-keys -t {pane} C-r C-r")
    seen = bytearray()
    deadline = time.monotonic() + PROMPT_WAIT
    while True:
        first = seen.find(_REPRINT_ECHO)
        second = seen.find(_REPRINT_ECHO, first + 2) if first >= 0 else -1
        if second >= 0:
            text = bytes(seen[first + 2 : second]).lstrip(b"\r").removeprefix(b"\n")
            return text.decode("utf-8", "replace")
        remaining = deadline - time.monotonic()
        if remaining <= 0 or stream.closed:
            return None
        seen += stream.take(min(remaining, 0.25))


def check_screen(
    client: ControlClient,
    stream: PaneStream,
    state: panes.PaneState,
    clear_input: bool,
    claim: str | None = None,
) -> None:
    """A shell without editor widgets (``EDITOR_SCREEN``): its cursor line must show
    the prompt as sane saw it drawn last, and nothing after it. Otherwise the line
    holds a person's text, or the shell waits for the rest of a command (a
    continuation): refused with ``pane_has_input`` naming what the screen shows after
    the prompt (that is all such a shell lets sane know; dash and posh: what the
    kernel's line holds), or with ``clear_input`` interrupted (C-c: the kernel's SIGINT
    in dash and posh, the editor's abort in mksh, ksh93, yash, busybox ash), which
    discards the line and any continuation unrun, before sane types. ``claim``: the run's
    claim, sent first in the same tmux line (a busy pane fails it: TmuxError)."""
    pane = state.pane_id
    lines = client.command(
        *([claim] if claim is not None else []),  # the run's claim, when not made yet
        f"display-message -p -t {pane} '#{{cursor_y}} #{{{OPT_ANSWERED}}}'",
        f"display-message -p -t {pane} '#{{{panes.OPT_PROMPT}}}'",
        f"display-message -p -t {pane} '#{{{panes.OPT_PROMPT_RIGHT}}}'",
        f"capture-pane -p -N -t {pane}",
    )
    head = lines[0].split() if lines else []
    if len(lines) < 3 or not head or not head[0].isdigit():
        return
    y, prompt, right, screen = int(head[0]), lines[1], lines[2], lines[3:]
    line = screen[y] if y < len(screen) else ""
    # yash's right prompt is on that line, after spaces: the whole line as drawn.
    if prompt and line.rstrip() == (prompt + right).rstrip():
        return
    if len(head) > 1:
        # The last run's output asked the terminal, and its end saw no prompt after
        # the answers' clearing (clear_answers): what is on the line may be tmux's
        # answers. Cleared again: a person's text typed meanwhile goes with it.
        client.command(
            f"send-keys -t {pane} {KILL_LINE}", f"set-option -p -u -t {pane} {OPT_ANSWERED}"
        )
        return
    if (
        state.editor == EDITOR_TTY
        and line.rstrip() == TTY_PS2.rstrip()
        and _bold_ps2(client, pane, y)
    ):
        # A continuation (``echo 'abc`` + Enter): the line shows the bare ``PS2`` as
        # sane set it (its bold space), nothing typed after it (the kernel echoes what
        # is typed). Only that exact line is taken for one: after a multi-line run
        # dash draws its PS2s on the prompt's line (``> > $ ``), and a ``PS1='> '``
        # (a new dash a person exec'd) has a plain space. Not asked of the kernel:
        # its reprint's echo would leave the screen without the evidence for the
        # next call.
        if not clear_input:
            shown = line.rstrip()
            _refuse_a_continuation(
                pane, shown, f"its line shows {shown!r} and nothing is typed on it", None
            )
        _interrupt_line(client, stream, state)
        return
    if state.editor == EDITOR_TTY and (typed := _kernel_line(client, stream, pane)) is not None:
        # An empty kernel line on a line that is neither the prompt sane saw drawn nor
        # the bare PS2: taken as an empty command line (a prompt drawn without sane).
        if not typed:
            return
        if not clear_input:
            raise errors.PaneHasInput(
                f"the command line of pane {pane} holds text a person typed ({typed!r}); "
                "sane typed nothing into it and ran nothing. Finish or clear it, or ask "
                "for clear_input to discard it",
                pane=pane,
                text=typed,
                vi_command_mode=None,
                exact=True,
            )
    if clear_input:
        _interrupt_line(client, stream, state)
        return
    # A long line wraps: its text starts on a row above the cursor's.
    joined = [row for row in client.command(f"capture-pane -p -J -N -t {pane}") if row.strip()]
    line = joined[-1] if joined else line
    text = line[len(prompt) :].rstrip() if prompt and line.startswith(prompt) else None
    if text is not None and right.strip():
        # Text typed short of yash's right prompt leaves it drawn where it was: not
        # the person's text.
        at = len(right) - len(right.lstrip())
        shown = right.strip()
        if text[at : at + len(shown)] == shown and not text[at + len(shown) :].strip():
            text = text[:at].rstrip()
    seen = (
        f"does not show the shell's bare prompt {prompt!r} but {line.rstrip()!r}"
        if prompt
        else f"shows {line.rstrip()!r}, which sane cannot tell from the shell's prompt: it"
        f" did not see the prompt drawn after the last run (within {PROMPT_WAIT:g} s)"
    )
    raise errors.PaneHasInput(
        f"the command line of pane {pane} {seen}: a person's text may be on it, or the "
        "shell may wait for the rest of a command (a continuation); sane typed "
        "nothing into it and ran nothing. Finish or clear it, or ask for clear_input",
        pane=pane,
        text=text,
        vi_command_mode=None,
        line=line.rstrip(),
        exact=False,
    )


def _bold_ps2(client: ControlClient, pane: str, y: int) -> bool:
    """Does the cursor's row show sane's PS2 (its space with an attribute: a row
    captured with escapes holds one)?"""
    rows = client.command(f"capture-pane -p -e -N -S {y} -E {y} -t {pane}")
    return bool(rows) and "\x1b[" in rows[0]


def _refuse_a_continuation(
    pane: str, line: str | None, seen: str, vi_command_mode: bool | None
) -> NoReturn:
    """``pane_has_input`` for a shell waiting for the rest of a command (its earlier
    lines cannot be read: no ``text``); ``seen``: what sane saw of it."""
    raise errors.PaneHasInput(
        f"the shell in pane {pane} waits for the rest of a command a person started (a"
        f" continuation: {seen}); sane typed nothing into it and ran nothing. Finish or"
        " cancel it (C-c), or ask for clear_input to cancel it",
        pane=pane,
        text=None,
        vi_command_mode=vi_command_mode,
        exact=False,
        continuation=True,
        line=line,
    )


def _interrupt_line(client: ControlClient, stream: PaneStream, state: panes.PaneState) -> None:
    """``clear_input`` where the screen is checked: C-c, which discards the line being
    edited (the kernel's line kill and SIGINT in dash and posh, the editor's abort in
    mksh, ksh93, yash, busybox ash) and a continuation with it (``echo 'abc`` +
    Enter, waiting for its closing quote: a line kill would only empty the current
    line, and sane's line would join the person's command), without running any of
    it; then the new prompt is awaited (the keys typed before it would be read by
    the editor of the line being discarded) and recorded.

    In the shells with an editor (``EDITOR_SCREEN``) that C-c is the editor's abort
    only if the editor is reading keys, which sane cannot know when it did not see
    the prompt drawn after the last run: a prompt still being computed (a slow
    ``PS1``: its command substitution, a git status) reads no keys, the terminal is
    in its canonical mode, and the C-c is a SIGINT. mksh then draws its prompt and
    throws away the next line read, unrun (measured, strace: sane's line read to its
    Enter, then a new prompt and no run; the run ``running`` for good). So a second
    C-c is typed once the first one's prompt is drawn (mksh switches its editor on
    before drawing a prompt): the editor's abort, which ends that pending interrupt
    (and where none was pending only discards the empty line); its prompt is the one
    recorded, as :func:`clear_answers` does after tmux's answers."""
    pane = state.pane_id
    tokens = frozenset((state.token or "").split())
    stream.take(0)  # what came before: no prompt of this clearing
    buf = bytearray()
    client.command(f"send-keys -t {pane} C-c")
    drawn = await_prompt(stream, buf, 0, tokens, CLEAR_WAIT)
    if drawn is not None and state.editor in SCREEN_EDITORS:
        start = _prompt_end(buf, tokens)
        client.command(f"send-keys -t {pane} C-c")
        drawn = await_prompt(stream, buf, start, tokens, CLEAR_WAIT)
    if drawn is None:
        raise errors.PaneHasInput(
            f"the command line of pane {pane} was interrupted (C-c) to clear it, but the "
            f"shell drew no prompt within {CLEAR_WAIT:g} s; sane typed nothing else",
            pane=pane,
            text=None,
            vi_command_mode=None,
            exact=False,
        )
    client.command(*record_prompt(pane, drawn))


# How long clear_input waits for the prompt after each of its C-c (the wait ends as
# soon as it is drawn). Longer than PROMPT_WAIT, the wait on every run's path: this
# prompt must come (sane's own C-c), also when the shell takes seconds to draw it (a
# PS1 that runs something; a loaded machine).
CLEAR_WAIT = 10.0


def _prompt_end(buf: bytearray, tokens: frozenset[str]) -> int:
    """Where the first prompt drawn in ``buf`` ends (after its prompt-end marker; the
    prompt :func:`await_prompt` found there)."""
    found, _ = scan(buf, 0)
    opened = False
    for m in found:
        if m.tag in tokens and m.kind == PROMPT:
            opened = True
        elif m.tag in tokens and m.kind == PROMPT_END and opened:
            return m.end
    return len(buf)
