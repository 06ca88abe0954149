"""A pane as a person sees it: its screen, keys typed into it, text awaited on it.

For what the command protocol cannot drive: full-screen programs (vim, less, htop),
REPLs and panes sane did not start. These never claim the pane (a run's busy flag
stays its owner's: answering a pager inside a run is the point), but they refuse the
pane sane is called from (``$TMUX_PANE``, or the pane whose process is sane's
ancestor): keys typed there would land in the caller's own command line.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from typing import Any

from sane import errors
from sane.ops.context import Context
from sane.tmux.command import quote

# Key names tmux's send-keys understands, with optional C-/M-/S- modifiers: an
# allow-list, so a "key" can never be a tmux option or a literal string by accident.
_KEY = re.compile(
    r"(?:[CMS]-)*(?:[ -~]|F(?:[1-9]|1[0-2])|Enter|Escape|Tab|BTab|BSpace|Space"
    r"|Up|Down|Left|Right|Home|End|PageUp|PageDown|PPage|NPage|IC|DC|KP\w+)"
)
PROGRESS_EVERY = 1.0
_INFO = "#{pane_id} #{cursor_x} #{cursor_y} #{pane_width} #{pane_height} #{pane_in_mode}"


def _pane(ctx: Context, target: str | None) -> str:
    return (ctx.pane_state(target) if target is not None else ctx.default_pane()).pane_id


def _refuse_callers_pane(ctx: Context, pane_id: str) -> None:
    if ctx.is_callers_pane(ctx.pane_state(pane_id)):
        raise errors.PaneBusy(
            f"pane {pane_id} is the one sane is called from: keys typed "
            "there would go into the caller's own command line",
            pane=pane_id,
        )


def read_screen(ctx: Context, pane: str | None, lines: int | None = None) -> dict[str, Any]:
    """The pane's visible text and cursor, or its last ``lines`` lines (scrollback
    included) with ``lines``."""
    pane_id = _pane(ctx, pane)
    start = ["-S", f"-{lines}"] if lines else []
    text = ctx.tmux(["capture-pane", "-p", "-J", "-t", pane_id, *start])
    if lines:
        while text and not text[-1].strip():
            text.pop()
        text = text[-lines:]
    info = ctx.tmux(["display-message", "-p", "-t", pane_id, _INFO])[0].split(" ")
    return {
        "pane": pane_id,
        "text": "\n".join(text),
        "cursor_x": int(info[1]),
        "cursor_y": int(info[2]),
        "width": int(info[3]),
        "height": int(info[4]),
        "in_mode": info[5] == "1",
    }


def send_keys(
    ctx: Context, pane: str | None, keys: list[str], text: str | None, enter: bool
) -> dict[str, Any]:
    """Type ``text`` literally (every character as itself), then the named ``keys``,
    then Enter if asked."""
    bad = [k for k in keys if not _KEY.fullmatch(k)]
    if bad:
        raise errors.InvalidArgument(
            f"not a key name: {bad[0]!r} (C-c, Escape, Enter, Up, "
            "F1, M-x ...; literal text goes in `text`)",
            key=bad[0],
        )
    pane_id = _pane(ctx, pane)
    _refuse_callers_pane(ctx, pane_id)
    argv = []
    if text:
        argv.append(f"send-keys -t {pane_id} -l -- {quote(text)}")
    argv += [f"send-keys -t {pane_id} {quote(key)}" for key in keys]
    if enter:
        argv.append(f"send-keys -t {pane_id} Enter")
    if argv:
        state = ctx.pane_state(pane_id)
        ctx.client(state.session_id).command(*argv)
    return {"pane": pane_id, "sent_keys": keys, "sent_text_chars": len(text or ""), "enter": enter}


def wait_for_text(
    ctx: Context,
    pane: str | None,
    pattern: str,
    timeout: float,
    lines: int | None = None,
    stop: threading.Event | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Wait until the regular expression ``pattern`` matches the pane's screen (or its
    last ``lines`` lines), woken by the pane's output, until ``timeout``.

    ``stop``: set from another thread (a cancelled call) to end the wait at once, as
    if the deadline had passed. ``progress``: told about every ``PROGRESS_EVERY``
    seconds of waiting, so a client sees the call alive."""
    try:
        regex = re.compile(pattern, re.MULTILINE)
    except re.error as exc:
        raise errors.InvalidArgument(f"pattern: {exc}", field="pattern") from None
    pane_id = _pane(ctx, pane)
    client = ctx.client(ctx.pane_state(pane_id).session_id)
    stream = client.watch(pane_id)
    started = time.monotonic()
    deadline = started + timeout
    reported = started
    try:
        while True:
            screen = read_screen(ctx, pane_id, lines)
            found = regex.search(screen["text"])
            now = time.monotonic()
            remaining = deadline - now
            if progress is not None and found is None and now - reported >= PROGRESS_EVERY:
                reported = now
                progress(f"waiting for /{pattern}/ on {pane_id}: {now - started:.0f} s")
            if found is not None or remaining <= 0 or (stop is not None and stop.is_set()):
                return {
                    "pane": pane_id,
                    "matched": found is not None,
                    "match": found.group(0) if found else None,
                    "text": screen["text"],
                    "waited_ms": round((time.monotonic() - started) * 1000, 3),
                }
            stream.take(min(remaining, 0.5))  # woken by output; a redraw may not print
            # (stop is looked at every 0.5 s at most: a cancelled wait ends that soon)
    finally:
        client.unwatch(pane_id, stream)
