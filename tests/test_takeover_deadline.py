"""A takeover that ends unconfirmed says what ended it (issue 17, sweep17 (b)).

Under load, an idle bash whose takeover ran past the deadline was reported as
"the shell in pane %606 did not confirm sane's runner in time (is it a POSIX shell,
and idle?)", a wrong diagnosis, and a fleet run's result for that server had no
pane. Now the deadline is named (``details.ended_by``, the message) beside the other
causes, and the fleet result keeps the pane. Real tmux and bash;
the shell is held in ``read`` so the deadline surely comes first."""

from __future__ import annotations

import time
from typing import Any

import pytest

from sane import errors
from sane.fleet.registry import Registry
from sane.fleet.run import fleet_run
from sane.ops.context import Context
from sane.ops.takeover import install_runner
from sane.poll import poll
from sane.testing.fleet import registry_entries
from sane.testing.pytest_plugin import TmuxTestServer


def test_a_takeover_ended_by_the_deadline_says_so(
    tmux_server: TmuxTestServer, sane_ctx: Context
) -> None:
    pane = tmux_server.new_pane("bash")
    tmux_server.run("send-keys", "-t", pane, "clear; read x", "Enter")
    assert poll(lambda: not tmux_server.run("capture-pane", "-p", "-t", pane).strip(), 30)
    state = sane_ctx.pane_state(pane)
    client = sane_ctx.client(state.session_id)
    stream = client.watch(pane)
    try:
        with pytest.raises(errors.RunnerUnavailable) as caught:
            install_runner(sane_ctx, client, stream, pane, deadline=time.monotonic() + 1.5)
    finally:
        client.unwatch(pane, stream)
        tmux_server.run("send-keys", "-t", pane, "C-c", "")
    err = caught.value
    assert (err.details["ended_by"], err.details["pane"]) == ("deadline", pane), err.to_dict()
    assert err.message.startswith(f"the deadline came before the shell in pane {pane}")
    assert "the pane is kept: run again" in err.message, err.message


def test_a_server_whose_pane_is_kept_at_the_deadline_names_it(
    sane_ctx: Context, ssh_fleet: Any, blackhole: int
) -> None:
    """A server whose connection outlasts the deadline keeps its pane for the next run;
    its fleet run result now names it (before: the error did, the result had none)."""
    silent = registry_entries(ssh_fleet)[0].model_copy(update={"name": "silent", "port": blackhole})
    Registry(sane_ctx.home).add(silent)
    [run] = fleet_run(sane_ctx, [silent], "true", timeout=2)["results"]
    assert run["status"] != "completed" and run["error"] is not None, run
    kept = run["error"]["details"]["pane"]
    assert kept.startswith("%") and run["pane"] == kept, run
