"""Text from a server made harmless for a person's terminal.

A server's output, health fields or error text can hold escape sequences (set the
window title, write an OSC 8 link, query the terminal), carriage returns that hide
what came before, or bidi overrides that reorder it. Human views (``--stream`` on a
terminal, ``sane watch``) show such characters as visible escapes (``\\x1b``) instead
of sending them to the terminal; JSON output keeps the exact text.
"""

from __future__ import annotations

import re

# C0 controls but tab, DEL and C1 controls; zero-width and bidi format characters.
_INVISIBLE = re.compile(
    "[\x00-\x08\x0a-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u2069\ufeff]"
)


def visible(text: object) -> str:
    """``str(text)`` with every control or invisible format character as an escape."""
    return _INVISIBLE.sub(_escape, str(text))


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def markup_safe(text: object) -> str:
    """``visible(text)`` escaped for rich markup (``[/red]`` is text, not a style)."""
    from rich.markup import escape

    return escape(visible(text))
