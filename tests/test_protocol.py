"""Unit tests of the pure protocol layer: markers, scanner, output cleaning, framing."""

from __future__ import annotations

import base64

import pytest

from sane.protocol import fish, output
from sane.protocol import markers as mk
from sane.protocol.runner import (
    MAX_TYPED_LINE,
    SHELL_FISH,
    TAKEOVER_END,
    bootstrap_line,
    bootstrapped,
    discarded,
    exit_status,
    line_tag,
    run_input,
    takeover_lines,
    typed_meanwhile,
)
from sane.protocol.scanner import (
    OUTCOME_ABORTED,
    OUTCOME_COMPLETED,
    OUTCOME_EXITED,
    OUTCOME_MISSING_RUNNER,
    RunScanner,
)

NONCE = "0123456789abcdef"
TOKEN = "fedcba9876543210"
PROBE = "00112233aabbccdd"  # a status probe's nonce (typed once the shell was idle)


def m(tag: str, kind: str, arg: int | None = None) -> bytes:
    body = f"{tag};{kind}" + (f";{arg}" if arg is not None else "")
    return mk.PREFIX + body.encode() + mk.TERMINATOR


PROBE_ECHO = b" printf '\\033]7770;SANE;%s;S;%s\\007' 00112233aabbccdd \"$?\"\r\n"
ECHO = b" ${__sane_go:-printf '\\033]7770;SANE;%s;M\\007'} 0123456789abcdef 4 \"$?\" - true\r\n"

STREAMS = [
    # (name, stream, outcome kind, exit code, expected region)
    (
        "plain",
        ECHO + m(NONCE, "B") + b"hello\r\n" + m(NONCE, "E", 0) + m(TOKEN, "P", 0) + b"$ ",
        OUTCOME_COMPLETED,
        0,
        b"hello\r\n",
    ),
    ("empty", m(NONCE, "B") + m(NONCE, "E", 0), OUTCOME_COMPLETED, 0, b""),
    ("exit 255", m(NONCE, "B") + b"x" + m(NONCE, "E", 255), OUTCOME_COMPLETED, 255, b"x"),
    ("exit via trap", m(NONCE, "B") + b"bye" + m(NONCE, "X", 3), OUTCOME_EXITED, 3, b"bye"),
    (
        "aborted",
        m(NONCE, "B") + b"partial^C\r\n" + m(TOKEN, "P") + b"$ " + PROBE_ECHO + m(PROBE, "S", 130),
        OUTCOME_ABORTED,
        130,
        b"partial^C\r\n",
    ),
    (
        "aborted, prompt rebuilt without the marker",
        m(NONCE, "B") + b"partial^C\r\nme@h:~$ " + PROBE_ECHO + m(PROBE, "S", 130),
        OUTCOME_ABORTED,
        130,
        b"partial^C",
    ),
    (
        "aborted without C-c, prompt rebuilt",
        m(NONCE, "B") + b"bash: x: unset\r\n[~]> " + PROBE_ECHO + m(PROBE, "S", 1),
        OUTCOME_ABORTED,
        1,
        b"bash: x: unset\r\n",
    ),
    (
        "a prompt marker ends nothing",
        m(NONCE, "B") + m(TOKEN, "P", 0) + b"after" + m(NONCE, "E", 3),
        OUTCOME_COMPLETED,
        3,
        m(TOKEN, "P", 0) + b"after",
    ),
    (
        "an unexpected status marker ends nothing",
        m(NONCE, "B") + m(NONCE, "S", 0) + m("0000000011111111", "S", 0) + m(NONCE, "E", 0),
        OUTCOME_COMPLETED,
        0,
        m(NONCE, "S", 0) + m("0000000011111111", "S", 0),
    ),
    (
        "forged markers",
        m(NONCE, "B")
        + m("aaaaaaaaaaaaaaaa", "E", 0)
        + b"\x1b]7770;SANE;zz;E;0\x07"
        + m(TOKEN + "00", "P", 1)
        + b"ok"
        + m(NONCE, "E", 7),
        OUTCOME_COMPLETED,
        7,
        m("aaaaaaaaaaaaaaaa", "E", 0)
        + b"\x1b]7770;SANE;zz;E;0\x07"
        + m(TOKEN + "00", "P", 1)
        + b"ok",
    ),
    (
        "prompt before begin is an earlier prompt",
        m(TOKEN, "P", 0) + m(NONCE, "B") + b"a" + m(NONCE, "E", 0),
        OUTCOME_COMPLETED,
        0,
        b"a",
    ),
    (
        # mksh in vi mode (as captured): the probe's line is longer than the screen's,
        # and mksh scrolls it sideways, drawing its prompt again after a CR.
        "aborted, prompt drawn again on its line",
        m(NONCE, "B")
        + b"start\r\n^C\r\n"
        + m(TOKEN, "P")
        + b"# "
        + PROBE_ECHO[:20]
        + b"\r"
        + m(TOKEN, "P")
        + b"# "
        + PROBE_ECHO[20:]
        + m(PROBE, "S", 130),
        OUTCOME_ABORTED,
        130,
        b"start\r\n^C\r\n",
    ),
    (
        "aborted, a prompt marker printed on the line before the shell's",
        m(NONCE, "B")
        + b"x"
        + m(TOKEN, "P")
        + b"y^C\r\n"
        + m(TOKEN, "P")
        + b"$ "
        + PROBE_ECHO
        + m(PROBE, "S", 130),
        OUTCOME_ABORTED,
        130,
        b"x" + m(TOKEN, "P") + b"y^C\r\n",
    ),
    ("missing runner", ECHO + m(NONCE, "M"), OUTCOME_MISSING_RUNNER, None, b""),
]


