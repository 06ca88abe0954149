"""Turn the raw bytes between two markers into the exact output of the program.

The pane's stream is what a terminal receives: the tty turned each ``\\n`` into
``\\r\\n`` (so ``\\r\\n`` -> ``\\n`` restores the program's bytes exactly, and a
program's own ``\\r\\n`` comes back as ``\\r\\r\\n`` -> ``\\r\\n``), and programs
interleave escape sequences (colour, cursor moves, screen clears). Escapes are
removed from text unless the caller keeps them; output that is not UTF-8 is binary
and keeps them (they are bytes of the data there). Nothing else is touched: no trailing newline is
added or removed, invalid UTF-8 is kept byte for byte.
"""

from __future__ import annotations

import base64
import re
from typing import NamedTuple

from sane.protocol import markers
from sane.protocol.queries import drop_answers

# ECMA-48 sequences: CSI, OSC/DCS/SOS/PM/APC strings, charset designations, 2-byte ESC.
# (A CSI may carry a shift-in: terminfo's sgr0 for tmux's TERM=screen is ESC[m SI.)
_ESCAPES = re.compile(
    rb"\x1b\[[0-?]*[ -/]*[@-~]\x0f?"
    rb"|\x1b[\]PX^_][^\x07\x1b]*(?:\x07|\x1b\\)"
    rb"|\x1b[()*+][0-~]"
    rb"|\x1b[ -/]*[0-~]"
)
# An escape sequence cut off by the end of the data received so far.
_PARTIAL_ESCAPE = re.compile(rb"\x1b(?:\[[0-?]*[ -/]*|[\]PX^_][^\x07\x1b]*|[()*+]|[ -/]*)?\Z")
# What the tty and the shell add after C-c, before the prompt: the echoed ^C and a
# newline; terminal modes (bash's bracketed paste, yash's keypad); zsh's and yash's
# PROMPT_SP mark (a standout %, # or $, then spaces to the margin and a CR).
_MODE = rb"(?:\x1b\[[0-?]*[ -/]*[@-~]|\x1b[=>]|\x0f)"
_PROMPT_SP = rb"(?:[%#$]" + _MODE + rb"* +\r(?: \r)?)"
# A title or other OSC a prompt hook prints (oh-my-zsh's precmd sets the window title)
# counts as part of that tail only after the ^C or the PROMPT_SP mark: an OSC the
# command itself printed last is its output.
_OSC = rb"\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)"
_ABORT_TAIL = re.compile(
    rb"(?:(?:\^C(?:\r*\n)?)"
    + _MODE
    + rb"*"
    + _PROMPT_SP
    + rb"?|"
    + _MODE
    + rb"*"
    + _PROMPT_SP
    + rb")(?:\r|"
    + _MODE
    + rb"|"
    + _OSC
    + rb")*\Z"
    rb"|" + _MODE + rb"*(?:\r|" + _MODE + rb")*\Z"
)
# Only this much of an aborted run's end is searched for that tail (the PROMPT_SP
# spaces fill one line of the widest pane).
_ABORT_TAIL_SPAN = 8192


def strip_escapes(data: bytes) -> bytes:
    return _ESCAPES.sub(b"", data)


# What an interactive bash prints when the command ends it with `exit`: dropped where
# the shell's own marker says bash printed it (BASH_EXIT_LINE), and at the end of a lost
# run's output, where no marker came (best effort: that output is not claimed whole).
_LOGOUT_LINE = rb"(?:(?:logout|exit)\r?\n)?"
_LOGOUT_TAIL = re.compile(rb"(?:logout|exit)\r?\n\Z")


# What the local ssh client prints when the connection drops under a run.
_SSH_CLOSED_TAIL = re.compile(
    rb"(?:Connection to \S+ closed(?: by remote host)?\.|"
    rb"client_loop: send disconnect: [^\r\n]*)\r*\n?\Z"
)


