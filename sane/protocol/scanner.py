"""Follow one run through the pane's byte stream and say how it ended.

The scanner is fed raw pane bytes (from tmux control mode or a pipe-pane log) in
chunks of any size; it finds this run's markers and exposes the exact bytes between
the begin marker and the end (or exit, or prompt) marker.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from sane.protocol import markers as mk
from sane.protocol.editor import held_text
from sane.protocol.runner import SHELL_POSIX, exit_status

OUTCOME_COMPLETED = "completed"  # E marker: exit status known
OUTCOME_EXITED = "exited"  # X marker: the command ended the shell
OUTCOME_ABORTED = "aborted"  # back at the prompt with no end marker: interrupted
OUTCOME_REPLACED = "replaced"  # a new shell at its prompt: the run's shell exec'd it
OUTCOME_MISSING_RUNNER = "missing_runner"
OUTCOME_LENGTH_MISMATCH = "length_mismatch"
OUTCOME_DECODE_FAILED = "decode_failed"
# The command line held a person's text (sane.protocol.editor): nothing ran.
OUTCOME_HELD = "held_input"

_BEFORE_BEGIN = {
    mk.MISSING_RUNNER: OUTCOME_MISSING_RUNNER,
    mk.LENGTH_MISMATCH: OUTCOME_LENGTH_MISMATCH,
    mk.DECODE_FAILED: OUTCOME_DECODE_FAILED,
    mk.HELD: OUTCOME_HELD,
}


class Outcome(NamedTuple):
    kind: str
    exit_code: int | None


# The markers answering a status probe: the run's status, or a new shell's.
_ANSWERS = frozenset({mk.STATUS, mk.NEW_SHELL})


class RunScanner:
    """Incremental marker search for one run identified by ``nonce``.

    ``tokens`` identify the shell's prompt markers (a pane may hold nested shells).
    Prompt markers never end a run (anything can print one): they only say where the
    shell's prompt begins. An aborted run ends on the status marker of the probe
    line sane typed once the kernel showed the shell idle (:meth:`expect_status`);
    its output is cut at the last prompt marker before that (the first of a prompt
    drawn again on its own line: :meth:`_redrawn`).
    """

    def __init__(self, nonce: str, tokens: Iterable[str] = (), shell: str = SHELL_POSIX) -> None:
        self.nonce = nonce
        self.shell = shell  # the kind of shell the run is in: how to word a status probe
        self.tokens = frozenset(tokens)
        self.buf = bytearray()
        self.begin: int | None = None
        self.end: int | None = None
        self.outcome: Outcome | None = None
        self._resume = 0
        self._interrupt_at: int | None = None
        self._probes: set[str] = set()
        self._answered: set[str] = set()  # the probe whose answer ended the run
        self._prompt_at: int | None = None  # the last prompt marker since the run began
        # OUTCOME_HELD: the person's text the runner reported (None if unreadable).
        self.held: str | None = None
        self._at = 0  # the end of the marker being considered
        self.final: int | None = None  # the end of the marker that ended the run

    def expect_status(self, nonce: str) -> None:
        """A status probe carrying ``nonce`` was typed: its marker ends the run as
        aborted, unless the run's own end marker comes first."""
        self._probes.add(nonce)

    @property
    def started(self) -> bool:
        """Has the run begun, or been interrupted (maybe before it began)?"""
        return self.begin is not None or self._interrupt_at is not None

    @property
    def prompt_seen(self) -> bool:
        """Has a prompt marker arrived since the run began (or was interrupted)?"""
        return self._prompt_at is not None

    def feed(self, data: bytes) -> Outcome | None:
        if self.outcome is not None or not data:
            return self.outcome
        self.buf += data
        found, self._resume = mk.scan(self.buf, self._resume)
        for m in found:
            self._at = m.end
            if self._consider(m):
                break
        return self.outcome

    def exit_pending(self) -> bool:
        """True when this run's EXIT-trap marker has started but not finished arriving.

        The runner's trap then waits for a keypress; tmux sometimes holds the rest of
        the marker until the pane gets input (seen with dash), so the caller should
        type the acknowledgement now rather than wait for the whole marker.
        """
        if self.outcome is not None or self.begin is None:
            return False
        head = mk.PREFIX + self.nonce.encode() + b";" + mk.EXITED.encode()
        tail = bytes(self.buf[self._resume :])
        return tail.startswith(head)

    def end_before_partial_marker(self) -> None:
        """The stream ended for good (the pane died): drop a half-received marker."""
        if self.end is None:
            tail = bytes(self.buf[self._resume :])
            self.end = self._resume if tail.startswith(mk.PREFIX) else len(self.buf)

    def mark_interrupt(self) -> None:
        """Note that C-c was sent: from here the shell may be back at its prompt
        though the run never began (C-c reached the typed line)."""
        self._interrupt_at = len(self.buf)

    def _consider(self, m: mk.Marker) -> bool:
        if m.tag == self.nonce:
            if self.begin is None:
                if m.kind == mk.BEGIN:
                    self.begin = m.end
                elif m.kind in _BEFORE_BEGIN:
                    if m.kind == mk.HELD:
                        self.held = held_text(self.buf, self.nonce, m.start)
                    self._finish(m.start, _BEFORE_BEGIN[m.kind], m.arg)
                    return True
                return False
            if m.kind == mk.END:
                self._finish(m.start, OUTCOME_COMPLETED, m.arg)
                return True
            if m.kind == mk.EXITED:
                self._finish(m.start, OUTCOME_EXITED, m.arg)
                return True
            return False
        if m.tag in self.tokens and m.kind == mk.PROMPT:
            if (self.begin is not None or self._interrupt_at is not None) and not self._redrawn(
                m.start
            ):
                self._prompt_at = m.start
            return False
        if m.tag in self._probes and m.kind in _ANSWERS:
            self._answered.add(m.tag)
            start = self.begin if self.begin is not None else m.start
            cut = (
                self._prompt_at
                if self._prompt_at is not None
                else _before_prompt(self.buf, start, m.start, self._interrupt_at)
            )
            if m.kind == mk.NEW_SHELL:  # its $? is the new shell's, not the run's
                self._finish(max(start, cut), OUTCOME_REPLACED, None)
            else:
                self._finish(max(start, cut), OUTCOME_ABORTED, m.arg)
            return True
        return False

    def _redrawn(self, at: int) -> bool:
        """Is the prompt marker at ``at`` the same prompt drawn again on its line (a
        carriage return right before it, no line break since the prompt marker kept)?
        The output ends before the first drawing: mksh in vi mode scrolls a long
        line sideways and redraws the prompt with it, and the status probe is longer
        than its screen line, so the cut at the last prompt kept the probe's echo as
        the interrupted run's output (`^C`, then `#  __sane_z=$?; ...`)."""
        kept = self._prompt_at
        return (
            kept is not None
            and at > 0
            and self.buf[at - 1 : at] == b"\r"
            and b"\n" not in self.buf[kept:at]
        )

    def settled_at(self) -> int | None:
        """Where in ``buf`` the shell is done with every line sane typed for this run:
        past the marker that ended it, and past the answer of each status probe typed
        meanwhile. A probe is typed once the kernel shows the shell idle, which it
        also is when the run's end and prompt are on their way (a handed-over run's
        stream file lags the shell): the run then ends on its own end marker while
        the probe's line is still the shell's to run, with the terminal in its
        canonical mode until the prompt after the probe's answer. None until then
        (or before the run ended)."""
        if self.final is None:
            return None
        found, _ = mk.scan(self.buf, self.final)
        answers = [m for m in found if m.tag in self._probes and m.kind in _ANSWERS]
        if {m.tag for m in answers} | self._answered != self._probes:
            return None
        return max([self.final, *(m.end for m in answers)])

    def ends_run(self, m: mk.Marker) -> bool:
        """Would ``m`` end this run (its own end or exit marker, a probe's answer)?"""
        return (m.tag == self.nonce and m.kind in (mk.END, mk.EXITED)) or (
            m.tag in self._probes and m.kind in _ANSWERS
        )

    def _finish(self, end: int, kind: str, code: int | None) -> None:
        self.end = end
        # Past the marker that ended the run: where the shell's next prompt is drawn.
        self.final = self._at
        self.outcome = Outcome(kind, None if code is None else exit_status(code))

    def region(self) -> bytes:
        """Raw bytes of the command's output seen so far (all of it once finished)."""
        if self.begin is None:
            return b""
        stop = self.end if self.end is not None else len(self.buf)
        return bytes(self.buf[self.begin : max(self.begin, stop)])


def _before_prompt(buf: bytearray, start: int, stop: int, interrupt_at: int | None) -> int:
    """Where the prompt begins when the shell drew it without sane's marker (a
    framework rebuilt ``PS1`` in a way sane's hook did not follow): right after the
    tty's echo of C-c when there is one (``^C``), else at the start of the line the
    probe was typed on (the prompt's last line). A best effort, used only then."""
    caret = buf.rfind(b"^C", interrupt_at if interrupt_at is not None else start, stop)
    if caret >= 0:
        return caret + 2
    last = buf.rfind(b"\n", start, stop)
    if last < 0:
        return start
    line = buf.rfind(b"\n", start, last)
    return line + 1 if line >= 0 else start


def wait_ready(buf: bytes | bytearray, nonce: str) -> bool:
    """True once the takeover's READY marker for ``nonce`` is in ``buf``."""
    return ready_marker(buf, nonce) is not None


def ready_marker(buf: bytes | bytearray, nonce: str) -> mk.Marker | None:
    """The takeover's READY marker for ``nonce`` (its ``arg``: the shell's pid on its
    own host, ``$$``), once it is in ``buf``."""
    found, _ = mk.scan(buf, 0)
    return next((m for m in found if m.tag == nonce and m.kind == mk.READY), None)