@pytest.mark.parametrize("name,stream,kind,code,region", STREAMS, ids=[s[0] for s in STREAMS])
def test_scanner_whole_stream(
    name: str, stream: bytes, kind: str, code: int | None, region: bytes
) -> None:
    sc = RunScanner(NONCE, [TOKEN])
    sc.expect_status(PROBE)
    outcome = sc.feed(stream)
    assert outcome is not None
    assert (outcome.kind, outcome.exit_code) == (kind, code)
    assert sc.region() == region


@pytest.mark.parametrize("name,stream,kind,code,region", STREAMS, ids=[s[0] for s in STREAMS])
def test_scanner_split_at_every_boundary(
    name: str, stream: bytes, kind: str, code: int | None, region: bytes
) -> None:
    for cut in range(len(stream) + 1):
        sc = RunScanner(NONCE, [TOKEN])
        sc.expect_status(PROBE)
        first = sc.feed(stream[:cut])
        if first is None:
            sc.feed(stream[cut:])
        assert sc.outcome is not None, cut
        assert (sc.outcome.kind, sc.outcome.exit_code) == (kind, code), cut
        assert sc.region() == region, cut


@pytest.mark.parametrize("name,stream,kind,code,region", STREAMS, ids=[s[0] for s in STREAMS])
def test_scanner_byte_by_byte(
    name: str, stream: bytes, kind: str, code: int | None, region: bytes
) -> None:
    sc = RunScanner(NONCE, [TOKEN])
    sc.expect_status(PROBE)
    for i in range(len(stream)):
        sc.feed(stream[i : i + 1])
    assert sc.outcome is not None
    assert (sc.outcome.kind, sc.outcome.exit_code, sc.region()) == (kind, code, region)


def test_scanner_waits_while_unfinished() -> None:
    sc = RunScanner(NONCE, [TOKEN])
    assert sc.feed(m(NONCE, "B") + b"abc" + m(NONCE, "E", 0)[:-1]) is None
    assert sc.region() == b"abc" + m(NONCE, "E", 0)[:-1]


def test_status_probe_after_interrupt_ends_a_run_that_never_began() -> None:
    sc = RunScanner(NONCE, [TOKEN])
    sc.feed(m(TOKEN, "P"))
    assert sc.outcome is None
    sc.mark_interrupt()
    sc.feed(b"^C\r\n" + m(TOKEN, "P"))
    assert sc.outcome is None  # a prompt ends nothing: only the probe's answer does
    sc.expect_status(PROBE)
    sc.feed(b"$ " + PROBE_ECHO + m(PROBE, "S", 130))
    assert sc.outcome is not None and sc.outcome.kind == OUTCOME_ABORTED
    assert sc.region() == b""


