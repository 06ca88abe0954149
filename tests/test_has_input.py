"""A person's half-typed command line is never executed, and sane's keys never join it
(issue #14, Measured 4). Real tmux, real shells: text typed into the pane with
send-keys and no Enter, as a person leaves it; vi command mode left by Esc."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from sane import errors
from sane.ops.context import Context
from sane.poll import poll
from sane.testing.pytest_plugin import SHELLS, TmuxTestServer

from .conftest import run
from .test_shells import _interrupt_once_started

HOLD_SHELLS = ["bash", "zsh", "fish"]


def _cursor_line(tmux: TmuxTestServer, pane: str) -> str:
    y = tmux.run("display-message", "-p", "-t", pane, "#{cursor_y}").strip()
    return tmux.run("capture-pane", "-p", "-N", "-t", pane, "-S", y, "-E", y).rstrip("\n")


def _wait_line(
    tmux: TmuxTestServer, pane: str, check: Callable[[str], bool], wait: float = 5.0
) -> str:
    seen: list[str] = []

    def ok() -> bool:
        seen.append(_cursor_line(tmux, pane))
        return check(seen[-1])

    poll(ok, wait)
    return seen[-1]


def _refused(ctx: Context, tmux: TmuxTestServer, pane: str, command: str) -> errors.PaneHasInput:
    """The pane_has_input error of running ``command`` (the screen, if it ran)."""
    try:
        result = run(ctx, pane, command)
    except errors.PaneHasInput as exc:
        return exc
    screen = tmux.run("capture-pane", "-p", "-t", pane, "-S", "-40")
    pytest.fail(f"not refused: {result}\n{screen}")


def _screen(tmux: TmuxTestServer, pane: str) -> list[str]:
    """The pane's lines that are not blank (for an assertion's message)."""
    shown = tmux.run("capture-pane", "-p", "-t", pane, "-S", "-40")
    return [line for line in shown.splitlines() if line.strip()]


def _editor_reads(tmux: TmuxTestServer, pane: str) -> None:
    """Wait until the shell's line editor reads keys (its terminal out of canonical
    mode): a key typed before is echoed by the kernel, then again by the editor (a
    ``^[`` or the text twice on the line), which is not what a person at a prompt
    sees."""
    tty = tmux.run("display-message", "-p", "-t", pane, "#{pane_tty}").strip()

    def raw() -> bool:
        shown = subprocess.run(["stty", "-a", "-F", tty], capture_output=True, text=True)
        return "-icanon" in shown.stdout.split()

    assert poll(raw, 20), f"the editor of {pane} never read keys"


def _type(tmux: TmuxTestServer, pane: str, *keys: str) -> None:
    """Keys as a person types them (no Enter), then wait until the screen shows the text."""
    tmux.run("send-keys", "-t", pane, *keys)


@pytest.mark.parametrize("shell", HOLD_SHELLS)
def test_half_typed_text_is_refused_named_and_left_in_place(
    sane_ctx: Context, tmux_server: TmuxTestServer, shell: str, tmp_path: Path
) -> None:
    pane = tmux_server.new_pane(shell)
    victim = tmp_path / "DIR"
    victim.mkdir()
    assert run(sane_ctx, pane, "echo ready")["output"] == "ready\n"
    typed = f"rm -rf {victim} #"
    _type(tmux_server, pane, "-l", typed)
    _wait_line(tmux_server, pane, lambda line: line.endswith(typed))
    caught = _refused(sane_ctx, tmux_server, pane, "echo x")
    assert caught.details["text"] == typed, caught.details
    assert caught.details["vi_command_mode"] is False
    assert victim.is_dir()
    # The person's text is back on the line, alone, and the pane is free.
    line = _wait_line(tmux_server, pane, lambda line: line.endswith(typed))
    assert line.endswith(typed) and "sane" not in line
    assert tmux_server.run("display-message", "-p", "-t", pane, "#{@sane_run}").strip() == ""
    # Asked to clear it: the text is discarded, never run; sane's command runs alone.
    r = run(sane_ctx, pane, "echo x", clear_input=True)
    assert (r["status"], r["exit_code"], r["output"]) == ("completed", 0, "x\n")
    assert victim.is_dir()
    assert run(sane_ctx, pane, "echo again")["output"] == "again\n"


@pytest.mark.parametrize("shell", ["bash", "zsh"])
def test_vi_command_mode_is_not_typed_into(
    sane_ctx: Context, tmux_server: TmuxTestServer, shell: str, tmp_path: Path
) -> None:
    pane = tmux_server.new_pane(shell)
    vi = "set -o vi" if shell == "bash" else "bindkey -v"
    assert run(sane_ctx, pane, vi)["exit_code"] == 0
    # Esc on an empty line: sane's line is not read as vi commands.
    _type(tmux_server, pane, "Escape")
    r = run(sane_ctx, pane, "printf '%s\\n' ok")
    assert (r["status"], r["output"]) == ("completed", "ok\n")
    # Esc with text on the line: refused, named, and left as it was.
    marker = tmp_path / "ran"
    typed = f"touch {marker}"
    _type(tmux_server, pane, "-l", typed)
    _wait_line(tmux_server, pane, lambda line: line.endswith(typed))
    _type(tmux_server, pane, "Escape")
    caught = _refused(sane_ctx, tmux_server, pane, "echo x")
    assert caught.details["text"] == typed, caught.details
    assert caught.details["vi_command_mode"] is True
    _wait_line(tmux_server, pane, lambda line: line.endswith(typed))
    r = run(sane_ctx, pane, "echo x", clear_input=True)
    assert (r["status"], r["output"]) == ("completed", "x\n")
    assert not marker.exists()


@pytest.mark.parametrize("shell", ["mksh", "ksh93", "yash"])
def test_vi_command_mode_of_a_screen_checked_shell_is_left_before_typing(
    sane_ctx: Context, tmux_server: TmuxTestServer, shell: str, tmp_path: Path
) -> None:
    """The issue's "vi command mode" repro in the shells without widgets: Esc on the
    empty line (the screen shows nothing of it, so the check passes) made sane's line
    vi commands (mksh: `ne_go:-printf}: inaccessible or not found`, the run `running`
    for good). sane leaves the command mode first; emacs mode runs as before."""
    pane = tmux_server.new_pane(shell)
    assert run(sane_ctx, pane, "set -o vi")["exit_code"] == 0
    for _ in range(2):  # again after a run that went through the command mode
        _editor_reads(tmux_server, pane)
        _type(tmux_server, pane, "Escape")
        r = run(sane_ctx, pane, "printf '%s\\n' ok", timeout=15)
        assert (r["status"], r["exit_code"], r["output"]) == ("completed", 0, "ok\n"), (
            r,
            _screen(tmux_server, pane),
        )
    # vi insert mode and emacs mode: the same keys change nothing.
    assert run(sane_ctx, pane, "echo insert")["output"] == "insert\n"
    assert run(sane_ctx, pane, "set -o emacs")["exit_code"] == 0
    assert run(sane_ctx, pane, "echo emacs")["output"] == "emacs\n"
    # Esc after a person's text: the screen shows it, refused, nothing of sane's added.
    assert run(sane_ctx, pane, "set -o vi")["exit_code"] == 0
    marker = tmp_path / "ran"
    typed = f"touch {marker}"
    _editor_reads(tmux_server, pane)
    _type(tmux_server, pane, "-l", typed)
    _wait_line(tmux_server, pane, lambda line: line.rstrip().endswith(typed))
    _type(tmux_server, pane, "Escape")
    caught = _refused(sane_ctx, tmux_server, pane, "echo x")
    assert caught.details["text"] == typed, caught.details
    line = _wait_line(tmux_server, pane, lambda line: line.rstrip().endswith(typed))
    assert "sane" not in line and "echo x" not in line
    r = run(sane_ctx, pane, "echo x", clear_input=True)
    assert (r["status"], r["output"]) == ("completed", "x\n")
    assert not marker.exists()


@pytest.mark.parametrize("shell", ["bash", "mksh", "ksh93", "yash"])
def test_an_interrupted_run_in_vi_mode_outputs_only_its_own_text(
    sane_ctx: Context, tmux_server: TmuxTestServer, shell: str
) -> None:
    """sweep14's F5: mksh in vi mode scrolls a line longer than the screen sideways and
    draws its prompt again with it; the status probe typed after the C-c is such a
    line, and the interrupted run's output was `^C`, a line break and the probe's echo
    (`#  __sane_z=$?; ...`): the output was cut at the last prompt drawn before the
    probe's answer, the redrawn one. In vi mode the interrupt gives what emacs mode
    gives: the run's own output, and the pane is free."""
    pane = tmux_server.new_pane(shell)
    assert run(sane_ctx, pane, "set -o vi")["exit_code"] == 0
    _interrupt_once_started(sane_ctx, pane, "echo start; sleep 30")
    assert run(sane_ctx, pane, "echo next")["output"] == "next\n"


def _vi_shell(tmux: TmuxTestServer, shell: str, home: Path) -> str:
    """A new pane whose shell is in vi mode from its start (its rc files), showing its
    mode in the prompt (``(ins)``/``(cmd)``, fish's ``[I]``/``[N]``), so a test can
    wait for the Escape a person pressed to be read before sane types."""
    home.mkdir()
    if shell == "bash":
        (home / "inputrc").write_text("set editing-mode vi\nset show-mode-in-prompt on\n")
        return tmux.new_pane(f"env INPUTRC={home}/inputrc {SHELLS['bash']}")
    if shell == "zsh":
        (home / ".zshrc").write_text(
            "PS1='%1v$ '; bindkey -v\n"
            "zle-keymap-select zle-line-init() {\n"
            "  psvar[1]=${${KEYMAP/vicmd/(cmd)}/(main|viins)/(ins)}; zle reset-prompt; }\n"
            "zle -N zle-keymap-select; zle -N zle-line-init\n"
        )
        zsh = SHELLS["zsh"].removesuffix(" -f")
        return tmux.new_pane(f"env ZDOTDIR={home} {zsh} --no-globalrcs")
    (home / "fish").mkdir()
    (home / "fish" / "config.fish").write_text(
        "set -g fish_greeting ''\n"
        "function fish_prompt; printf '%s' '$ '; end\n"
        "fish_vi_key_bindings\n"
    )
    return tmux.new_pane(f"env -u PROMPT_COMMAND XDG_CONFIG_HOME={home} XDG_DATA_HOME={home} fish")


def _to_command_mode(tmux: TmuxTestServer, pane: str) -> None:
    """Escape, as a person presses it, and wait until the prompt shows the command mode."""
    _type(tmux, pane, "Escape")
    line = _wait_line(tmux, pane, lambda line: line.startswith(("(cmd)", "[N]")))
    assert line.startswith(("(cmd)", "[N]")), line


@pytest.mark.parametrize("shell", HOLD_SHELLS)
def test_vi_command_mode_before_the_first_run_is_left_before_the_takeover(
    sane_ctx: Context, tmux_server: TmuxTestServer, shell: str, tmp_path: Path
) -> None:
    """sweep14's F4: a shell in vi mode from its rc files, Esc pressed before sane's
    first run. The takeover's guard (End or C-e, its sentinel, C-u) was read as vi
    commands: bash's `#` accepted the line (a person's text went to history as a
    comment) and the kill took `sane-takeover`, reported as the person's text on every
    run after; fish's was `ane-takeover`; zsh's `#` ran `#touch ...` (not found) and
    the text was gone. In zsh's vi insert mode C-e was a literal ^E and the text was
    gone too. Now the empty line's run completes, and a person's text is refused,
    named exactly, never run, and discarded with clear_input."""
    pane = _vi_shell(tmux_server, shell, tmp_path / "empty")
    _editor_reads(tmux_server, pane)
    _wait_line(tmux_server, pane, lambda line: line.endswith("$ "))
    _to_command_mode(tmux_server, pane)
    r = run(sane_ctx, pane, "printf '%s\\n' ok", timeout=15)
    assert (r["status"], r["exit_code"], r["output"]) == ("completed", 0, "ok\n"), (
        r,
        _screen(tmux_server, pane),
    )
    assert run(sane_ctx, pane, "echo again")["output"] == "again\n"

    # A person's text, left in vi command mode (Escape) and in vi insert mode.
    marker = tmp_path / "ran"
    typed = f"touch {marker}"
    for escape in (True, False):
        pane = _vi_shell(tmux_server, shell, tmp_path / f"text-{escape}")
        _editor_reads(tmux_server, pane)
        _wait_line(tmux_server, pane, lambda line: line.endswith("$ "))
        _type(tmux_server, pane, "-l", typed)
        _wait_line(tmux_server, pane, lambda line: line.endswith(typed))
        if escape:
            _to_command_mode(tmux_server, pane)
        caught = _refused(sane_ctx, tmux_server, pane, "echo x")
        assert caught.details["text"] == typed, (caught.details, _screen(tmux_server, pane))
        assert not marker.exists()
        line = _wait_line(tmux_server, pane, lambda line: line.endswith(typed))
        assert line.endswith(typed) and "sane" not in line, _screen(tmux_server, pane)
        r = run(sane_ctx, pane, "echo x", clear_input=True)
        assert (r["status"], r["exit_code"], r["output"]) == ("completed", 0, "x\n")
        assert run(sane_ctx, pane, "echo again")["output"] == "again\n"
        assert not marker.exists()


@pytest.mark.parametrize("shell", HOLD_SHELLS)
def test_half_typed_text_before_the_first_run_is_not_executed(
    sane_ctx: Context, tmux_server: TmuxTestServer, shell: str, tmp_path: Path
) -> None:
    """The issue's repro: a fresh pane (sane's runner not installed yet) whose line
    holds `rm -rf DIR #`: the takeover must not type after it either."""
    pane = tmux_server.new_pane(shell)
    victim = tmp_path / "DIR"
    victim.mkdir()
    typed = f"rm -rf {victim} #"
    _wait_line(tmux_server, pane, lambda line: line.endswith("$ "))
    _type(tmux_server, pane, "-l", typed)
    _wait_line(tmux_server, pane, lambda line: line.endswith(typed))
    caught = _refused(sane_ctx, tmux_server, pane, "echo x")
    assert caught.details["text"] == typed, caught.details
    assert victim.is_dir()
    line = _wait_line(tmux_server, pane, lambda line: line.endswith(typed))
    assert "sane" not in line
    r = run(sane_ctx, pane, "echo x", clear_input=True)
    assert (r["status"], r["output"]) == ("completed", "x\n")
    assert victim.is_dir()


@pytest.mark.parametrize("shell", ["dash", "posh", "mksh", "ksh93", "yash", "ash"])
def test_text_before_the_first_run_in_a_shell_without_widgets_is_never_run(
    sane_ctx: Context, tmux_server: TmuxTestServer, shell: str, tmp_path: Path
) -> None:
    """A fresh pane of a shell sane cannot give widgets, whose line holds `rm -rf DIR #`:
    the takeover (no prompt recorded yet to tell a person's text from) empties the line
    before its lines, so the text is discarded, never run. Before, the takeover's first
    line was joined to it, and Enter ran `rm -rf DIR`."""
    pane = tmux_server.new_pane(shell)
    victim = tmp_path / "DIR"
    victim.mkdir()
    typed = f"rm -rf {victim} #"
    _wait_line(tmux_server, pane, lambda line: line.rstrip().endswith(("$", "#", ">")))
    _type(tmux_server, pane, "-l", typed)
    _wait_line(tmux_server, pane, lambda line: line.endswith(typed))
    r = run(sane_ctx, pane, "echo x")
    assert (r["status"], r["output"]) == ("completed", "x\n"), r
    assert victim.is_dir()
    assert run(sane_ctx, pane, "echo y")["output"] == "y\n"


@pytest.mark.parametrize("shell", HOLD_SHELLS)
def test_an_older_kill_is_not_mistaken_for_typed_text(
    sane_ctx: Context, tmux_server: TmuxTestServer, shell: str
) -> None:
    """The takeover yanks back only what it killed: a person's earlier kill stays in
    the kill ring, the empty line stays empty."""
    pane = tmux_server.new_pane(shell)
    _wait_line(tmux_server, pane, lambda line: line.endswith("$ "))
    _type(tmux_server, pane, "-l", "echo older kill")
    _wait_line(tmux_server, pane, lambda line: line.endswith("older kill"))
    _type(tmux_server, pane, "C-u")
    _wait_line(tmux_server, pane, lambda line: line.endswith("$ "))
    r = run(sane_ctx, pane, "echo x")
    assert (r["status"], r["output"]) == ("completed", "x\n")
    assert run(sane_ctx, pane, "echo y")["output"] == "y\n"


SCREEN_SHELLS = ["dash", "posh", "mksh", "ash", "yash", "ksh93"]


@pytest.mark.parametrize("shell", SCREEN_SHELLS)
def test_shells_without_editor_widgets_are_checked_on_the_screen(
    sane_ctx: Context, tmux_server: TmuxTestServer, shell: str, tmp_path: Path
) -> None:
    """dash and posh (no line editor: the kernel's line, shown by its reprint
    character) and mksh, busybox ash, yash, ksh93 (editors sane cannot program: the
    screen against the prompt as last drawn) are never typed into after a person's
    text, and the check follows a prompt a run changes."""
    pane = tmux_server.new_pane(shell)
    victim = tmp_path / "DIR"
    victim.mkdir()
    assert run(sane_ctx, pane, f"cd {tmp_path}; PS1='in-dir> '")["exit_code"] == 0
    assert run(sane_ctx, pane, "pwd")["output"] == f"{tmp_path}\n"
    typed = "rm -rf DIR #"  # run in tmp_path
    if shell not in ("dash", "posh"):  # an editor: typed before it reads, shown twice
        _editor_reads(tmux_server, pane)
    _type(tmux_server, pane, "-l", typed)
    _wait_line(tmux_server, pane, lambda line: line.rstrip().endswith(typed))
    caught = _refused(sane_ctx, tmux_server, pane, "echo x")
    assert caught.details["text"] == typed, caught.details
    assert victim.is_dir()
    assert tmux_server.run("display-message", "-p", "-t", pane, "#{@sane_run}").strip() == ""
    r = run(sane_ctx, pane, "echo x", clear_input=True)
    assert (r["status"], r["output"]) == ("completed", "x\n")
    assert victim.is_dir()
    assert run(sane_ctx, pane, "echo again")["output"] == "again\n"


@pytest.mark.parametrize("shell", SCREEN_SHELLS)
def test_a_prompt_not_seen_after_a_run_is_not_compared_against(
    sane_ctx: Context, tmux_server: TmuxTestServer, shell: str, tmp_path: Path
) -> None:
    """The prompt after a run comes later than sane waits for it (here: drawn once the
    test says so). The prompt kept from before must not stand in for it: a person's
    text that looks like that old prompt, on the new prompt's line, is refused, never
    typed after. Before, the old prompt matched the line, and sane's line went after a
    typed ``$ ``: the shell ran ``$`` with sane's line as its arguments (after a root
    prompt's ``# ``, a comment); the run waited for ever."""
    pane = tmux_server.new_pane(shell)
    assert run(sane_ctx, pane, "echo ready")["output"] == "ready\n"
    old = tmux_server.run("display-message", "-p", "-t", pane, "#{@sane_prompt}").rstrip("\n")
    assert old.strip(), old  # the prompt sane saw drawn (`$ `, `# `, ...)
    go = tmp_path / "go"
    # An empty prompt, drawn once `go` exists (command substitution in PS1).
    r = run(sane_ctx, pane, f"PS1='$(until [ -e {go} ]; do sleep 0.05; done)'")
    assert r["status"] == "completed"
    go.touch()
    _type(tmux_server, pane, "-l", old)
    _wait_line(tmux_server, pane, lambda line: line.endswith(old))
    ran = tmp_path / "ran"
    caught = _refused(sane_ctx, tmux_server, pane, f"touch {ran}")
    assert not ran.exists()
    assert tmux_server.run("display-message", "-p", "-t", pane, "#{@sane_run}").strip() == ""
    # The empty prompt may still be computed as clear_input's C-c comes (`go` was made
    # just now): then the C-c is a SIGINT, after which mksh threw away the next line
    # it read, sane's, unrun (`running`, 5 of 6 runs before the fix); the clearing's
    # second C-c, at the editor, ends that pending interrupt.
    # (A prompt with text again: an empty one is not told from one not seen.)
    r = run(sane_ctx, pane, "PS1='z> '; echo x", clear_input=True)
    assert (r["status"], r["output"]) == ("completed", "x\n"), (caught, _screen(tmux_server, pane))
    assert run(sane_ctx, pane, "echo again")["output"] == "again\n"


# posh does not expand a command substitution in PS1: its prompt is drawn at once.
@pytest.mark.parametrize("shell", [shell for shell in SCREEN_SHELLS if shell != "posh"])
def test_clear_input_while_the_prompt_is_still_computed_runs_sanes_line(
    sane_ctx: Context, tmux_server: TmuxTestServer, shell: str, tmp_path: Path
) -> None:
    """A prompt that takes long to compute (a slow ``PS1``: here one that sleeps the
    first time) is not seen after the run, and a person types meanwhile (the kernel
    echoes it). clear_input's C-c then reaches the shell as a SIGINT, not as its
    editor's abort: mksh drew its prompt and threw away the next line it read, sane's,
    unrun (the run stayed ``running``; strace: the line read to its Enter, then a new
    prompt). The clearing's second C-c, typed at the prompt the first one brought, is
    the editor's abort and ends that pending interrupt: sane's line runs, once."""
    pane = tmux_server.new_pane(shell)
    slept = tmp_path / "slept"
    # Sleeps while computing the first prompt after this run only (until the C-c).
    ps1 = f"$(if [ -e {slept} ]; then :; else : >{slept}; sleep 300; fi)p> "
    r = run(sane_ctx, pane, f"PS1='{ps1}'")
    assert r["status"] == "completed"
    assert slept.exists()  # the prompt is being computed: nothing drew it
    typed = "echo PERSON-RAN"
    _type(tmux_server, pane, "-l", typed)
    _wait_line(tmux_server, pane, lambda line: line.rstrip().endswith(typed))
    ran = tmp_path / "ran"
    _refused(sane_ctx, tmux_server, pane, f"touch {ran}")
    assert not ran.exists()
    r = run(sane_ctx, pane, "echo x", clear_input=True, timeout=10)
    assert (r["status"], r["output"]) == ("completed", "x\n"), (r, _screen(tmux_server, pane))
    assert run(sane_ctx, pane, "echo again")["output"] == "again\n"
    assert "PERSON-RAN" not in _screen(tmux_server, pane)  # its output: never ran


@pytest.mark.parametrize("shell", ["dash", "mksh"])
def test_clear_input_waits_for_a_prompt_slower_than_a_runs_wait(
    sane_ctx: Context, tmux_server: TmuxTestServer, shell: str, tmp_path: Path
) -> None:
    """The prompt after clear_input's C-c must come (sane's own C-c), so the clearing
    waits for it longer than a run's end waits for its prompt (2 s, on every run's
    path). Before, a prompt that takes 3 s to draw failed the run (``pane_has_input``:
    no prompt within 2 s)."""
    pane = tmux_server.new_pane(shell)
    r = run(sane_ctx, pane, "PS1='$(sleep 3)p> '")
    assert r["status"] == "completed"
    _wait_line(tmux_server, pane, lambda line: line.rstrip() == "p>", 30.0)
    typed = "echo PERSON-RAN"
    _type(tmux_server, pane, "-l", typed)
    _wait_line(tmux_server, pane, lambda line: line.rstrip().endswith(typed))
    r = run(sane_ctx, pane, "echo x", clear_input=True, timeout=20)
    assert (r["status"], r["output"]) == ("completed", "x\n"), (r, _screen(tmux_server, pane))
    assert "PERSON-RAN" not in _screen(tmux_server, pane)
