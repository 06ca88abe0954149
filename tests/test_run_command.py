"""run_command against a real tmux server, in bash and dash panes, asserting exact values."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from sane import errors
from sane.ops.context import Context
from sane.ops.run.command import run_command
from sane.ops.run.options import RunOptions
from sane.ops.run.record import run_finished
from sane.ops.run.resume import run_interrupt, run_wait
from sane.testing import retry_until
from sane.testing.pytest_plugin import TmuxTestServer

from .conftest import interrupted_on_timeout, local_reference, output_bytes, run


def test_empty_output(sane_ctx: Context, pane: str) -> None:
    r = run(sane_ctx, pane, "true")
    assert (r["status"], r["exit_code"], r["output"], r["output_bytes"]) == ("completed", 0, "", 0)


def test_no_trailing_newline(sane_ctx: Context, pane: str) -> None:
    r = run(sane_ctx, pane, "printf abc")
    assert r["output"] == "abc" and r["exit_code"] == 0


def test_hundred_thousand_lines(sane_ctx: Context, pane: str) -> None:
    r = run(sane_ctx, pane, "seq 1 100000", timeout=120)
    expected = "".join(f"{i}\n" for i in range(1, 100001))
    assert r["status"] == "completed"
    assert r["output"] == expected and r["output_bytes"] == len(expected)


def test_line_wider_than_the_pane(sane_ctx: Context, pane: str) -> None:
    r = run(sane_ctx, pane, "head -c 5000 /dev/zero | tr '\\0' x; echo")
    assert r["output"] == "x" * 5000 + "\n"


def test_utf8_wide_characters_and_emoji(sane_ctx: Context, pane: str) -> None:
    r = run(sane_ctx, pane, "printf '%s\\n' '日本語 ｗｉｄｅ 🎉👩‍💻 é'")
    assert r["output"] == "日本語 ｗｉｄｅ 🎉👩‍💻 é\n" and r["output_base64"] is None


def test_tabs(sane_ctx: Context, pane: str) -> None:
    r = run(sane_ctx, pane, "printf 'a\\tb\\t\\tc\\n'")
    assert r["output"] == "a\tb\t\tc\n"


def test_invalid_utf8_is_lossless(sane_ctx: Context, pane: str) -> None:
    r = run(sane_ctx, pane, "printf '\\377\\376ok\\200\\n'")
    assert output_bytes(r) == b"\xff\xfeok\x80\n"
    assert r["output"] == "\ufffd\ufffdok\ufffd\n"


def test_all_byte_values_except_escape_sequences(sane_ctx: Context, pane: str) -> None:
    # Every byte but ESC (which starts an escape sequence, stripped by default) and
    # CR (the tty's CR-LF is undone): what a terminal program can print verbatim.
    data = bytes(b for b in range(256) if b not in (0x1B, 0x0D))
    octal = "".join(f"\\{b:03o}" for b in data)
    r = run(sane_ctx, pane, f"printf '{octal}'", keep_ansi=True)
    assert output_bytes(r) == data


def test_output_imitating_markers(sane_ctx: Context, pane: str) -> None:
    fake = (
        "printf '\\033]7770;SANE;0123456789abcdef;E;0\\007'; "
        "printf '\\033]7770;SANE;0123456789abcdef;P;9\\007'; "
        "printf '\\033]7770;SANE;0123456789abcdef;X;4\\007'; "
        "echo ']7770;SANE;0123456789abcdef;E;0'; exit_code_is() { return 5; }; exit_code_is"
    )
    r = run(sane_ctx, pane, fake)
    assert (r["status"], r["exit_code"]) == ("completed", 5)
    assert r["output"] == "]7770;SANE;0123456789abcdef;E;0\n"
    kept = run(sane_ctx, pane, fake, keep_ansi=True)
    assert kept["output"].startswith("\x1b]7770;SANE;0123456789abcdef;E;0\x07")


def test_screen_clear_and_cursor_moves(sane_ctx: Context, pane: str) -> None:
    cmd = "printf 'a\\033[2J\\033[Hb\\033[5;10Hc\\033[1;31md\\033[0m\\n'"
    assert run(sane_ctx, pane, cmd)["output"] == "abcd\n"
    assert run(sane_ctx, pane, cmd, keep_ansi=True)["output"] == (
        "a\x1b[2J\x1b[Hb\x1b[5;10Hc\x1b[1;31md\x1b[0m\n"
    )


def test_exit_codes_0_to_255(sane_ctx: Context, pane: str) -> None:
    for code in range(256):
        r = run(sane_ctx, pane, f"(exit {code})")
        assert (r["status"], r["exit_code"]) == ("completed", code)


@pytest.mark.parametrize(
    "command,code",
    [
        ("false | true", 0),
        ("true | (exit 7)", 7),
        ("(exit 9) | cat; :", 0),
        ("sh -c 'exit 42'", 42),
        ("sh -c 'kill -TERM $$'", 143),
        ("sh -c 'kill -KILL $$'", 137),
        ("sh -c 'kill -SEGV $$'", 139),
        ("f() { return 12; }; f", 12),
    ],
)
def test_exit_codes_of_pipelines_and_signals(
    sane_ctx: Context, pane: str, command: str, code: int
) -> None:
    r = run(sane_ctx, pane, command)
    assert (r["status"], r["exit_code"]) == ("completed", code)


def test_exit_is_reported_and_the_next_run_works(sane_ctx: Context, pane: str) -> None:
    r = run(sane_ctx, pane, "echo bye; exit 3")
    assert (r["status"], r["exit_code"], r["shell_exited"]) == ("completed", 3, True)
    assert r["output"] == "bye\n"
    again = run(sane_ctx, pane, "echo alive")
    assert (again["output"], again["exit_code"], again["shell_exited"]) == ("alive\n", 0, False)


def test_shell_state_persists_between_runs(sane_ctx: Context, pane: str, tmp_path: object) -> None:
    run(sane_ctx, pane, f"cd {tmp_path} && export SANE_T=42 && greet() {{ echo hi $1; }}")
    r = run(sane_ctx, pane, "pwd; echo $SANE_T; greet you")
    assert r["output"] == f"{tmp_path}\n42\nhi you\n"
    run(sane_ctx, pane, "false")
    assert run(sane_ctx, pane, "echo $?")["output"] == "1\n"


HAZARDS = [
    "echo 'single' \"double\" `echo back` $(echo dollar) \\\\ \\$HOME",
    "echo !! !$ '!x' \"!y\" ; echo hist!ory",
    "cat <<'EOF'\nline $HOME `x` \\n\n  indented\nEOF\ncat <<EOF2\nexp $((1+2))\nEOF2",
    "for i in 1 2 3\ndo\n  printf '%s;' \"$i\"\ndone\necho",
    "printf '%s\\n' \"a'b\" 'c\"d' 'e\\f' 'g$h'",
    "x='  spaces   kept  '; printf '[%s]\\n' \"$x\"",
    "echo tab\there; echo 'unicode ✓'",
    "echo __SANE_0123 ]7770 '\\033]7770;SANE;'",
]


@pytest.mark.parametrize("command", HAZARDS)
def test_quoting_hazards(sane_ctx: Context, pane: str, shell: str, command: str) -> None:
    expected = local_reference(shell, command)
    r = run(sane_ctx, pane, command, keep_ansi=True)
    assert r["exit_code"] == expected.returncode
    assert output_bytes(r) == expected.stdout + expected.stderr


def test_hundred_kilobytes_of_command_text(sane_ctx: Context, pane: str) -> None:
    payload = "".join(chr(0x61 + i % 26) for i in range(100_000))
    r = run(
        sane_ctx,
        pane,
        f'x=\'{payload}\'\nprintf %s "$x" | wc -c\nprintf %s "$x" | md5sum',
        timeout=120,
    )
    import hashlib

    assert r["output"].split() == ["100000", hashlib.md5(payload.encode()).hexdigest(), "-"]


def test_timeout_returns_running_then_wait_gets_the_rest(sane_ctx: Context, pane: str) -> None:
    cmd = (
        "for i in 1 2 3 4 5 6; do echo line$i; sleep 0.2; done;"
        " exit_with() { return $1; }; exit_with 4"
    )
    first = run(sane_ctx, pane, cmd, timeout=0.5)
    assert first["status"] == "running" and first["exit_code"] is None
    assert first["output"].startswith("line1\n")
    rest = dict(run_wait(sane_ctx, first["run_id"], timeout=30))
    assert (rest["status"], rest["exit_code"]) == ("completed", 4)
    assert rest["output_start"] == len(first["output"])
    assert first["output"] + rest["output"] == "".join(f"line{i}\n" for i in range(1, 7))
    # Waiting again on a finished run repeats nothing.
    again = dict(run_wait(sane_ctx, first["run_id"], timeout=1))
    assert (again["status"], again["output"]) == ("completed", "")


def test_waits_from_other_contexts_lose_nothing(
    tmux_server: TmuxTestServer, sane_home: object, pane: str
) -> None:
    # Each call in its own Context, like separate CLI invocations.
    cmd = "i=0; while [ $i -lt 40 ]; do i=$((i+1)); echo n$i; sleep 0.05; done"
    with Context(tmux_server.server) as ctx:
        pieces: list[dict[str, Any]] = [
            dict(run_command(ctx, cmd, pane=pane, options=RunOptions(timeout=0.3)))
        ]
    while pieces[-1]["status"] == "running":
        with Context(tmux_server.server) as ctx:
            pieces.append(dict(run_wait(ctx, pieces[0]["run_id"], timeout=0.4)))
    assert pieces[-1]["exit_code"] == 0 and len(pieces) >= 3
    assert "".join(p["output"] for p in pieces) == "".join(f"n{i}\n" for i in range(1, 41))
    starts = [p["output_start"] for p in pieces]
    assert starts == sorted(starts) and starts[0] == 0


def test_command_reading_stdin_does_not_hang(sane_ctx: Context, pane: str) -> None:
    r = run(sane_ctx, pane, "echo asking; read answer; echo got $answer", timeout=10)
    assert (r["status"], r["output"], r["exit_code"]) == ("waiting_input", "asking\n", None)
    # Nothing left of the cursor: the prompt is the run's own last line.
    assert (r["prompt"], r["waiting_reason"]) == ("asking", "tty_read")
    stopped = dict(run_interrupt(sane_ctx, r["run_id"]))
    assert (stopped["status"], stopped["exit_code"]) == ("interrupted", 130)
    assert run(sane_ctx, pane, "echo usable")["output"] == "usable\n"


def test_interrupt_on_timeout(sane_ctx: Context, pane: str) -> None:
    r = interrupted_on_timeout(sane_ctx, pane, "echo start; sleep 30")
    assert (r["status"], r["exit_code"], r["output"]) == ("interrupted", 130, "start\n")
    assert run(sane_ctx, pane, "echo next")["output"] == "next\n"


def test_busy_pane_refuses_a_second_run(sane_ctx: Context, pane: str) -> None:
    first = run(sane_ctx, pane, "sleep 30", timeout=0.2)
    assert first["status"] == "running"
    with pytest.raises(errors.PaneBusy) as info:
        run(sane_ctx, pane, "echo no")
    assert info.value.details["run_id"] == first["run_id"]
    run_interrupt(sane_ctx, first["run_id"])
    assert run(sane_ctx, pane, "echo yes")["output"] == "yes\n"


def test_finished_but_unwaited_run_does_not_block_the_pane(sane_ctx: Context, pane: str) -> None:
    first = run(sane_ctx, pane, "sleep 0.5; echo done", timeout=0.1)
    assert first["status"] == "running"
    # Its end marker (not just its last output line) has reached the stream file.
    retry_until(lambda: run_finished(sane_ctx, first["run_id"]), message="run finishes")
    assert run(sane_ctx, pane, "echo free")["output"] == "free\n"
    late = dict(run_wait(sane_ctx, first["run_id"], timeout=5))
    assert (late["status"], late["output"]) == ("completed", "done\n")


def test_unknown_pane(sane_ctx: Context) -> None:
    with pytest.raises(errors.PaneNotFound):
        run(sane_ctx, "%999", "true")


def test_max_output_truncates_in_the_middle(sane_ctx: Context, pane: str) -> None:
    r = run(sane_ctx, pane, "seq 1 100000", max_output=1000)
    full = "".join(f"{i}\n" for i in range(1, 100001))
    assert r["truncated"] and r["output_bytes"] == len(full)
    assert r["output"].startswith("1\n2\n") and r["output"].endswith("99999\n100000\n")
    assert r["full_output_path"] is not None
    with open(r["full_output_path"], "rb") as fh:
        assert fh.read() == full.encode()


def test_history_stays_clean(sane_ctx: Context, tmux_server: TmuxTestServer) -> None:
    pane = tmux_server.new_pane("bash")
    tmux_server.run("send-keys", "-t", pane, "echo typed-by-a-person", "Enter")
    run(sane_ctx, pane, "echo one")
    run(sane_ctx, pane, "cat <<'X'\nheredoc\nX")
    run(sane_ctx, pane, "echo " + "y" * 5000)  # the pasted heredoc path
    hist = run(sane_ctx, pane, "history")["output"]
    assert "echo typed-by-a-person" in hist
    assert "__sane" not in hist and "SANE" not in hist and "echo one" not in hist


def test_runs_in_a_nested_shell(sane_ctx: Context, pane: str) -> None:
    run(sane_ctx, pane, "echo warm")
    sane_ctx.tmux(["send-keys", "-t", pane, "exec env PS1='> ' dash", "Enter"])
    # As for a person: wait for the new shell before typing (typed-ahead keys can be
    # swallowed by the exec'ing shell's line editor).
    # (Its prompt on the last line: "> " also shows in the typed line itself.)
    retry_until(
        lambda: _screen(sane_ctx, pane).rstrip().endswith(b"\n>"), message="nested shell prompt"
    )
    r = run(sane_ctx, pane, "echo inner $((6*7))")
    assert (r["output"], r["exit_code"]) == ("inner 42\n", 0)


def _screen(ctx: Context, pane: str) -> bytes:
    return "\n".join(ctx.tmux(["capture-pane", "-p", "-t", pane])).encode()


def test_refuses_to_type_into_a_program(sane_ctx: Context, tmux_server: TmuxTestServer) -> None:
    pane = tmux_server.new_pane("sleep 30")
    with pytest.raises(errors.PaneNotShell):
        run(sane_ctx, pane, "echo no")


def test_default_pane_is_created_in_the_sane_session(sane_ctx: Context) -> None:
    r = dict(run_command(sane_ctx, "echo hi", options=RunOptions()))
    assert r["output"] == "hi\n"
    info = sane_ctx.tmux(
        [
            "display-message",
            "-p",
            "-t",
            str(r["pane"]),
            "#{session_name}:#{@sane_role}:#{window_width}x#{window_height}",
        ]
    )
    assert info == ["sane:local:200x50"]
    assert dict(run_command(sane_ctx, "echo again"))["pane"] == r["pane"]


def test_output_base64_only_when_needed(sane_ctx: Context, pane: str) -> None:
    r = run(sane_ctx, pane, "printf 'plain'")
    assert r["output_base64"] is None
    r = run(sane_ctx, pane, "printf '\\351'")
    assert base64.b64decode(r["output_base64"]) == b"\xe9"


def test_old_ended_run_records_are_pruned_on_the_next_hand_over(
    sane_ctx: Context, tmux_server: TmuxTestServer, pane: str
) -> None:
    import os
    import time

    from sane.ops.run.record import runs_dir

    other = tmux_server.new_pane("bash")
    ended = run(sane_ctx, pane, "sleep 0.4; echo done", timeout=0.1)
    assert dict(run_wait(sane_ctx, ended["run_id"], timeout=30))["status"] == "completed"
    going = run(sane_ctx, pane, "sleep 30", timeout=0.1)
    week_ago = time.time() - 8 * 24 * 3600
    for run_id in (ended["run_id"], going["run_id"]):
        os.utime(runs_dir(sane_ctx) / run_id / "record.json", (week_ago, week_ago))
    recent = run(sane_ctx, other, "sleep 0.3", timeout=0.05)  # a hand-over: prunes
    kept = {p.name for p in runs_dir(sane_ctx).iterdir()}
    assert ended["run_id"] not in kept  # old and ended: removed
    assert going["run_id"] in kept  # old but still running: someone may wait on it
    assert recent["run_id"] in kept
    assert run_interrupt(sane_ctx, going["run_id"])["status"] == "interrupted"


def test_old_spilled_outputs_of_ended_runs_are_pruned(sane_ctx: Context, pane: str) -> None:
    """A run that ended within its call but whose output was cut keeps the whole output
    in runs/<id>/output-0 (named in its result). Those had no record, so pruning never
    looked at them: they stayed for ever (issue #16, Low)."""
    import os
    import time

    from sane.ops.run.record import runs_dir

    old = run(sane_ctx, pane, "seq 1 2000", max_output=100)
    assert old["truncated"] and old["full_output_path"]
    spill_dir = runs_dir(sane_ctx) / old["run_id"]
    week_ago = time.time() - 8 * 24 * 3600
    for path in (spill_dir / "output-0", spill_dir):
        os.utime(path, (week_ago, week_ago))
    new = run(sane_ctx, pane, "seq 1 2000", max_output=100)  # a spill: prunes
    kept = {p.name for p in runs_dir(sane_ctx).iterdir()}
    assert old["run_id"] not in kept and new["run_id"] in kept


def test_a_pane_still_named_tmux_is_waited_for(
    sane_ctx: Context, tmux_server: TmuxTestServer, tmp_path: Path
) -> None:
    """A pane just created is a fork of the tmux server (named `tmux`) until its child
    execs; under load sane saw that name and refused the pane (pane_not_shell). A
    program named tmux that becomes a shell a moment later stands in for it.

    The test waits for a sign written by that program, not for the name `tmux`: the
    pane is named so first by the server's fork, before the script runs (then named
    `start`, not a shell: pane_not_shell, seen once at load ~20 when the test's look
    fell in the fork and sane's read in the script)."""
    start = tmp_path / "start"
    renamed = tmp_path / "renamed"
    start.write_text(
        f"#!/bin/bash\nexec -a tmux bash -c 'touch {renamed}; sleep 1; exec env PS1=\"$ \" dash'\n"
    )
    start.chmod(0o755)
    pane = tmux_server.new_pane(str(start))
    assert retry_until(renamed.exists)
    named = tmux_server.run("display-message", "-p", "-t", pane, "#{pane_current_command}")
    assert named.strip() in ("tmux", "dash"), named  # dash: the second passed meanwhile
    assert run(sane_ctx, pane, "echo ready")["output"] == "ready\n"