# fish's own line editor draws around what a command in fish prints when the command
# reads a line with fish's `read`: the line redrawn from column 0 (``\r`` ... ``ESC[K``),
# the cursor put back where it is (``\r ESC[nC``, or ``ESC[C`` repeated for a short
# move), and, once the line is read, the "missing newline" mark fish prints at every
# new line it starts (``⏎``, spaces to the margin, ``\r⏎ \r``: invisible where the
# cursor was at column 0). While `read` waits, fish also runs the work its own command
# line left behind (a syntax highlighting of a text that line held, finished late): its
# command line's screen code then repaints that line from where it believes the cursor
# is: back to the line's start (up, left), clear it (``ESC[J`` or ``ESC[K``), and go to
# the column after its prompt (``\r ESC[nC``). None of it is the command's output.
_SGR = rb"(?:\x1b\[[0-9;]*m\x0f?)"
# Written to start at a literal byte (a leading optional group would be tried at every
# offset of a large output); the SGR codes just before it go too (_drawing_spans).
_FISH_MARK = re.compile(rb"\xe2\x8f\x8e" + _SGR + rb"* +\r\xe2\x8f\x8e \r(?:\x1b\[K)?")
# A move right as fish writes it: terminfo's parm_right_cursor, or cursor_right repeated.
_RIGHT = rb"\x1b\[[0-9]{0,4}C"
# fish's command line repainted under a `read` (see above): moves (up, left, right: from
# where fish believes its cursor is to the end of its prompt), a clear to the end of the
# line or screen, then the cursor put after its prompt again (\r and moves right), and
# no text. Found from the clear (a literal start), the moves looked for before it. (A
# repaint that needs no move, or a prompt of width 0, would not show as one.)
_MOVE = rb"(?:\x1bM|\x1b\[[0-9]{0,4}[A-D])"
_CLEAR_TO_PROMPT_END = re.compile(rb"\x1b\[[JK]" + _SGR + rb"*\r(?:" + _RIGHT + rb")+")
_MOVES_AT_END = re.compile(rb"(?:" + _MOVE + rb"|" + _SGR + rb")+\Z")
_RIGHTS = re.compile(rb"(?:" + _RIGHT + rb")+")
_ANY_MOVE = re.compile(_MOVE)
# A carriage return that may change nothing: back to column 0 and right again (group 1:
# the moves), or the start of a line redrawn up to a clear-to-end-of-line.
_FISH_NOOP_CR = re.compile(
    rb"\r((?:" + _RIGHT + rb")+)|\r(?=(?:[^\r\n\x1b]|" + _SGR + rb")*\x1b\[K)"
)
_CURSOR_MOVE = re.compile(rb"\x1b\[([0-9]{0,4})([CD])")


_SGR_AT_END = re.compile(_SGR + rb"\Z")


def _drawing_spans(raw: bytes) -> list[tuple[int, int]]:
    """Where fish's missing-newline marks are in ``raw`` (with the SGR codes that start
    them), and its command line's repaints under a `read` (:func:`_repaints`)."""
    spans: list[tuple[int, int]] = []
    done = 0
    for m in _FISH_MARK.finditer(raw):
        start = m.start()
        while start > done and (sgr := _SGR_AT_END.search(raw, max(done, start - 16), start)):
            start = sgr.start()
        spans.append((start, m.end()))
        done = m.end()
    return sorted(spans + _repaints(raw))


def _repaints(raw: bytes) -> list[tuple[int, int]]:
    """Where fish's command line was repainted under a `read` in ``raw``."""
    spans: list[tuple[int, int]] = []
    for m in _CLEAR_TO_PROMPT_END.finditer(raw):
        moves = _MOVES_AT_END.search(raw, max(0, m.start() - 256), m.start())
        if moves is None:
            continue
        start = moves.start()
        # Moves right just after a \r are that \r's (the read putting its cursor back).
        if raw[start - 1 : start] == b"\r" and (rights := _RIGHTS.match(raw, start)):
            start = rights.end()
        if _ANY_MOVE.search(raw, start, m.start()):
            spans.append((start, m.end()))
    return spans


def fish_repainted(raw: bytes) -> bool:
    """Whether fish repainted its command line under a `read` on ``raw``'s last line
    (the screen then no longer shows that line as the read drew it)."""
    return bool(_repaints(raw[raw.rfind(b"\n") + 1 :]))


