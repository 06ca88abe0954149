"""Files sane saved for an agent, as MCP resources.

A run's output past the cap is saved whole to a private file (0600, in
``$SANE_HOME/runs/<run id>/``) and the result keeps only the head and the tail; the
tool result links the file as ``sane://runs/<run id>/output-<offset>`` so a client can
read the rest without access to the server's file system. Only names of that exact
shape are served: a URI can never name any other file.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import mcp_types as mt

from sane import errors
from sane.ops.context import Context
from sane.ops.run.record import runs_dir

_OUTPUT_URI = re.compile(r"sane://runs/(r[0-9a-f]{12})/(output-[0-9]+)")
_SCREEN_URI = re.compile(r"sane://panes/%([0-9]+)/screen")

TEMPLATES = [
    mt.ResourceTemplate(
        name="run-output",
        uri_template="sane://runs/{run_id}/output-{offset}",
        description="The whole output of a run whose result was truncated "
        "(the result's full_output_path), from byte offset `offset` of the "
        "run's output.",
        mime_type="text/plain",
    ),
    mt.ResourceTemplate(
        name="pane-screen",
        uri_template="sane://panes/{pane}/screen",
        description="A pane's visible text as a person sees it (pane: "
        "%ID, e.g. %3); read_screen also gives the cursor.",
        mime_type="text/plain",
    ),
]


def output_uri(ctx: Context, path: str) -> str | None:
    """The URI of a saved output file, or None when ``path`` is not one."""
    saved = Path(path)
    uri = f"sane://runs/{saved.parent.name}/{saved.name}"
    if _OUTPUT_URI.fullmatch(uri) and saved.parent.parent == runs_dir(ctx):
        return uri
    return None


def _saved_paths(document: Mapping[str, Any]) -> Iterator[str]:
    if document.get("full_output_path"):
        yield document["full_output_path"]
    for result in document.get("results") or []:
        if isinstance(result, Mapping) and result.get("full_output_path"):
            yield result["full_output_path"]


def links(ctx: Context, document: Mapping[str, Any]) -> list[mt.ResourceLink]:
    """A resource link per saved output the document names."""
    found = []
    for path in _saved_paths(document):
        uri = output_uri(ctx, path)
        if uri is not None:
            found.append(
                mt.ResourceLink(
                    name=uri.rpartition("/")[0].rpartition("/")[2] + " " + uri.rpartition("/")[2],
                    uri=uri,
                    mime_type="text/plain",
                    description="the whole output (the result keeps its head and tail)",
                )
            )
    return found


def read(ctx: Context, uri: str) -> mt.ReadResourceResult:
    screen = _SCREEN_URI.fullmatch(uri.replace("%25", "%"))
    if screen is not None:
        from sane.ops.screen import read_screen

        text = read_screen(ctx, f"%{screen.group(1)}")["text"]
        return mt.ReadResourceResult(
            contents=[mt.TextResourceContents(uri=uri, mime_type="text/plain", text=text)]
        )
    match = _OUTPUT_URI.fullmatch(uri)
    if match is None:
        raise errors.InvalidArgument(
            f"no resource {uri!r}: sane serves "
            "sane://runs/<run id>/output-<offset> and "
            "sane://panes/%<id>/screen",
            uri=uri,
        )
    path = runs_dir(ctx) / match.group(1) / match.group(2)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise errors.RunNotFound(
            f"no saved output {uri} (runs are forgotten after a week)", uri=uri
        ) from None
    try:
        contents: mt.TextResourceContents | mt.BlobResourceContents = mt.TextResourceContents(
            uri=uri, mime_type="text/plain", text=data.decode("utf-8")
        )
    except UnicodeDecodeError:
        contents = mt.BlobResourceContents(
            uri=uri,
            mime_type="application/octet-stream",
            blob=base64.b64encode(data).decode("ascii"),
        )
    return mt.ReadResourceResult(contents=[contents])