def test_scan_skips_overlong_lookalikes() -> None:
    junk = mk.PREFIX + b"a" * 200 + mk.TERMINATOR
    found, _ = mk.scan(junk + m(NONCE, "B"), 0)
    assert [(f.tag, f.kind) for f in found] == [(NONCE, "B")]


CLEAN_CASES = [
    (b"a\r\nb\r\n", False, False, b"a\nb\n"),
    (b"no newline", False, False, b"no newline"),
    (b"crlf\r\r\n", False, False, b"crlf\r\n"),
    (b"progress\rdone\r\n", False, False, b"progress\rdone\n"),
    (b"\x1b[31mred\x1b[0m\r\n", False, False, b"red\n"),
    (b"\x1b[31mred\x1b[0m\r\n", True, False, b"\x1b[31mred\x1b[0m\n"),
    (b"a\x1b[2J\x1b[Hb\x1b[5;10Hc\x1b]0;title\x07\x1b(B\x1b=d", False, False, b"abcd"),
    (b"\t\xff\xfe\r\n", False, False, b"\t\xff\xfe\n"),
    (b"out\r\n^C\r\n\x1b[?2004h", False, True, b"out\n"),
    (b"out^C\r\n", True, True, b"out"),
]


@pytest.mark.parametrize("raw,keep,aborted,expected", CLEAN_CASES)
def test_clean(raw: bytes, keep: bool, aborted: bool, expected: bytes) -> None:
    assert output.clean(raw, keep_ansi=keep, aborted=aborted) == expected


def test_clean_in_pieces_equals_clean_whole() -> None:
    raw = "l1\r\n\x1b[1mbold\x1b[0m é 🎉\r\n\rprogress\x1b]0;t\x07\r\n".encode()
    whole = output.clean(raw)
    for cut in range(len(raw) + 1):
        first = raw[: output.safe_cut(raw[:cut])]
        assert output.clean(first) + output.clean(raw[len(first) :]) == whole, cut


def test_render_utf8_and_invalid_bytes() -> None:
    ok = output.render("日本 🎉\n".encode(), None, "")
    assert ok.text == "日本 🎉\n" and ok.text_base64 is None and not ok.truncated
    bad = output.render(b"\xff\xfeabc\x80", None, "")
    assert base64.b64decode(bad.text_base64 or "") == b"\xff\xfeabc\x80"
    assert bad.text == "\ufffd\ufffdabc\ufffd"


def test_render_truncates_in_the_middle() -> None:
    data = b"".join(b"%06d\n" % i for i in range(10000))
    r = output.render(data, 1000, "full output in /x")
    assert r.truncated and r.size == len(data)
    assert r.text.startswith("000000\n") and r.text.endswith("009999\n")
    assert f"{len(data) - 1000} bytes omitted; full output in /x" in r.text


def test_run_input_forms() -> None:
    keys = run_input(NONCE, "echo 'hi' $HOME !x")
    assert keys.kind == "keys" and "\x1b" not in keys.text
    assert keys.text.startswith(" ") and "\n" not in keys.text
    assert keys.text.endswith("""- 'echo '"'"'hi'"'"' $HOME !x' 7</dev/null""")
    utf = run_input(NONCE, "echo é")
    assert utf.kind == "keys" and base64.b64encode("echo é".encode()).decode() in utf.text
    long = run_input(NONCE, "x" * 5000)
    assert long.kind == "paste" and all(
        len(line) <= MAX_TYPED_LINE for line in long.text.splitlines()
    )
    assert long.text.endswith(" p 7</dev/null\n")


def test_takeover_lines_hold_no_escape_byte_and_fit_every_line_editor() -> None:
    for line in [*takeover_lines(NONCE, TOKEN), bootstrap_line(NONCE)]:
        # read by a tty in canonical mode (the bootstrap's loop): printable ASCII only
        assert all(" " <= ch <= "~" for ch in line), line
        # busybox ash cuts typed lines at 1023 bytes (and waits for the cut quote)
        assert len(line.encode()) <= MAX_TYPED_LINE < 1023