def _without(data: bytes, spans: list[tuple[int, int]], boundary: int) -> tuple[bytes, int]:
    """``data`` without the (sorted) ``spans``, and where ``boundary`` lands in it."""
    kept: list[bytes] = []
    done = 0
    new_boundary = boundary
    for start, end in spans:
        if end <= done:
            continue
        start = max(start, done)
        kept.append(data[done:start])
        new_boundary -= max(0, min(end, boundary) - start) if start < boundary else 0
        done = end
    kept.append(data[done:])
    return b"".join(kept), new_boundary


def _moves(moves: bytes) -> int:
    """How far right ``moves`` (``ESC[nC`` / ``ESC[C``, one or more) go."""
    return sum(int(n or b"1") for n, _ in _CURSOR_MOVE.findall(moves))


def _column(line: bytes, col: int = 0) -> int:
    """The cursor's column after ``line`` (text on one line) from column ``col``:
    characters count one (a wide one makes a later move not match, and its \\r stays),
    escapes none but a move right or left, a carriage return goes back to 0."""
    for part in re.split(rb"(\r|" + _ESCAPES.pattern + rb")", line):
        if part == b"\r":
            col = 0
        elif part.startswith(b"\x1b"):
            move = _CURSOR_MOVE.fullmatch(part)
            if move is not None:
                n = int(move.group(1) or b"1")
                col = col + n if move.group(2) == b"C" else max(0, col - n)
        else:
            col += sum(1 for b in part if b >= 0x20 and b & 0xC0 != 0x80)
    return col


def tidy_fish(raw: bytes, before: bytes) -> bytes:
    """``raw`` (a piece of a run in fish; ``before``: the run's output before it, which
    tells the cursor's column) without fish's line-editor drawing (see above). A
    carriage return is dropped only where it changes nothing: a move back to the column
    the cursor is at, or the start of a redraw of a line the cursor is at the start of;
    or in a repaint of fish's command line under a `read`, which goes whole (the
    column is as the `read` left it: fish's read draws on from there). Any other is the
    command's and stays. The line ``raw`` continues is looked at with it (a repaint
    may start in the piece returned before). Only the few candidates are looked at, so
    a large output costs a regex scan."""
    if not is_text(raw):
        return raw
    head = before[before.rfind(b"\n") + 1 :]
    data, boundary = _without(head + raw, _drawing_spans(head + raw), len(head))
    kept: list[bytes] = []
    done = boundary
    at, col = 0, 0  # the column at ``at``, carried from one candidate to the next
    for m in _FISH_NOOP_CR.finditer(data, boundary):
        line_start = data.rfind(b"\n", at, m.start()) + 1
        if line_start > at:
            at, col = line_start, 0
        # A dropped \r changed nothing: counting it and its moves gives the same column.
        at, col = m.start(), _column(data[at : m.start()], col)
        if (col == _moves(m.group(1))) if m.group(1) is not None else col == 0:
            kept.append(data[done : m.start()])
            done = m.end()
    kept.append(data[done:])
    return b"".join(kept)


def clean(
    raw: bytes,
    keep_ansi: bool = False,
    aborted: bool = False,
    exited: bool = False,
    lost: bool = False,
    nonce: str | None = None,
) -> bytes:
    """Exact program output from raw stream bytes. ``nonce``: the run's, whose
    BASH_EXIT_LINE marker goes with bash's own `exit` line right before it (printed by
    bash alone: the same line from another shell is the command's), and whose USER_EXIT
    marker (the user's EXIT trap, kept in sane's, starts) goes."""
    raw = drop_answers(raw)  # the tty's echo of tmux's answers: not the program's
    if lost:
        raw = _SSH_CLOSED_TAIL.sub(b"", raw)
    if aborted:
        head = max(0, len(raw) - _ABORT_TAIL_SPAN)
        raw = raw[:head] + _ABORT_TAIL.sub(b"", raw[head:], count=1)
    if exited and nonce is not None:
        bash_line = re.escape(markers.marker_bytes(nonce, markers.BASH_EXIT_LINE))
        raw = re.sub(_LOGOUT_LINE + bash_line, b"", raw, count=1)
        raw = raw.replace(markers.marker_bytes(nonce, markers.USER_EXIT), b"", 1)
    if exited and lost:
        raw = _LOGOUT_TAIL.sub(b"", raw)
    if lost:
        # Cut short (tmux drops a dying pane's unsent output): its last byte may be the
        # first half of the tty's `\r\n` for a `\n` (seen in CI: `...18281\r`, 3 of 25
        # runs of test_exit_trap_output). Dropped, the output is a true prefix whether
        # that `\r` was the tty's or the program's own.
        raw = raw.removesuffix(b"\r")
    data = raw.replace(b"\r\n", b"\n")
    return data if keep_ansi or not is_text(data) else strip_escapes(data)


