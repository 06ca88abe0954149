"""Property tests (hypothesis): the protocol parser and create-file on random inputs.

The parser (markers.scan + RunScanner + output.clean/safe_cut) is fed what a pane's
terminal would carry for a fake program that printed random bytes, salted with
fake markers (other nonces, near-miss formats, cut-off prefixes), split at random
chunk boundaries. "Exact" means: the output sane reports equals the bytes the fake
program emitted, for every split, and the run ends exactly where its real end marker
is, with its exit status. Example counts are kept small so the whole module runs in
seconds on two cores; the create-file round trips drive a real tmux pane.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from sane.ops.context import Context
from sane.ops.create_file import create_file
from sane.protocol import markers as mk
from sane.protocol import output
from sane.protocol.scanner import OUTCOME_ABORTED, OUTCOME_COMPLETED, OUTCOME_EXITED, RunScanner
from sane.testing.pytest_plugin import TmuxTestServer

NONCE = "0123456789abcdef"
TOKEN = "fedcba9876543210"
PROBE = "00112233aabbccdd"
FAST = settings(max_examples=300, deadline=None)


def marker(tag: str, kind: str, arg: int | None = None) -> bytes:
    body = f"{tag};{kind}" + (f";{arg}" if arg is not None else "")
    return mk.PREFIX + body.encode() + mk.TERMINATOR


def tty(program_bytes: bytes) -> bytes:
    """What a terminal with ``onlcr`` carries for bytes a program wrote: \\n -> \\r\\n."""
    return program_bytes.replace(b"\n", b"\r\n")


hex_tags = st.text("0123456789abcdef", min_size=8, max_size=32).filter(
    lambda t: t not in (NONCE, TOKEN, PROBE)
)
kinds = st.sampled_from(["B", "E", "X", "L", "D", "M", "R", "P"])
codes = st.none() | st.integers(-(10**9), 10**9)


@st.composite
def fake_markers(draw: st.DrawFn) -> bytes:
    """Things that look like markers but are not this run's: printed by the program."""
    choice = draw(st.integers(0, 6))
    if choice == 0:  # a well-formed marker of another run or shell
        return marker(draw(hex_tags), draw(kinds), draw(codes))
    if choice == 1:  # this run's nonce with a malformed body
        return (
            mk.PREFIX
            + NONCE.encode()
            + b";"
            + draw(st.sampled_from([b"e;0", b"E;x", b"E;", b"EE;0", b"E;0;1", b"E; 0"]))
            + mk.TERMINATOR
        )
    if choice == 2:  # a cut-off prefix, then ordinary output
        return mk.PREFIX[: draw(st.integers(1, len(mk.PREFIX)))]
    if choice == 3:  # prefix with no terminator within reach
        return mk.PREFIX + NONCE.encode() + b";E;0" + b"x" * draw(st.integers(0, 80))
    if choice == 4:  # overlong tag
        return marker("a" * draw(st.integers(33, 60)), "E", 0)
    if choice == 5:  # uppercase hex tag, or the prompt token with a non-prompt kind
        return draw(
            st.sampled_from(
                [marker(NONCE.upper(), "E", 0), marker(TOKEN, "E", 0), marker(TOKEN, "B")]
            )
        )
    return b"\x1b]7770;SANE" + draw(st.binary(max_size=8)) + mk.TERMINATOR


@st.composite
def program_output(draw: st.DrawFn) -> bytes:
    """Random bytes with fake markers and terminal-ish bytes mixed in."""
    pieces = draw(
        st.lists(
            st.binary(max_size=40)
            | fake_markers()
            | st.sampled_from(
                [
                    b"\n",
                    b"\r\n",
                    b"\r",
                    b"\x1b",
                    b"\x1b[",
                    b"\x1b[31m",
                    b"\x07",
                    "é✓".encode(),
                    b"\xff\xfe",
                    b"\x00",
                ]
            ),
            max_size=25,
        )
    )
    data = b"".join(pieces)
    # The program cannot know the run's nonce or the shell's token (64 random bits
    # each): pieces that happen to join into a real marker of either are not its output.
    found, _ = mk.scan(data, 0)
    assume(not any(m.tag == NONCE or (m.tag == TOKEN and m.kind == mk.PROMPT) for m in found))
    return data


