"""Markers: invisible OSC sequences the pane's shell prints around each run.

Format: ``ESC ] 7770 ; SANE ; <tag> ; <kind> [; <arg>] BEL``. tmux ignores unknown
OSC numbers, so a person watching the pane sees nothing. ``tag`` is the run's nonce
(or, for the prompt marker, the shell's token), which the program being run cannot
guess, so its output cannot forge the end of its own run. The typed line that starts
a run holds no ESC byte, so its echo can never match either.

The prompt marker is the one marker a shell variable holds (``$PS1``): anything can
print it (``${PS1@P}``, a nested shell with ``PS1`` exported, ``cat`` of an old stream
file). So it never ends a run; it only tells where the shell's prompt begins, to cut
an aborted run's output. A run ends on its own end or exit marker, or on the status
marker of a probe line sane typed with a fresh nonce once the kernel showed the shell
idle at its prompt (``sane.ops.prompts``).
"""

from __future__ import annotations

import os
import re
from typing import NamedTuple

PREFIX = b"\x1b]7770;SANE;"
TERMINATOR = b"\x07"
# Longest marker sane ever prints: prefix + 32-char tag + kind + a 10-digit argument.
MAX_MARKER_LEN = len(PREFIX) + 32 + 3 + 12 + 1

BEGIN = "B"  # the command starts right after this marker
END = "E"  # the command finished; arg = exit status
EXITED = "X"  # the command ran `exit` (EXIT trap); arg = exit status
LENGTH_MISMATCH = "L"  # the typed line arrived truncated; arg = length received
DECODE_FAILED = "D"  # base64 decoding of the command failed on the host
MISSING_RUNNER = "M"  # the shell in the pane has no sane runner installed
READY = "R"  # takeover finished, the runner is installed
# takeover, just before READY: the shell's exec image, the last 9 digits of its stack's
# start address (/proc/$$/stat field 28, random per exec); an `exec`'d shell has another
IMAGE = "I"
PROMPT = "P"  # the shell starts drawing its prompt (tag = the shell's token)
PROMPT_END = "Q"  # the prompt is drawn (shells without sane's editor widgets; tag = token)
# yash's right prompt (YASH_PS1R or PS1R, which sane prefixes with a space so that yash
# draws it also when the user's expands to nothing) is drawn: it follows a PROMPT_END
# whose arg is 1, in the same write, unless yash had no room for it (tag = token).
RIGHT_PROMPT_END = "G"
STATUS = "S"  # answer to a status probe typed at an idle prompt; arg = $?
NEW_SHELL = "N"  # the same answer from a shell without sane's runner (exec replaced it)
SHELL = "K"  # answer to the shell probe; arg = the shell's pid, its name follows on the line
HELD = "H"  # the command line held a person's text: nothing ran; arg = 1 in vi command mode
EDITOR = "W"  # takeover: the line editor's hold/drop widgets are installed (sane.protocol.editor)
BOOTSTRAP = "A"  # takeover: the shell reads the runner's lines from the tty, echo off
DISCARDED = "T"  # takeover: a line (or its start) not sane's, read and not run; a pair
USER_EXIT = "U"  # exit: the user's EXIT trap (kept in sane's) starts
# exit in bash: the shell itself printed its `exit` (or `logout`) line just before this
# marker, which is not the command's output. Only bash prints one, so only bash prints
# this: the same line from any other shell (or fish) is the command's own output.
BASH_EXIT_LINE = "Y"

_BODY = re.compile(rb"([0-9a-f]{8,32});([A-Z])(?:;(-?[0-9]{1,10}))?")


class Marker(NamedTuple):
    start: int
    end: int
    tag: str
    kind: str
    arg: int | None


def new_nonce() -> str:
    """64 random bits as hex: unguessable by the output of the command it frames,
    and short, since the shell echoes every typed byte."""
    return os.urandom(8).hex()


def new_token() -> str:
    return os.urandom(8).hex()


def scan(buf: bytes | bytearray, start: int) -> tuple[list[Marker], int]:
    """Find complete markers in ``buf[start:]``.

    Returns the markers and the offset from which the next scan must resume, so a
    marker split across two reads is found once the rest of it arrives.
    """
    found: list[Marker] = []
    pos = start
    n = len(buf)
    while True:
        i = buf.find(PREFIX, pos)
        if i < 0:
            # Keep a possible partial prefix at the end for the next scan.
            return found, max(pos, n - len(PREFIX) + 1)
        j = buf.find(TERMINATOR, i + len(PREFIX), i + MAX_MARKER_LEN)
        if j < 0:
            if n - i < MAX_MARKER_LEN:
                return found, i  # incomplete: wait for more bytes
            pos = i + 1  # too long to be ours: program output
            continue
        m = _BODY.fullmatch(buf, i + len(PREFIX), j)
        if m is not None:
            arg = m.group(3)
            found.append(
                Marker(
                    i,
                    j + 1,
                    m.group(1).decode(),
                    m.group(2).decode(),
                    int(arg) if arg is not None else None,
                )
            )
            pos = j + 1
        else:
            pos = i + 1


def marker_bytes(tag: str, kind: str) -> bytes:
    """The bytes of a marker without argument, as the shell prints it."""
    return PREFIX + f"{tag};{kind}".encode() + TERMINATOR


def printf_format(kind: str, with_arg: bool) -> str:
    """The printf format a shell uses to print a marker, written with escapes only.

    The text holds ``\\033`` and ``\\007`` as backslash escapes, never the bytes, so
    the echo of any line containing it cannot be mistaken for a marker.
    """
    return "\\033]7770;SANE;%s;" + kind + (";%s" if with_arg else "") + "\\007"