def is_text(data: bytes) -> bool:
    """Valid UTF-8. Anything else is binary output (``cat`` of an image, a gzip stream):
    its bytes are kept exactly, escape-looking bytes included (removing them lost bytes
    of the data), and the result carries them in ``output_base64``."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def safe_cut(raw: bytes) -> int:
    """How much of a still-growing region can be cleaned and returned now.

    Holds back a trailing ``\\r`` (its ``\\n`` may follow), an unfinished escape
    sequence and an unfinished UTF-8 character, so that output returned in pieces
    joins up to exactly the output returned in one piece.
    """
    cut = len(raw)
    esc = raw.rfind(b"\x1b", max(0, cut - 4096))
    if esc >= 0 and _PARTIAL_ESCAPE.match(raw, esc):
        cut = esc
    if cut and raw[cut - 1 : cut] == b"\r":
        cut -= 1
    # Unfinished UTF-8 sequence: look back over at most 3 continuation bytes.
    for back in range(1, min(4, cut) + 1):
        byte = raw[cut - back]
        if byte & 0xC0 == 0x80:
            continue
        if byte & 0xE0 == 0xC0:
            need = 2
        elif byte & 0xF0 == 0xE0:
            need = 3
        elif byte & 0xF8 == 0xF0:
            need = 4
        else:
            need = 1
        if need > back:
            cut -= back
        break
    return cut


class Rendered(NamedTuple):
    text: str
    text_base64: str | None
    size: int
    truncated: bool


def spill_note(path: str) -> str:
    """What the cut's note says about where the whole output is (``render``)."""
    return f"full output in {path}"


_CUT = "\n[... sane: {omitted} bytes omitted; {note} ...]\n"  # between head and tail


def _cut_note(omitted: int, note: str) -> bytes:
    return _CUT.format(omitted=omitted, note=note).encode()


def render(data: bytes, max_bytes: int | None, spill_note: str) -> Rendered:
    """Text for JSON: middle-truncated past ``max_bytes``, base64 kept when not UTF-8."""
    size = len(data)
    truncated = max_bytes is not None and size > max_bytes
    if truncated and max_bytes is not None:
        head = _utf8_floor(data, max_bytes // 2)
        tail_start = _utf8_ceil(data, size - (max_bytes - head))
        data = data[:head] + _cut_note(tail_start - head, spill_note) + data[tail_start:]
    try:
        return Rendered(data.decode("utf-8"), None, size, truncated)
    except UnicodeDecodeError:
        text = data.decode("utf-8", "replace")
        return Rendered(text, base64.b64encode(data).decode("ascii"), size, truncated)


def left_out(rendered: bytes, size: int, spill_note: str) -> tuple[int, int] | None:
    """The part of an output of ``size`` bytes that ``render`` left out, read back from
    the rendered bytes: (where it starts, i.e. the kept head's size; where the kept
    tail starts); None when they hold no such cut with this note. The cut's own
    numbers must add up (head, omitted and tail make ``size``), so output that merely
    looks like a note is not taken for it."""
    before, _, after = _CUT.format(omitted="\0", note=spill_note).encode().partition(b"\0")
    pattern = re.escape(before) + rb"([0-9]+)" + re.escape(after)
    for found in re.finditer(pattern, rendered):
        head, omitted = found.start(), int(found.group(1))
        if head + omitted + len(rendered) - found.end() == size:
            return head, head + omitted
    return None


def _utf8_floor(data: bytes, i: int) -> int:
    while 0 < i < len(data) and data[i] & 0xC0 == 0x80:
        i -= 1
    return i


def _utf8_ceil(data: bytes, i: int) -> int:
    while 0 < i < len(data) and data[i] & 0xC0 == 0x80:
        i += 1
    return i
