"""A run as an object: :func:`start_run` returns a :class:`Run` to wait on, answer or
interrupt.

Why: following a long command with the plain functions means carrying ``ctx`` and
``run_id`` through ``run_wait``/``run_input``/``run_interrupt``, joining the output of
each result, and knowing which result is the last. The handle keeps the context, the
newest result and the output so far, and knows when the run is over, so ``wait()`` on
a finished run returns its result at once instead of asking tmux (or being told
``run_finished``). It adds no behaviour: each method is the function of the same job.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sane.ops.context import Context
from sane.ops.run.command import run_command
from sane.ops.run.options import DEFAULT_QUIET_PERIOD, INTERRUPT_GRACE, RunOptions
from sane.ops.run.resume import run_input, run_interrupt, run_wait

if TYPE_CHECKING:
    from sane.models import RunResult

_GOING_ON = ("running", "waiting_input")  # the statuses a later call can follow


class Run:
    """One command sane started in a pane, and what is known of it so far.

    ``result`` is the newest :class:`RunResult` (each holds only the output not
    returned before); ``output`` is all of the run's output returned so far, joined
    (text; a non-UTF-8 run's exact bytes are in each result's ``output_base64``).
    """

    def __init__(self, ctx: Context, first: RunResult) -> None:
        self.ctx = ctx
        self.result = first
        self._pieces = [first["output"]]

    def __repr__(self) -> str:
        return f"<Run {self.run_id} {self.status} in {self.result['pane']}>"

    @property
    def run_id(self) -> str:
        return self.result["run_id"]

    @property
    def status(self) -> str:
        return self.result["status"]

    @property
    def done(self) -> bool:
        """Whether the run is over (nothing more to wait for, answer or interrupt)."""
        return self.status not in _GOING_ON

    @property
    def output(self) -> str:
        return "".join(self._pieces)

    def _took(self, result: RunResult) -> RunResult:
        self.result = result
        self._pieces.append(result["output"])
        return result

    def wait(
        self, timeout: float = 30.0, quiet_period: float | None = DEFAULT_QUIET_PERIOD
    ) -> RunResult:
        """Follow the run for up to ``timeout`` seconds (:func:`run_wait`); a run that
        is over returns its last result."""
        if self.done:
            return self.result
        return self._took(run_wait(self.ctx, self.run_id, timeout, quiet_period=quiet_period))

    def send(self, text: str, enter: bool = True, timeout: float = 30.0) -> RunResult:
        """Answer the run's prompt with ``text`` and follow it on (:func:`run_input`).
        On a run that is over this raises ``run_finished``: the text would reach the
        idle shell as a command."""
        return self._took(run_input(self.ctx, self.run_id, text, enter=enter, timeout=timeout))

    def interrupt(self, grace: float = INTERRUPT_GRACE) -> RunResult:
        """C-c the run and return how it ended (:func:`run_interrupt`); a run that is
        over returns its last result."""
        if self.done:
            return self.result
        return self._took(run_interrupt(self.ctx, self.run_id, grace))


def start_run(
    ctx: Context, command: str, pane: str | None = None, options: RunOptions | None = None
) -> Run:
    """:func:`run_command`, as a :class:`Run` handle (its first result is ``.result``).

    With ``options.timeout`` short the call returns as soon as the run is under way,
    ``running``; the handle then follows it."""
    return Run(ctx, run_command(ctx, command, pane, options))