def splits(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    chunks, last = [], 0
    for p in [*points, len(data)]:
        chunks.append(data[last:p])
        last = p
    return chunks


def feed_all(scanner: RunScanner, chunks: list[bytes]) -> None:
    for chunk in chunks:
        scanner.feed(chunk)


ECHO = b" ${__sane_go:-printf '\\033]7770;SANE;%s;M\\007'} 0123456789abcdef 4 \"$?\" - x\r\n"


@pytest.mark.slow
@FAST
@given(program_output(), st.integers(0, 255), st.lists(st.integers(0, 10**6), max_size=12))
def test_completed_run_output_is_exact_for_every_split(
    payload: bytes, code: int, cuts: list[int]
) -> None:
    stream = (
        ECHO
        + marker(TOKEN, "P", 0)
        + marker(NONCE, "B")
        + tty(payload)
        + marker(NONCE, "E", code)
        + marker(TOKEN, "P", code)
        + b"$ "
    )
    scanner = RunScanner(NONCE, [TOKEN])
    feed_all(scanner, splits(stream, cuts))
    assert scanner.outcome is not None
    assert (scanner.outcome.kind, scanner.outcome.exit_code) == (OUTCOME_COMPLETED, code)
    assert output.clean(scanner.region(), keep_ansi=True) == payload
    # Escapes are stripped from text; binary output (not UTF-8) is kept byte for byte.
    expected = output.strip_escapes(payload) if output.is_text(payload) else payload
    assert output.clean(scanner.region()) == expected


@pytest.mark.slow
@FAST
@given(program_output(), st.integers(0, 255), st.lists(st.integers(0, 10**6), max_size=12))
def test_exit_and_abort_end_the_run_with_their_status(
    payload: bytes, code: int, cuts: list[int]
) -> None:
    exited = RunScanner(NONCE, [TOKEN])
    feed_all(exited, splits(marker(NONCE, "B") + tty(payload) + marker(NONCE, "X", code), cuts))
    assert exited.outcome == (OUTCOME_EXITED, code)
    assert output.clean(exited.region(), keep_ansi=True) == payload
    # An abort: the prompt marker alone ends nothing (a program can print one); the
    # run ends on the answer to the status probe sane types once the shell is idle,
    # and its output stops where the prompt began.
    prompt = marker(TOKEN, "P", 130) + b"$ "
    forged = RunScanner(NONCE, [TOKEN])
    feed_all(forged, splits(marker(NONCE, "B") + tty(payload) + prompt, cuts))
    assert forged.outcome is None
    aborted = RunScanner(NONCE, [TOKEN])
    aborted.expect_status(PROBE)
    feed_all(
        aborted,
        splits(
            marker(NONCE, "B")
            + tty(payload)
            + prompt
            + b"probe\r\n"
            + marker(PROBE, "S", 130)
            + prompt,
            cuts,
        ),
    )
    assert aborted.outcome == (OUTCOME_ABORTED, 130)
    assert output.clean(aborted.region(), keep_ansi=True) == payload


@pytest.mark.slow
@FAST
@given(program_output(), st.lists(st.integers(0, 10**6), max_size=12))
def test_unfinished_run_never_ends_and_never_shows_more_than_was_printed(
    payload: bytes, cuts: list[int]
) -> None:
    """No end marker yet: no outcome, and the region so far is a prefix of the output."""
    stream = marker(NONCE, "B") + tty(payload)
    scanner = RunScanner(NONCE, [TOKEN])
    for chunk in splits(stream, cuts):
        scanner.feed(chunk)
        assert scanner.outcome is None
        assert tty(payload).startswith(scanner.region())
    assert scanner.region() == tty(payload)


@FAST
@given(st.binary(max_size=2000), st.lists(st.integers(0, 10**6), max_size=12))
def test_random_bytes_never_end_a_run(noise: bytes, cuts: list[int]) -> None:
    scanner = RunScanner(NONCE, [TOKEN])
    feed_all(scanner, splits(noise, cuts))
    assert scanner.outcome is None and scanner.region() == b""


@FAST
@given(
    st.lists(st.tuples(st.binary(max_size=30), hex_tags, kinds, codes), max_size=8),
    st.binary(max_size=30),
    st.lists(st.integers(0, 10**6), max_size=12),
)
@pytest.mark.slow
def test_scan_finds_exactly_the_planted_markers(
    planted: list[tuple[bytes, str, str, int | None]], tail: bytes, cuts: list[int]
) -> None:
    """Incremental scan over any split finds the well-formed markers, in order, once."""
    assume(mk.PREFIX[:1] not in tail and all(mk.PREFIX[:1] not in g for g, *_ in planted))
    stream = b"".join(gap + marker(tag, kind, arg) for gap, tag, kind, arg in planted) + tail
    buf = bytearray()
    resume = 0
    found: list[tuple[str, str, int | None]] = []
    for chunk in splits(stream, cuts):
        buf += chunk
        new, resume = mk.scan(buf, resume)
        found += [(m.tag, m.kind, m.arg) for m in new]
    assert found == [(tag, kind, arg) for _, tag, kind, arg in planted]


@FAST
@given(program_output(), st.lists(st.integers(0, 10**6), min_size=1, max_size=12), st.booleans())
@pytest.mark.slow
def test_streamed_pieces_join_to_the_whole_output(
    payload: bytes, cuts: list[int], keep_ansi: bool
) -> None:
    """What a fleet run streams piece by piece (cut by safe_cut) joins up exactly.

    Escape stripping applies to text only: binary output (not UTF-8) streamed without
    keep_ansi is a view for people, and its exact bytes are the final document's."""
    raw = tty(payload)
    assume(keep_ansi or output.is_text(raw))
    sent = 0
    pieces: list[bytes] = []
    for end in sorted({c % (len(raw) + 1) for c in cuts}):
        piece = raw[sent:end]
        piece = piece[: output.safe_cut(piece)]
        sent += len(piece)
        pieces.append(output.clean(piece, keep_ansi=keep_ansi))
    pieces.append(output.clean(raw[sent:], keep_ansi=keep_ansi))
    assert b"".join(pieces) == output.clean(raw, keep_ansi=keep_ansi)


@FAST
@given(st.binary(max_size=3000), st.integers(0, 3000) | st.none())
def test_render_is_exact_or_says_it_truncated(data: bytes, max_bytes: int | None) -> None:
    import base64

    rendered = output.render(data, max_bytes, "spill")
    assert rendered.size == len(data)
    if not rendered.truncated:
        exact = (
            base64.b64decode(rendered.text_base64)
            if rendered.text_base64 is not None
            else rendered.text.encode()
        )
        assert exact == data
    else:
        assert max_bytes is not None and len(data) > max_bytes


@FAST
@given(st.binary(max_size=3000), st.integers(0, 3000))
def test_the_part_render_left_out_is_read_back_exactly(data: bytes, max_bytes: int) -> None:
    """``left_out`` finds the cut (the MCP link's first page starts there), whatever
    the output holds, a fake note included: head + left out + tail is the output."""
    import base64

    note = output.spill_note("/h/runs/r0/output-0")
    fake = output.render(b"x" * 50, 10, note).text.encode()
    for whole in (data, fake + data, data + fake):
        rendered = output.render(whole, max_bytes, note)
        if not rendered.truncated:
            continue
        text = rendered.text_base64
        shown = base64.b64decode(text) if text is not None else rendered.text.encode()
        cut = output.left_out(shown, len(whole), note)
        assert cut is not None
        start, end = cut
        assert shown == whole[:start] + shown[start : len(shown) - (len(whole) - end)] + whole[end:]
        assert start <= max_bytes // 2 and len(shown) - (len(whole) - end) - start < 200


# -- create-file round trips in a real pane -----------------------------------------------

# Any byte but NUL and '/' may be in a file name; keep names within NAME_MAX (255 bytes).
name_chars = st.characters(codec="utf-8", exclude_characters="/\0")
file_names = st.text(name_chars, min_size=1, max_size=60).filter(
    lambda n: n not in (".", "..") and len(n.encode()) <= 255
)


@pytest.fixture(scope="module")
def roundtrip_dir() -> Iterator[Path]:
    import shutil

    path = Path(tempfile.mkdtemp(prefix="sane-prop-"))
    path.chmod(0o777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    name=file_names,
    content=st.binary(max_size=5000)
    | st.sampled_from([b"", b"\n", b"EOF\n", b"'\"$(x)`\\\n", bytes(range(256))]),
)
def test_create_file_round_trips_random_bytes_under_random_names(
    sane_ctx: Context, tmux_server: TmuxTestServer, roundtrip_dir: Path, name: str, content: bytes
) -> None:
    pane = tmux_server.new_pane("bash")
    try:
        target = roundtrip_dir / name
        result = create_file(sane_ctx, str(target), content, pane=pane)
        assert target.read_bytes() == content
        assert result["bytes"] == len(content) and result["path"] == str(target)
        assert os.listdir(roundtrip_dir) == [name]  # no temp file, nothing else created
    finally:
        for entry in os.listdir(roundtrip_dir):
            (roundtrip_dir / entry).unlink()
        tmux_server.run("kill-pane", "-t", pane)