def test_the_bootstrap_loop_runs_every_takeover_line_and_skips_its_own_copies() -> None:
    """The loop skips lines holding ``__sane_bl`` (a retyped bootstrap) and stops at
    TAKEOVER_END: no takeover line may look like either."""
    line = bootstrap_line(NONCE)
    tag = TAKEOVER_END.rsplit(" ", 1)[1]
    assert (
        "__sane_bl" in line
        and f"*'{tag}') break" in line
        and line.index("*__sane_bl*") < line.index(tag)
    )
    assert "__sane_bl" not in TAKEOVER_END
    for body in takeover_lines(NONCE, TOKEN):
        assert "__sane_bl" not in body and not body.endswith(tag)
    marker = mk.PREFIX + f"{NONCE};{mk.BOOTSTRAP}".encode() + mk.TERMINATOR
    assert bootstrapped(line.encode() + b"\r\n" + marker, [NONCE]) == NONCE
    assert bootstrapped(line.encode(), [NONCE]) is None  # its echo is not the marker


def test_the_bootstrap_loop_runs_only_tagged_lines_and_reports_the_rest() -> None:
    """What the loop did not run comes back between a pair of DISCARDED markers
    (inside an OSC no terminal shows); tmux's answers to terminal queries in it are
    not a person's text."""
    line = bootstrap_line(NONCE)
    assert f"__sane_bt='{line_tag(NONCE)}'" in line and 'eval "$__sane_bl"' in line
    t = mk.PREFIX + f"{NONCE};{mk.DISCARDED}".encode() + mk.TERMINATOR
    other = mk.PREFIX + f"{'1' * 16};{mk.DISCARDED}".encode() + mk.TERMINATOR
    out = (
        t
        + b"\x1b]7771;touch x\x07"
        + t
        + other
        + b"\x1b]7771;no\x07"
        + other
        + t
        + b"\x1b]7771;\x1b[24;1R\x1bP>|tmux 3.3a\x1b\\\x07"
        + t
        + t
        + b"\x1b]7771;rm -rf y #\x07"
        + t
    )
    assert discarded(out, NONCE) == [b"touch x", b"\x1b[24;1R\x1bP>|tmux 3.3a\x1b\\", b"rm -rf y #"]
    assert typed_meanwhile(out, NONCE) == "touch x\nrm -rf y #"
    assert typed_meanwhile(b"", NONCE) == ""


def test_exit_status_folds_ksh_and_yash_signal_codes() -> None:
    # ksh93 reports death by signal n as 256+n, yash as 384+n; callers get 128+n
    assert [exit_status(c) for c in (0, 7, 255, 258, 265, 386, 393)] == [
        0,
        7,
        255,
        130,
        137,
        130,
        137,
    ]


def test_abort_tail_of_zsh_and_yash_is_dropped() -> None:
    mark = b"\x1b[1m\x1b[7m%\x1b[27m\x1b[1m\x1b[0m" + b" " * 199 + b"\r \r"
    zsh = b"partial^C" + mark + b"\r\x1b[0m\x1b[27m\x1b[24m\x1b[J"
    assert output.clean(zsh, aborted=True) == b"partial"
    assert output.clean(zsh, aborted=True, keep_ansi=True) == b"partial"
    yash = b"start\r\n^C\r\r\n\x1b[?1h\x1b=\x1b[7m$\x1b[m\x0f" + b" " * 79 + b"\r\x1b[J"
    assert output.clean(yash, aborted=True) == b"start\n"
    # not aborted: nothing of the output is touched
    assert output.clean(b"50 %   \r \r", aborted=False) == b"50 %   \r \r"


def test_lost_run_drops_the_ssh_clients_goodbye() -> None:
    raw = b"partial\r\nConnection to 10.0.0.5 closed by remote host.\r\r\n"
    assert output.clean(raw, lost=True) == b"partial\n"
    assert output.clean(raw) == b"partial\nConnection to 10.0.0.5 closed by remote host.\r\n"


def test_a_lost_runs_output_cut_inside_the_ttys_line_end_stays_a_prefix() -> None:
    """A lost run's output stops where tmux stopped sending it, which can be between the
    `\r` and the `\n` the tty writes for a program's `\n` (seen in CI): the `\r` goes,
    so what is returned is a prefix of what the program printed. A run that ended is
    not cut: a program's own last `\r` stays."""
    assert output.clean(b"18280\r\n18281\r", lost=True) == b"18280\n18281"
    assert output.clean(b"18280\r\n18281\r", exited=True, lost=True) == b"18280\n18281"
    assert output.clean(b"50 %\r") == b"50 %\r"


