"""Terminal queries in a command's output neither wedge the pane nor appear in the
output (issue #14, Measured 6). tmux answers them into the pane's input: the tty
echoes the answer into the output, and the shell's editor reads it as typed keys."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sane.fleet.panes import pane_for_server
from sane.fleet.ssh import run_remote
from sane.ops.context import Context
from sane.ops.run.quiet import QuietWatch
from sane.ops.run.record import run_finished, runs_dir
from sane.ops.run.resume import run_wait
from sane.poll import poll
from sane.protocol.queries import drop_answers
from sane.protocol.scanner import RunScanner
from sane.testing.fleet import register
from sane.testing.pytest_plugin import TmuxTestServer

from .conftest import run

# Each query tmux 3.3a answers (sane/protocol/queries.py).
ANSWERED = {
    "cursor": r"\033[6n",
    "da1": r"\033[c",
    "da2": r"\033[>c",
    "status": r"\033[5n",
    "size": r"\033[18t",
    "xtversion": r"\033[>q",
}
# All of them, and one tmux does not answer (14t); without XTVERSION too, whose answer
# ends with letters an editor may take for keys of its own (yash's vi mode: `a`).
QUERIES = {
    "all": "".join(q for k, q in ANSWERED.items() if k != "xtversion") + r"\033[14t\033[>q",
    "all-but-xtversion": "".join(q for k, q in ANSWERED.items() if k != "xtversion"),
}
SHELLS = ["bash", "zsh", "fish", "dash", "posh", "mksh", "ash", "ksh93", "yash"]


def _neither_shows_nor_wedges(ctx: Context, pane: str, queries: str, work: Path) -> None:
    """In ``work`` (empty), the queries' run and the next are exact, and nothing else
    ran: an answer's tail run as a command leaves a file (busybox ash ran
    `cP>|tmux 3.3a`, creating `tmux`)."""
    assert run(ctx, pane, f"cd {work}", timeout=10)["exit_code"] == 0
    r = run(ctx, pane, f"printf '{queries}'; echo done", timeout=10)
    assert (r["status"], r["exit_code"], r["output"]) == ("completed", 0, "done\n"), r
    nxt = run(ctx, pane, "echo next", timeout=10)
    assert (nxt["status"], nxt["output"]) == ("completed", "next\n"), nxt
    assert sorted(p.name for p in work.iterdir()) == []


@pytest.mark.parametrize("queries", list(QUERIES))
@pytest.mark.parametrize("shell", SHELLS)
def test_queries_neither_show_nor_wedge(
    sane_ctx: Context, tmux_server: TmuxTestServer, shell: str, queries: str, tmp_path: Path
) -> None:
    pane = tmux_server.new_pane(shell)
    assert run(sane_ctx, pane, "echo warm")["output"] == "warm\n"
    _neither_shows_nor_wedges(sane_ctx, pane, QUERIES[queries], tmp_path)
    # A query at the very end (no output after it), then a run right away.
    r = run(sane_ctx, pane, r"printf '\033[6n'", timeout=10)
    assert (r["status"], r["output"]) == ("completed", "")
    assert run(sane_ctx, pane, "echo again", timeout=10)["output"] == "again\n"


@pytest.mark.parametrize("query", list(ANSWERED))
@pytest.mark.parametrize("shell", ["mksh", "ksh93", "yash", "ash"])
def test_each_query_alone_in_a_screen_checked_shell(
    sane_ctx: Context, tmux_server: TmuxTestServer, shell: str, query: str, tmp_path: Path
) -> None:
    """The shells whose editors read tmux's answers as keys sane cannot program away:
    each answer on its own (in yash `ESC [ c` ate the next run's first letter, and
    after `ESC [ 5 n` or `ESC [ 18 t` its line took no more keys: measured)."""
    pane = tmux_server.new_pane(shell)
    _neither_shows_nor_wedges(sane_ctx, pane, ANSWERED[query], tmp_path)
    _neither_shows_nor_wedges(sane_ctx, pane, ANSWERED[query], tmp_path)


@pytest.mark.parametrize("ended_by", ["run_wait", "next_run"])
@pytest.mark.parametrize("shell", SHELLS)
def test_a_run_that_asks_after_its_timeout_is_cleared_when_it_ends(
    sane_ctx: Context, tmux_server: TmuxTestServer, shell: str, ended_by: str, tmp_path: Path
) -> None:
    """A run handed over at its timeout (``running``) that then asks the terminal: the
    answers reach the shell's command line after sane stopped watching the live
    output. Its ending, found by ``run wait`` or by the next run's claim (nobody
    waited), clears them as a run ending in time does (before: bash's next run was
    ``running`` for ever or refused ``pane_has_input`` naming `1R1;2c`, text nobody
    typed; the same in every shell of the matrix)."""
    pane = tmux_server.new_pane(shell)
    work = tmp_path / "work"  # empty (the handed-over run's record is in sane's home)
    work.mkdir()
    assert run(sane_ctx, pane, f"cd {work}", timeout=10)["exit_code"] == 0
    command = f"sleep 0.6; printf '{QUERIES['all']}'; echo done"
    first = run(sane_ctx, pane, command, timeout=0.2)
    assert first["status"] == "running", first
    if ended_by == "run_wait":
        r = dict(run_wait(sane_ctx, first["run_id"], timeout=20))
        assert (r["status"], r["exit_code"], r["output"]) == ("completed", 0, "done\n"), r
    else:
        assert poll(lambda: run_finished(sane_ctx, first["run_id"]), 20)
    nxt = run(sane_ctx, pane, "echo next", timeout=10)
    assert (nxt["status"], nxt["output"]) == ("completed", "next\n"), nxt
    assert run(sane_ctx, pane, "echo again", timeout=10)["output"] == "again\n"
    assert sorted(p.name for p in work.iterdir()) == []


def _pipe_writer(stream: Path) -> int:
    """The pid of pipe-pane's ``cat`` writing ``stream`` (its stdout is the file)."""
    for fd in Path("/proc").glob("[0-9]*/fd/1"):
        with contextlib.suppress(OSError):
            if os.readlink(fd) == str(stream):
                return int(fd.parent.parent.name)
    raise AssertionError(f"no process writes {stream}")


