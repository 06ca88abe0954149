"""The JSON contract's envelope, without any I/O: the CLI prints these documents and
the MCP server returns them, so both give an agent byte-for-byte the same answer."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sane.errors import CommandFailed, SaneError

# Bumped only by a change an existing caller would notice (sane.models re-exports it).
SCHEMA_VERSION = 1


def ok_document(result: Mapping[str, Any]) -> dict[str, Any]:
    return {"ok": True, "schema_version": SCHEMA_VERSION, **result}


def error_document(err: SaneError, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {"ok": False, "schema_version": SCHEMA_VERSION, "error": err.to_dict()}
    if extra:
        doc.update(extra)
    return doc


def check_failure(result: Mapping[str, Any]) -> CommandFailed | None:
    """What ``--check`` turns a completed run with a non-zero exit code into."""
    if result["status"] == "completed" and result["exit_code"] != 0:
        return CommandFailed(
            f"command exited with status {result['exit_code']}", exit_code=result["exit_code"]
        )
    return None
