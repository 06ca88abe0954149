"""The schemas checked into ``schemas/``, rendered from the models.

Why check generated files in: agents and other languages read them without running
Python, and reviewers see a contract change as a diff. The same goes for
``sane/cli/table.py``, the command line's view of the table (see
``sane.cli.generate``). ``tests/test_schemas.py`` fails when the files drift from the
models; regenerate both with ``.venv/bin/python -m sane.schema_files``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from sane import tools
from sane.schema import json_schema


def _text(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False) + "\n"


def render() -> dict[str, str]:
    """File name -> content, for every schema file."""
    files = {}
    for tool in tools.TOOLS:
        files[f"{tool.name}.input.json"] = _text(tools.input_schema(tool))
        files[f"{tool.name}.output.json"] = _text(tools.output_schema(tool))
    files["error.json"] = _text(tools.compact(json_schema("error")))
    files["command_failed.json"] = _text(tools.compact(json_schema("command-failed")))
    for document in tools.CLI_DOCUMENTS.values():
        files[f"{document.replace('-', '_')}.output.json"] = _text(
            tools.compact(json_schema(document))
        )
    for fmt in tools.FORMATS:
        files[f"tools.{fmt}.json"] = _text(tools.definitions(fmt))
    files["tools.openai.strict.json"] = _text(tools.definitions("openai", strict=True))
    return files


TABLE = Path(__file__).resolve().parent / "cli" / "table.py"


def render_table() -> str:
    """The content of ``sane/cli/table.py``."""
    from sane.cli.generate import render as render_cli

    return render_cli(tools.TOOLS)


DOCS = Path(__file__).resolve().parent.parent / "docs" / "commands.md"


def render_docs(text: str) -> str:
    """``text`` (docs/commands.md) with its command table regenerated."""
    from sane.cli.generate import BEGIN, END, docs_table

    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    return head + docs_table(tools.TOOLS) + tail


def write(directory: Path) -> list[str]:
    """Write every file into ``directory`` and remove stale ``*.json``; return the names."""
    directory.mkdir(parents=True, exist_ok=True)
    files = render()
    for stale in directory.glob("*.json"):
        if stale.name not in files:
            stale.unlink()
    for name, text in files.items():
        (directory / name).write_text(text, encoding="utf-8")
    return sorted(files)


if __name__ == "__main__":
    write(Path(sys.argv[1] if len(sys.argv) > 1 else "schemas"))
    TABLE.write_text(render_table(), encoding="utf-8")
    if DOCS.exists():
        DOCS.write_text(render_docs(DOCS.read_text(encoding="utf-8")), encoding="utf-8")