# The screen-checked editors, each in its emacs and its vi mode (`set -o vi`: there
# the answers' ESC and letters are vi commands; yash starts in vi mode).
_EDIT_MODES = ("mksh", "ksh93", "yash", "ash")


@pytest.mark.parametrize(
    ("shell", "mode"),
    [(shell, "emacs") for shell in SHELLS] + [(shell, "vi") for shell in _EDIT_MODES],
)
def test_the_status_probe_never_runs_answers_on_the_command_line(
    sane_ctx: Context,
    tmux_server: TmuxTestServer,
    shell: str,
    mode: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A handed-over run's follower reads the pipe-pane file, which lags the shell
    under load: the shell printed its end and its prompt, and read tmux's answers to
    the run's queries onto its command line, while the file did not have the end yet.
    The quiet watch then finds the shell idle (the kernel) and types its status probe.
    Before, it typed the probe after the answers, and the shell ran that line:
    `>|tmux 3.3a` created a file `tmux`, dash's `>84;0;0c` a file `84` (the CI flake of
    test_a_run_that_asks_after_its_timeout_is_cleared_when_it_ends at load 15+). The
    lag is forced: pipe-pane's ``cat`` is stopped until the probe's line is on the
    screen."""
    mode_set = f"set -o {mode}; " if shell in _EDIT_MODES else ""
    _probe_after_answers(sane_ctx, tmux_server, shell, mode_set, tmp_path, monkeypatch)


# Shells whose prompt runs a command substitution of PS1 (dash and posh do not).
_PS1_SUBSTITUTES = ("mksh", "ksh93", "yash", "ash")


@pytest.mark.parametrize("shell", _PS1_SUBSTITUTES)
def test_the_answers_are_cleared_after_the_status_probe_ran(
    sane_ctx: Context,
    tmux_server: TmuxTestServer,
    shell: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The same, with a prompt that takes a moment to compute (a PS1 running a
    command: a git status, here a `sleep 0.2`). The run ends on its own end marker,
    which the stream file had on its way, while the shell still runs the status
    probe's line and then computes its prompt, its terminal in canonical mode. The
    clearing of tmux's answers was typed then (a flake of the test above at load 32,
    mksh): the kernel echoed its keys (`^E^E...##e049b282^C##d5a10dd3`), that echo
    was recorded as the bare prompt, and the next run was refused. Now the prompt
    after the probe's answer is awaited first."""
    mode_set = "set -o emacs; " if shell in _EDIT_MODES else ""
    _probe_after_answers(
        sane_ctx, tmux_server, shell, f"{mode_set}PS1='$(sleep 0.2)$ '; ", tmp_path, monkeypatch
    )


