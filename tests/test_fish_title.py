"""fish's window title while sane drives the pane: sane's lines leave it alone.

fish computes the title (``fish_title CMD``) before it runs each command line and
again before each prompt. The runner wraps the pane's ``fish_title`` at takeover
(``sane.protocol.fish.title_line``): sane's own lines get no title (it stays as the
person's last prompt set it), every other call goes to the person's function. Before,
tmux showed sane's internals as the pane's title (`` {eval,"$__sane_h"pr /tmp``) for as
long as a run ran, and each run cost fish a whole title computation more (the default
``fish_title`` runs ``prompt_pwd`` in seven command substitutions).

Real tmux, real fish: local panes, and fish as the login shell of a loopback sshd user
(``login_fleet`` of test_shells), where the title crosses ssh.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from sane.ops.context import Context
from sane.ops.run.resume import run_interrupt
from sane.protocol import fish
from sane.testing import retry_until
from sane.testing.pytest_plugin import TmuxTestServer
from sane.tmux.panes import OPT_SHELL_PID

from .conftest import run
from .test_shells import login_fleet, login_pane  # noqa: F401 (fixture)

PROMPT = "function fish_prompt; printf '%s' '$ '; end"
# A person's own fish_title, as their config.fish would define it.
MINE = 'function fish_title; echo "mine:$argv"; end'


def fish_pane(srv: TmuxTestServer, data: Path, config: str = "") -> str:
    """A fish pane whose history lives under ``data`` (not the real home's)."""
    init = f"{PROMPT}; {config}" if config else PROMPT
    env = f"env -u PROMPT_COMMAND XDG_DATA_HOME={shlex.quote(str(data))}"
    return srv.new_pane(f"{env} fish --no-config -C {shlex.quote(init)}")


def titler(srv: TmuxTestServer, pane: str) -> Callable[[], str]:
    def title() -> str:
        return srv.run("display-message", "-p", "-t", pane, "#{pane_title}").rstrip("\n")

    return title


def shows(title: Callable[[], str], text: str) -> bool:
    return title() == text


def shown(srv: TmuxTestServer, pane: str, text: str) -> None:
    """Wait until the pane's screen shows ``text`` (what came before it, a title
    included, has been read by tmux by then)."""
    retry_until(
        lambda: text in srv.run("capture-pane", "-p", "-t", pane),
        timeout=15,
        message=f"{text!r} never shown",
    )


def running(ctx: Context, srv: TmuxTestServer, pane: str) -> dict[str, Any]:
    """A sane run left running, its first output on the screen."""
    r = run(ctx, pane, "echo sane-go; sleep 30", timeout=0.5)
    assert r["status"] == "running", r
    shown(srv, pane, "sane-go")
    return r


@pytest.mark.parametrize("where", ["local", "login"])
def test_a_sane_run_leaves_the_title_as_the_prompt_set_it(
    sane_ctx: Context,
    tmux_server: TmuxTestServer,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    where: str,
) -> None:
    """fish's own default fish_title: while a sane run runs, the title is the one the
    last prompt set (old code: `` {eval,"$__sane_h"pr /tmp``, sane's typed line), and
    a sane ``cd`` still shows in the title of the next prompt."""
    if where == "local":
        pane = fish_pane(tmux_server, tmp_path)
    else:
        fleet, name = request.getfixturevalue("login_fleet")["fish"]
        pane = login_pane(sane_ctx, fleet, name)
    title = titler(tmux_server, pane)
    assert run(sane_ctx, pane, "cd /tmp")["status"] == "completed"
    at_prompt = retry_until(lambda: (t := title()).endswith("/tmp") and t, timeout=15)
    r = running(sane_ctx, tmux_server, pane)
    assert title() == at_prompt
    assert run_interrupt(sane_ctx, r["run_id"])["status"] == "interrupted"
    host = at_prompt.removesuffix("/tmp")  # "[vm] " over ssh
    assert run(sane_ctx, pane, "cd /")["status"] == "completed"
    retry_until(lambda: title() == host + "/", timeout=15)
    # The title kept from sane's earlier prompt is not reused once what it depends on
    # changed: here the function fish's title calls, redefined by a run.
    assert run(sane_ctx, pane, "function prompt_pwd; echo elsewhere; end")["exit_code"] == 0
    retry_until(lambda: title() == host + "elsewhere", timeout=15)


def test_a_persons_fish_title_still_titles_their_lines(
    sane_ctx: Context, tmux_server: TmuxTestServer, tmp_path: Path
) -> None:
    """The person's own fish_title gets their lines and every prompt as before, sane's
    lines leave its title alone (old code: ``mine: {eval,...``), a second takeover in
    the same fish wraps it once (no recursion), and history holds the person's line and
    none of sane's."""
    pane = fish_pane(tmux_server, tmp_path, MINE)
    title = titler(tmux_server, pane)
    for takeover in range(2):
        if takeover:  # the runner forgotten: the next run takes this fish over again
            tmux_server.run("set-option", "-p", "-u", "-t", pane, OPT_SHELL_PID)
        assert run(sane_ctx, pane, "true")["status"] == "completed"
        retry_until(lambda: title() == "mine:", timeout=15)
        tmux_server.run("send-keys", "-t", pane, "-l", f"sleep 3{takeover}")
        tmux_server.run("send-keys", "-t", pane, "Enter")
        retry_until(partial(shows, title, f"mine:sleep 3{takeover}"), timeout=15)
        tmux_server.run("send-keys", "-t", pane, "C-c")
        retry_until(lambda: title() == "mine:", timeout=15)
        r = running(sane_ctx, tmux_server, pane)
        assert title() == "mine:"
        assert run_interrupt(sane_ctx, r["run_id"])["status"] == "interrupted"
    r = run(sane_ctx, pane, "builtin history search | string join '|'")
    assert (r["status"], r["output"]) == ("completed", "sleep 31|sleep 30\n")


def fish_c(lines: list[str]) -> str:
    """What ``fish --no-config -c`` prints running ``lines`` (no error allowed)."""
    import subprocess

    proc = subprocess.run(
        ["fish", "--no-config", "-c", "\n".join(lines)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert (proc.returncode, proc.stderr) == (0, ""), proc
    return proc.stdout


HELPERS = fish.takeover_lines("n" * 16, "t" * 16)[0]
SANE_LINE = fish.quote(fish.call("x" * 16, 4, "-", "true"))
PASTE_LINE = fish.quote(fish.paste_lines("x" * 16, "AAAA").splitlines()[1])
PROBE_LINE = fish.quote(fish.status_probe("x" * 16))


def test_title_wrapper_passes_every_other_call_through() -> None:
    """The wrapper in a real fish, installed twice over a person's function: sane's
    lines (a run's, a paste's, the status probe) get no title, anything else (an empty
    argument: a prompt) the function it wrapped."""
    lines = [MINE, HELPERS, fish.title_line(), fish.title_line()]
    lines += [f"fish_title {line}" for line in (SANE_LINE, PASTE_LINE, PROBE_LINE)]
    lines += ["echo ="]
    lines += ["fish_title ' ls -l'", "fish_title", f"fish_title {SANE_LINE}", "fish_title"]
    assert fish_c(lines) == "=\nmine: ls -l\nmine:\nmine:\n"


def test_title_kept_for_sane_prompts_only_while_it_holds() -> None:
    """fish's own fish_title: the prompt after a sane line reuses the title computed
    after an earlier one, and computes it anew after a ``cd``, after ``prompt_pwd`` is
    redefined, and for a person's line (which gets its own title)."""
    prompt_after_sane = [f"fish_title {SANE_LINE}", "fish_title", "echo = $n"]
    lines = [HELPERS, fish.title_line(), "set -g n 0", "functions -c __sane_ut __sane_real"]
    # Counts the calls of the function the wrapper wraps (fish's own).
    lines += ["function __sane_ut; set -g n (math $n + 1); __sane_real $argv; end"]
    lines += ["cd /usr", *prompt_after_sane, *prompt_after_sane]
    lines += ["cd /tmp", *prompt_after_sane]
    lines += ["function prompt_pwd; echo PP; end", *prompt_after_sane]
    lines += ["fish_title ' ls'", "fish_title", "echo = $n"]
    expected = ["/usr", "= 1", "/usr", "= 1", "/tmp", "= 2", "PP", "= 3", " ls PP", "PP", "= 5"]
    assert fish_c(lines).splitlines() == expected
