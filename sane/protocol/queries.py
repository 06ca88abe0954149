"""Terminal queries in a command's output, and the echo of tmux's answers to them.

A program may ask the terminal something (``ESC [ 6 n``: where is the cursor?). tmux
answers by writing the reply into the pane's input, as a terminal would. A program
that asked reads it; one that did not (``printf '\\033[6n'``, a hostile login banner)
leaves it there: the tty, in its canonical mode while a command runs, echoes it
(``^[[24;1R``) into the output, and the shell's editor then reads it at the next
prompt as typed keys. So sane removes the echo from the output and, after a run
whose output asked, clears the command line the reply landed on
(``sane.ops.has_input``).

The echo is removed only where it is provably the answer: after each query tmux
answers (tmux 3.3a, measured: the table below), the first text of that answer's
exact form that follows it, at most one per query (or, when the data ends before
a whole one, the start of one at its very end); the query itself is the
program's output and is treated as any escape sequence (removed unless
``keep_ansi``). ESC echoes as ``^[`` (``echoctl``, the default) or as itself.
"""

from __future__ import annotations

import re

_ESC = rb"(?:\^\[|\x1b)"
# (query, tmux's answer without its ESC): what tmux answers, measured on tmux 3.3a.
# Not answered there (so nothing is echoed): 14t, ?6n, DECRQM, OSC 4/10/11 queries.
ANSWERED = (
    (rb"\x1b\[6n", rb"\[\d{1,5};\d{1,5}R"),  # cursor position (CPR)
    (rb"\x1b\[5n", rb"\[0n"),  # device status
    (rb"\x1b\[0?c", rb"\[\?[\d;]{0,32}c"),  # primary device attributes
    (rb"\x1b\[>0?c", rb"\[>[\d;]{0,32}c"),  # secondary device attributes
    (rb"\x1b\[18t", rb"\[8;\d{1,5};\d{1,5}t"),  # text area size
    (rb"\x1b\[>0?q", rb"P>\|[^\x1b^\r\n]{0,64}" + _ESC + rb"\\"),  # XTVERSION
)
_QUERY = re.compile(b"|".join(b"(" + query + b")" for query, _ in ANSWERED))
_ANSWER = [re.compile(_ESC + answer) for _, answer in ANSWERED]
# The start of an answer's echo, cut by the end of the data: tmux writes an answer
# while the program goes on, so its echo can straddle the run's end marker (seen under
# load: `done\n^[P>|tmux 3` before the marker, `.3a^[\` after it). One per answer
# above, in the same order, each matching only a proper start of that answer's form.
_CSI_START = _ESC + rb"(?:\[[?>]?[\d;]{0,32})?\Z"
_ANSWER_START = [
    *(re.compile(_CSI_START) for _ in ANSWERED[:-1]),
    re.compile(_ESC + rb"(?:P(?:>(?:\|[^\x1b^\r\n]{0,64}(?:\^\[?|\x1b)?)?)?)?\Z"),
]


def asks(data: bytes) -> bool:
    """Does ``data`` hold a query tmux answers (so a reply went to the pane's input)?"""
    return b"\x1b[" in data and _QUERY.search(data) is not None


def drop_all_answers(data: bytes) -> bytes:
    """``data`` without any text of the form of tmux's answers, wherever it is: for
    input read from the tty (the takeover's loop), where an answer arrives on its
    own, not after the query that asked."""
    for answer in _ANSWER:
        data = answer.sub(b"", data)
    return data


def drop_answers(data: bytes) -> bytes:
    """``data`` without the tty's echo of tmux's answers to the queries in it."""
    if not asks(data):
        return data
    spans: list[tuple[int, int]] = []
    after = 0
    for query in _QUERY.finditer(data):
        kind = query.lastindex
        if kind is None:
            continue
        start = max(query.end(), after)
        echo = _ANSWER[kind - 1].search(data, start)
        if echo is None:
            # No whole answer after this query: the data may end inside its echo.
            echo = _ANSWER_START[kind - 1].search(data, start)
        if echo is not None:
            spans.append(echo.span())
            after = echo.end()
    if not spans:
        return data
    out = bytearray()
    pos = 0
    for start, end in sorted(spans):
        out += data[pos:start]
        pos = max(pos, end)
    out += data[pos:]
    return bytes(out)