def _probe_after_answers(
    sane_ctx: Context,
    tmux_server: TmuxTestServer,
    shell: str,
    setup: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A handed-over run whose output asks the terminal, its pipe-pane file held back
    until the status probe was typed (``setup``: typed before, in the first run)."""
    pane = tmux_server.new_pane(shell)
    work = tmp_path / "work"
    work.mkdir()
    assert run(sane_ctx, pane, f"{setup}cd {work}", timeout=10)["exit_code"] == 0
    probed = threading.Event()
    ask_status = QuietWatch._ask_status

    def asked(watch: QuietWatch, scanner: RunScanner, *rest: Any) -> None:
        ask_status(watch, scanner, *rest)
        probed.set()

    monkeypatch.setattr(QuietWatch, "_ask_status", asked)
    # The run waits on a FIFO the test opens once pipe-pane's `cat` is stopped (a
    # `sleep 1` there ended before the 0.2 s timeout came back at load 35).
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    first = run(sane_ctx, pane, f"cat {gate}; printf '{QUERIES['all']}'; echo done", timeout=0.2)
    assert first["status"] == "running", first
    writer = _pipe_writer(runs_dir(sane_ctx) / first["run_id"] / "stream")
    os.kill(writer, signal.SIGSTOP)
    try:
        assert poll(lambda: _opened_for_writing(gate), 60)  # the run's `cat` reads EOF
        # tmux has parsed the queries (written its answers to the shell's input) once
        # it shows what the run printed after them.
        assert poll(lambda: "done\n" in _screen(tmux_server, pane), 60)
        result: list[dict[str, Any]] = []
        waiter = threading.Thread(
            target=lambda: result.append(dict(run_wait(sane_ctx, first["run_id"], timeout=120)))
        )
        waiter.start()
        try:
            assert probed.wait(60)  # typed: the file has not had the run's end
        finally:
            os.kill(writer, signal.SIGCONT)
            waiter.join(130)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(writer, signal.SIGCONT)
    r = result[0]
    assert (r["status"], r["exit_code"], r["output"]) == ("completed", 0, "done\n"), r
    nxt = run(sane_ctx, pane, "echo next", timeout=30)
    assert (nxt["status"], nxt["output"]) == ("completed", "next\n"), nxt
    assert sorted(p.name for p in work.iterdir()) == []


def _opened_for_writing(fifo: Path) -> bool:
    """Open ``fifo`` for writing and close it, if a reader has it open (then the reader
    sees its end); False if none has yet."""
    try:
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
    except OSError:  # ENXIO: no reader yet
        return False
    return True


def _screen(tmux: TmuxTestServer, pane: str) -> str:
    return tmux.run("capture-pane", "-p", "-J", "-S", "-", "-t", pane) + "\n"


def test_only_the_answer_after_a_query_is_removed() -> None:
    # The program's own text of the same form, before any query, is its output.
    assert drop_answers(b"^[[24;1R\x1b[6nX^[[3;1RY^[[4;1R") == b"^[[24;1R\x1b[6nXY^[[4;1R"
    assert drop_answers(b"no query ^[[?1;2c") == b"no query ^[[?1;2c"
    # One echo per query, each of its own answer's form.
    assert drop_answers(b"\x1b[c\x1b[5n^[[?1;2c^[[0nZ^[[0n") == b"\x1b[c\x1b[5nZ^[[0n"


def test_an_answer_cut_by_the_end_of_the_output_is_removed() -> None:
    """tmux writes its answer while the program goes on, so the echo can straddle the
    run's end marker (seen under load in dash: the output ended `done\n^[P>|tmux 3`):
    the start of an answer's echo at the very end, after a query whose whole answer
    is not there, goes; the same text before the end, or without that query, stays."""
    asked = b"\x1b[>qdone\r\n"
    for cut in (b"^[P>|tmux 3", b"^[P>|", b"^[P", b"^[", b"\x1bP>|tmux 3.3a^["):
        assert drop_answers(asked + cut) == asked, cut
    assert drop_answers(b"\x1b[6ndone\r\n^[[24;") == b"\x1b[6ndone\r\n"
    assert drop_answers(asked + b"^[P>|tmux 3.3a^[\\") == asked  # whole, as before
    assert drop_answers(asked + b"^[Q>|tmux 3") == asked + b"^[Q>|tmux 3"  # no answer's start
    assert drop_answers(asked + b"^[P>|3\r\nx") == asked + b"^[P>|3\r\nx"  # not at the end
    assert drop_answers(b"done\r\n^[P>|tmux 3") == b"done\r\n^[P>|tmux 3"
    # One answer per query: the second query's cut echo goes, the first's whole one too.
    two = b"\x1b[6n\x1b[>q^[[3;1Rdone\r\n^[P>"
    assert drop_answers(two) == b"\x1b[6n\x1b[>qdone\r\n"


@pytest.mark.ssh
def test_a_server_asking_the_terminal_at_login_neither_wedges_nor_lies(
    sane_ctx: Context, make_fleet: Callable[..., Any]
) -> None:
    """A hostile (or merely chatty) server whose login files print terminal queries
    (issue #16's hostile sshd): tmux answers them into the server's pane, and ssh carries
    the answers to the server's shell as typed keys, before sane has typed anything
    there. The pane's first run and the next are exact, and so is what sane runs over
    ssh without a pane (the same files are read for an ssh command)."""
    fleet = make_fleet(1)
    home = Path(fleet.servers[0].home)
    for rc in (".bashrc", ".profile"):
        (home / rc).write_text(f"printf '{QUERIES['all']}'\n")
    servers = register(sane_ctx.home, fleet)
    pane = pane_for_server(sane_ctx, servers[0].name)
    first = run(sane_ctx, pane, "echo first; (exit 3)", timeout=30)
    assert (first["status"], first["exit_code"], first["output"]) == ("completed", 3, "first\n")
    assert run(sane_ctx, pane, "echo next", timeout=30)["output"] == "next\n"
    result = run_remote(servers[0], "printf 'exact\\n'; exit 4")
    assert (result.status, result.stdout) == (4, b"exact\n")


def test_a_redraw_by_what_the_answers_started_is_not_the_clearing_s_prompt(
    sane_ctx: Context, tmux_server: TmuxTestServer
) -> None:
    """yash reads the end of XTVERSION's answer, `ESC \\`, as vi-complete-max: its
    completion runs (here a hook that takes a second, as loading the completion
    scripts did on a loaded machine) and then redraws the prompt, while sane's
    clearing keys wait unread behind it. That redraw was taken for the prompt after
    the clearing's C-c: the pane was let go before the C-c was read, and the prompt
    recorded was not the one the next run's check then saw (seen in CI: the next run
    refused, or its line typed while the abort was still to come). The prompt counts
    its draws, so a stale one shows; the terminal's signals are off, so the C-c
    stays a key whenever it arrives (a SIGINT is the other interleaving)."""
    pane = tmux_server.new_pane("yash")
    hook = "function completion//argument { sleep 1; }"
    for line in ("stty -isig", hook, "PS1='$((n=n+1))> '"):
        assert run(sane_ctx, pane, line, timeout=20)["exit_code"] == 0
    for _ in range(2):
        r = run(sane_ctx, pane, r"printf '\033[>q'; echo done", timeout=20)
        assert (r["status"], r["output"]) == ("completed", "done\n"), r
        nxt = run(sane_ctx, pane, "echo next", timeout=20)
        assert (nxt["status"], nxt["output"]) == ("completed", "next\n"), nxt
