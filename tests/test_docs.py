"""Docs stay true: every error code is documented with its exit status."""

from __future__ import annotations

import re
from pathlib import Path

from sane.errors import all_error_classes

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_every_error_code_is_documented_with_its_exit_status() -> None:
    table = {
        m.group(1): int(m.group(2))
        for m in re.finditer(r"^\| `([a-z_]+)` \| (\d+) \|", (DOCS / "errors.md").read_text(), re.M)
    }
    codes = {cls.code: cls.exit_status for cls in all_error_classes()}
    assert table == codes


def test_every_error_code_says_when_it_happens() -> None:
    rows = re.findall(r"^\| `([a-z_]+)` \| \d+ \| (.*) \|$", (DOCS / "errors.md").read_text(), re.M)
    assert {code for code, _ in rows} == {cls.code for cls in all_error_classes()}
    assert [code for code, when in rows if len(when.strip()) < 10] == []
