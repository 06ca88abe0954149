"""When a quiet run is asked whether it waits for terminal input (``waiting_input``),
and the prompt it shows (sane.ops.prompts does the asking)."""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING

from sane import errors
from sane.ops.run.options import INTERRUPT_QUIET
from sane.protocol import markers, output
from sane.protocol import scanner as sc
from sane.protocol.runner import SHELL_FISH
from sane.tmux import panes
from sane.tmux.command import quote
from sane.tmux.control import ControlClient

if TYPE_CHECKING:
    from sane.ops.prompts import Waiting

# After a probe that found no prompt, the next one waits for a quiet stretch twice as
# long, up to this: a long quiet command is probed about once a second.
MAX_PROBE_GAP = 1.0


# An ssh pane's probe runs a process on both hosts (over the pane's ControlMaster):
# asked after this much quiet, then at most this far apart (issue 17: at 1 s, 400
# quiet servers cost a process each per second and `sleep 1` took 4 s).
REMOTE_QUIET_PERIOD = 2.0
MAX_REMOTE_PROBE_GAP = 8.0


class QuietWatch:
    """When to ask whether a quiet run waits for terminal input.

    Nothing is asked (no import, no tmux command, no /proc read) before the run has
    printed nothing for the quiet period, so a run that ends sooner pays nothing.
    After a probe that found no prompt the next one needs a quiet stretch twice as
    long (up to MAX_PROBE_GAP); any output starts over.
    """

    def __init__(
        self,
        client: ControlClient,
        pane_id: str,
        quiet: float | None,
        remote: bool | None = None,
        prompt_expected: bool = False,
    ) -> None:
        self.client = client
        # After sane's own C-c (see after_interrupt): not a fleet's steady cost.
        self.prompt_expected = prompt_expected
        self.pane_id = pane_id
        self.quiet = quiet or 0.0
        # An ssh pane (its probe is a process): told by the caller when it knows (a
        # server's pane: the fleet's listing says so), else asked at the first quiet
        # stretch (a tmux command per run: 200 of them for a quiet fleet of 200).
        self.remote = remote
        self.gap = self._first_gap()
        self.due = time.monotonic() + self.gap if self.quiet > 0 else float("inf")

    def output(self) -> None:
        if self.quiet > 0:
            self.gap = self._first_gap()
            self.due = time.monotonic() + self.gap

    @classmethod
    def after_interrupt(cls, client: ControlClient, pane_id: str) -> QuietWatch:
        """The watch of a run sane just sent C-c: its shell is expected back at its
        prompt, so it is asked after INTERRUPT_QUIET, an ssh pane too, then at the
        local gaps. REMOTE_QUIET_PERIOD spares a fleet of quiet runs a process per
        server and second; an interrupt is one probe or a few per run, and waiting
        2 s for the first kept every interrupted ssh run's pane busy 2 s (a
        cancelled fleet_run's, a run_interrupt's) though its shell was back at once."""
        return cls(client, pane_id, INTERRUPT_QUIET, prompt_expected=True)

    @property
    def _slow(self) -> bool:
        """An ssh pane's probes are spaced out (a process on both hosts each)."""
        return bool(self.remote) and not self.prompt_expected

    def _first_gap(self) -> float:
        return max(self.quiet, REMOTE_QUIET_PERIOD) if self._slow else self.quiet

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
        if self.remote is None and not self.prompt_expected and not self._learn_remote():
            return None
        from sane.ops.prompts import Idle, probe

        # An ssh pane's probe is a side-channel call: keep it within the run's time.
        found = probe(self.client, self.pane_id, max(0.5, min(5.0, deadline - now)))
        waiting: Waiting | None = None
        if isinstance(found, Idle):
            if found.kernel or scanner.prompt_seen:
                self._ask_status(scanner, found.editor, found.shell or scanner.shell)
        elif found is not None:
            waiting = found
            # The shell itself blocked in a read may be its `read` builtin, or a
            # program's read right before it exits, its output still on its way
            # through tmux. tmux sends a pane's output in order with command replies:
            # one more round trip lets output that was written before the probe arrive.
            with contextlib.suppress(errors.SaneError):
                self.client.command(f"display-message -p -t {self.pane_id} ''")
        if waiting is None:
            self.gap = min(self.gap * 2, MAX_REMOTE_PROBE_GAP if self._slow else MAX_PROBE_GAP)
            self.due = time.monotonic() + self.gap
        else:
            waiting = waiting._replace(prompt=_own_prompt(waiting.prompt, scanner))
        return waiting

    def _ask_status(self, scanner: sc.RunScanner, editor: str, shell: str) -> None:
        """Type the status probe, on a command line emptied first in the same
        ``send-keys`` (:func:`sane.ops.has_input.emptied_first`): the shell idle at
        its prompt may hold keys nobody typed for a command (tmux's answers to the
        run's terminal queries) or a person typed ahead, and the probe's Enter would
        run them with it. ``shell``: the kind of shell at that prompt (the probe's
        syntax), which an `exec` may have changed since the takeover."""
        from sane.ops.has_input import emptied_first
        from sane.protocol.runner import status_probe

        nonce = markers.new_nonce()
        scanner.expect_status(nonce)
        keys = emptied_first(editor) + status_probe(nonce, shell)
        with contextlib.suppress(errors.SaneError):
            self.client.command(
                f"send-keys -t {self.pane_id} -l -- {quote(keys)}",
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
    In fish, the run's text is without fish's own drawing; a `read` whose line fish's
    repaint of its command line cleared from the screen (``output.tidy_fish``) has its
    prompt in the run's text only.
    """
    raw = scanner.region()[-4096:]
    repainted = False
    if scanner.shell == SHELL_FISH:
        repainted = output.fish_repainted(raw)
        raw = output.tidy_fish(raw, b"")
    text = output.clean(raw).decode("utf-8", "replace")
    tail = text.rsplit("\n", 1)[-1].rsplit("\r", 1)[-1]
    if tail.strip() and (screen.endswith(tail) or repainted):
        return tail
    if screen.strip():
        return screen
    return next((x for x in reversed(text.splitlines()) if x.strip()), "")