def test_exit_drops_bashs_own_exit_line() -> None:
    """bash's `exit`/`logout` line goes where its exit trap's BASH_EXIT_LINE marker (the
    run's nonce) follows it; the same line without the marker is the command's output
    (dash, zsh... print none of their own), but for a lost run (no marker came)."""
    nonce = "0123456789abcdef"
    bash = mk.marker_bytes(nonce, mk.BASH_EXIT_LINE)
    assert output.clean(b"bye\r\nexit\r\n" + bash, exited=True, nonce=nonce) == b"bye\n"
    assert output.clean(b"bye\r\nlogout\r\n" + bash, exited=True, nonce=nonce) == b"bye\n"
    assert output.clean(b"exit\r\nexit\r\n" + bash, exited=True, nonce=nonce) == b"exit\n"
    assert output.clean(b"bye\r\nexit\r\n", exited=True, nonce=nonce) == b"bye\nexit\n"
    assert output.clean(b"bye\r\nexit\r\n", exited=True, lost=True) == b"bye\n"
    assert output.clean(b"bye\r\nexit\r\n") == b"bye\nexit\n"


def test_exit_drops_bashs_exit_line_before_the_users_own_trap() -> None:
    """bash prints `exit` before any EXIT trap: before the user's trap sane keeps (its
    USER_EXIT marker, the run's nonce), whose output follows; a marker of another nonce
    (the command's own printing) takes nothing with it."""
    nonce, other = "0123456789abcdef", "fedcba9876543210"
    raw = (
        b"last\r\nexit\r\n"
        + mk.marker_bytes(nonce, mk.BASH_EXIT_LINE)
        + mk.marker_bytes(nonce, mk.USER_EXIT)
        + b"cleanup\r\n"
    )
    assert output.clean(raw, exited=True, nonce=nonce) == b"last\ncleanup\n"
    assert output.clean(raw, exited=True, nonce=nonce, keep_ansi=True) == b"last\ncleanup\n"
    forged = raw.replace(nonce.encode(), other.encode())
    assert output.clean(forged, exited=True, nonce=nonce) == b"last\nexit\ncleanup\n"


# Keys fish's default and vi bindings bind to more than self-insert: each ends a batch of
# typed characters (a repaint, highlighting and autosuggestion threads), the cost that
# made a fish run 2.5x a bash one (docs/performance.md).
_FISH_BATCH_ENDERS = set(" ;|&<>)")


@pytest.mark.parametrize(
    "command",
    ["true", "echo 'hi' $HOME; ls -l | wc -l > /dev/null & (x)", "echo é", "a\nb"],
)
def test_fish_runs_type_one_word(command: str) -> None:
    """A fish run is typed as one word after the leading space that keeps it out of
    history: no key that ends fish's batch of typed characters, no escape byte."""
    typed = run_input(NONCE, command, kind=SHELL_FISH)
    assert typed.kind == "keys" and typed.text.startswith(" ")
    assert not _FISH_BATCH_ENDERS & set(typed.text[1:])
    assert "\x1b" not in typed.text and "\n" not in typed.text


def test_fish_word_reads_back_as_its_text() -> None:
    """fish's parser turns the escaped word back into the text (``\\xHH`` reads at most
    two hex digits: a digit after an escape stays a digit)."""
    import subprocess

    text = "echo 'a b';c|d&e<>()\\ \"q\" $HOME {x,y} *?[]#!~^,`1 %self\x201\t\\x41"
    done = subprocess.run(
        ["fish", "--no-config", "-c", f"printf %s {fish.word(text)}"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert done.stdout == text


def test_a_fish_run_types_few_keys() -> None:
    """fish reads and matches every typed byte on its own against all its key bindings
    (measured under callgrind: ~24,000 instructions a byte, ~2.5 M for sane's line of a
    ``true`` run against ~0.8 M for fish's whole ` true`): the line of a short command
    is typed in as few keys as its framing allows (131 before punctuation was typed
    after a backslash and the arguments split by ``\\t``)."""
    typed = run_input(NONCE, "true", kind=SHELL_FISH)
    assert typed.kind == "keys" and len(typed.text) <= 110


def test_fish_reader_drawing_is_not_output() -> None:
    """fish's `read -P 'Name? ' x; echo "hi $x"` as the pane's stream carries it (TERM
    screen, 200 columns): what fish's line editor drew goes, the text stays; a
    command's own carriage returns stay."""
    mark = b"\x1b[2m\xe2\x8f\x8e\x1b[m\x0f" + b" " * 199 + b"\r\xe2\x8f\x8e \r\x1b[K"
    waiting = b"\x1b]0;x /w\x07\x1b[30m\x1b[m\x0f\rName? \x1b[K\r\x1b[6C"
    answered = b"Ann\r\x1b[9C\n\x1b[30m\x1b[m\x0f" + mark + b"hi Ann\r\n"
    assert output.clean(output.tidy_fish(waiting, b"")) == b"Name? "
    assert output.clean(output.tidy_fish(answered, waiting)) == b"Ann\nhi Ann\n"
    # With escapes kept: the mark goes with the dim SGR it starts with (no dangling dim).
    assert output.tidy_fish(answered, waiting) == b"Ann\nhi Ann\r\n"
    own = b"a\rb\r\r\n\r\x1b[3Cx"  # a progress line, a \r\n, a move that is not back
    assert output.clean(output.tidy_fish(own, b""), keep_ansi=True) == b"a\rb\r\n\r\x1b[3Cx"


# Recorded in fresh fish panes (TERM screen, 120, 200 and 400 columns, prompts `$ `,
# `abc> ` and `user@host ~/some/dir> `): while the run's `read -P` waits, fish's own
# command line (sane's typed line, wrapped or not) is repainted from where fish
# believes its cursor is.
_FISH_REPAINTS = [
    b"\x1bM\x1b[10D\x1b[J\r\x1b[C\x1b[C",  # the line wrapped; prompt `$ `
    b"\x1bM\x1b[10D\x1b[J\r\x1b[5C",  # prompt `abc> `
    b"\x1b[210D\x1b[K\r\x1b[C\x1b[C",  # a line that did not wrap
    b"\x1bM\x1bM\x1b[11C\x1b[J\r\x1b[22C",  # 3 rows at 120 columns, a 22-wide prompt
]


@pytest.mark.parametrize("repaint", _FISH_REPAINTS)
@pytest.mark.parametrize("split", [True, False])
def test_fish_command_line_repainted_under_read_is_not_output(repaint: bytes, split: bool) -> None:
    """fish repaints its own command line while the run's `read` waits (a highlighting
    of an earlier text of that line, finished late): the repaint is fish's drawing, and
    the read's line goes on where the read left it. Its \\r stayed: 'Name? \\r' while
    waiting, 'Ann\\r\\n' after (test_prompt_then_input[fish], now and then)."""
    mark = b"\x1b[2m\xe2\x8f\x8e\x1b[m\x0f" + b" " * 199 + b"\r\xe2\x8f\x8e \r\x1b[K"
    drawn = b"\x1b]0;{eval,x /w\x07\x1b[30m\x1b[m\x0f\rName? \x1b[K\r\x1b[6C"
    answered = b"Ann\r\x1b[9C\r\n\x1b[30m\x1b[m\x0f" + mark + b"hi Ann\r\n"
    if split:  # the repaint in the piece returned while waiting, or cut in two
        waiting = drawn + repaint
        assert output.clean(output.tidy_fish(waiting, b"")) == b"Name? "
        assert output.clean(output.tidy_fish(answered, waiting)) == b"Ann\nhi Ann\n"
        half = drawn + repaint[: repaint.index(b"\r")]
        assert output.clean(output.tidy_fish(half, b"")) == b"Name? "
        rest = repaint[repaint.index(b"\r") :] + answered
        assert output.clean(output.tidy_fish(rest, half)) == b"Ann\nhi Ann\n"
    else:
        whole = drawn + repaint + answered
        assert output.clean(output.tidy_fish(whole, b"")) == b"Name? Ann\nhi Ann\n"


def test_fish_tidy_keeps_a_commands_own_moves() -> None:
    """Only fish's repaint shape goes (moves back, a clear, \\r and moves right, no
    text: taken as fish's in a fish pane): a command's own line rewrites keep their \\r."""
    for own in (
        b"50%\r\x1b[K100%\n",  # progress: back, clear, new text
        b"abc\x1b[1D\r\x1b[Kx\n",  # a move left, \r, a clear: not fish's repaint
        b"a\n\x1b[1A\x1b[K\rb\n",  # up a line, a clear, \r and text: not one either
    ):
        assert output.clean(output.tidy_fish(own, b"")) == output.clean(own)


def test_the_prompt_line_keeps_what_output_left_on_it() -> None:
    """A screen-checked shell (busybox ash, mksh...) draws its prompt right after output
    without a final newline (``printf x`` shows ``x~ # ``): the line recorded for the next
    run's check is the whole line, else that run was refused as if a person had typed
    (found on busybox ash in the container fleet)."""
    from sane.protocol.editor import drawn_prompt
    from sane.protocol.markers import PREFIX, PROMPT, PROMPT_END, TERMINATOR

    token, nonce = "0123456789abcdef", "fedcba9876543210"

    def mark(tag: str, kind: str, arg: str = "") -> bytes:
        return PREFIX + f"{tag};{kind}{arg}".encode() + TERMINATOR

    def drawn(output: bytes) -> str | None:
        buf = (
            b" typed line\r\n"
            + output
            + mark(nonce, "E", ";0")
            + mark(token, PROMPT)
            + b"\x1b[1m~ #\x1b[0m "
            + mark(token, PROMPT_END)
        )
        prompt = drawn_prompt(buf, 0, frozenset({token}))
        return prompt.line if prompt is not None else None

    assert drawn(b"line\r\n") == "~ # "
    assert drawn(b"") == "~ # "
    assert drawn(b"line\r\nno newline") == "no newline~ # "
    assert drawn(b"abc\rxy") == "xy~ # "


def test_yash_right_prompt_completes_the_prompt_line() -> None:
    """yash draws its right prompt after the prompt's end marker (arg 1: one follows),
    in the same write: the line recorded is the prompt, then the right prompt where the
    cursor move puts it. Until its end marker came the prompt is not complete; settled,
    or once another prompt follows, it is taken as not drawn (no room). A right prompt
    drawn after a person's text (a later redraw) is never taken into the prompt."""
    from sane.protocol.editor import DrawnPrompt, drawn_prompt
    from sane.protocol.markers import (
        PREFIX,
        PROMPT,
        PROMPT_END,
        RIGHT_PROMPT_END,
        TERMINATOR,
    )

    token = "0123456789abcdef"
    tokens = frozenset({token})

    def mark(kind: str, arg: str = "") -> bytes:
        return PREFIX + f"{token};{kind}{arg}".encode() + TERMINATOR

    left = b"\r\n" + mark(PROMPT) + b"\x1b[32m@vm\x1b[39;49m repo 2# " + mark(PROMPT_END, ";1")
    styler = b"\x1b[K\x1b[m\x0f\x1b[1m"
    right = b"\x1b[m\x0f \x1b[36mgit@main" + mark(RIGHT_PROMPT_END) + b"\x1b[96D\x1b[m\x0f"
    whole = left + styler + b"\x1b[82C" + right
    assert drawn_prompt(whole, 0, tokens) == DrawnPrompt("@vm repo 2# ", " " * 83 + "git@main")
    assert drawn_prompt(left + styler, 0, tokens) is None
    assert drawn_prompt(left + styler, 0, tokens, True) == DrawnPrompt("@vm repo 2# ")
    assert drawn_prompt(left + styler + left, 0, tokens) == DrawnPrompt("@vm repo 2# ")
    # A one-column move is the terminal's cuf1, ESC [ C.
    one = drawn_prompt(left + styler + b"\x1b[C" + right, 0, tokens)
    assert one == DrawnPrompt("@vm repo 2# ", "  git@main")
    typed = left + styler + b"rm -rf x\r\n" + b"\x1b[82C" + right
    assert drawn_prompt(typed, 0, tokens) == DrawnPrompt("@vm repo 2# ")
    # Without arg 1 (every other shell) the prompt ends at its end marker.
    plain = left.replace(b";Q;1", b";Q") + styler
    assert drawn_prompt(plain, 0, tokens) == DrawnPrompt("@vm repo 2# ")
