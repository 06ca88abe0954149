"""What sane keeps for an agent, as MCP resources.

A run's output past the cap is saved whole to a private file (0600, in
``$SANE_HOME/runs/<run id>/``) and the result keeps only the head and the tail; the
file is ``sane://runs/<run id>/output-<start>`` (``start``: where the result's output
begins in the run's), read a model-sized page at a time (``?offset=N``), so a client
can read the rest without access to the server's file system, and a host that hands
a resource to its model does not overflow it as the capped result did not. The tool
result links the first page the result left out (``?offset=`` its kept head).

Every run with a record in ``$SANE_HOME`` (left running by a timeout, or over and not
yet collected) is listed: ``sane://runs/<run id>`` is its state (JSON), and
``sane://runs/<run id>/log`` its whole output so far, a model-sized page at a time
(``?offset=N`` for the next; each page's ``_meta`` names it). Pane screens are
``sane://panes/%<id>/screen``.

A URI is untrusted input: only names matching these exact patterns (run ids of sane's
own shape, digits) are served, so a URI can never name any other file.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import mcp_types as mt

from sane import errors
from sane.inputs import AGENT_MAX_OUTPUT
from sane.ops.context import Context
from sane.ops.run.log import recorded_runs, run_log
from sane.ops.run.record import runs_dir
from sane.protocol.output import left_out, spill_note

# Every run URI is spelled here, once: the helpers below build them, the patterns
# below read them (built from the same prefix), and the templates name them.
_RUNS = "sane://runs/"
_RUN_ID = r"(r[0-9a-f]{12})"
_OFFSET = r"(?:\?offset=([0-9]{1,15}))?"
_OUTPUT_URI = re.compile(re.escape(_RUNS) + _RUN_ID + r"/(output-[0-9]+)" + _OFFSET)
_SCREEN_URI = re.compile(r"sane://panes/%([0-9]+)/screen")
_RUN_URI = re.compile(re.escape(_RUNS) + _RUN_ID)
_LOG_URI = re.compile(re.escape(_RUNS) + _RUN_ID + r"/log" + _OFFSET)


def run_uri(run_id: str) -> str:
    """A recorded run's state: ``sane://runs/<run id>``."""
    return _RUNS + run_id


def _paged(uri: str, offset: int) -> str:
    return uri + (f"?offset={offset}" if offset else "")


def log_uri(run_id: str, offset: int = 0) -> str:
    """A page of a recorded run's output: ``sane://runs/<run id>/log[?offset=N]``."""
    return _paged(run_uri(run_id) + "/log", offset)


# A log page fits a model as a tool result does.
LOG_PAGE = AGENT_MAX_OUTPUT
_GOING_ON = ("running", "waiting_input")  # a result whose run has a record
LISTED_RUNS = 200  # the newest; records older than a week are pruned anyway

TEMPLATES = [
    mt.ResourceTemplate(
        name="run-output",
        uri_template=run_uri("{run_id}") + "/output-{start}{?offset}",
        description="The whole output of a result that was truncated (its "
        f"full_output_path; `start`: its output_start), {LOG_PAGE} bytes a page from "
        "byte `offset` of that output (default 0); the page's _meta gives next_offset "
        "and the next page's URI (null at the end). A result links the first page it "
        "left out.",
        mime_type="text/plain",
    ),
    mt.ResourceTemplate(
        name="run",
        uri_template=run_uri("{run_id}"),
        description="A run sane recorded (left running by a timeout, or over and not "
        "collected yet): pane, command, status (running, ended, completed, "
        "interrupted, lost), exit code, owner, output size; JSON.",
        mime_type="application/json",
    ),
    mt.ResourceTemplate(
        name="run-log",
        uri_template=run_uri("{run_id}") + "/log{?offset}",
        description=f"A recorded run's whole output so far, {LOG_PAGE} bytes a page "
        "from byte `offset` (default 0); the page's _meta gives next_offset and the "
        "next page's URI (null at the end so far).",
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
    uri = run_uri(saved.parent.name) + "/" + saved.name
    if _OUTPUT_URI.fullmatch(uri) and saved.parent.parent == runs_dir(ctx):
        return uri
    return None


def _truncated(document: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    """The document's run results that saved their output (a fleet's per server)."""
    for result in [document, *(document.get("results") or [])]:
        if isinstance(result, Mapping) and result.get("full_output_path"):
            yield result


def _left_out(result: Mapping[str, Any]) -> tuple[int, int]:
    """The part of a truncated result's saved output it left out: (start, end); the
    whole when the cut cannot be read back."""
    if result.get("output_base64"):
        rendered = base64.b64decode(result["output_base64"])
    else:
        rendered = str(result.get("output") or "").encode("utf-8")
    size = int(result.get("output_bytes") or 0)
    return left_out(rendered, size, spill_note(result["full_output_path"])) or (0, size)


def _output_link(uri: str, result: Mapping[str, Any]) -> mt.ResourceLink:
    start, end = _left_out(result)
    following = (
        f"; the next page is {_paged(uri, start + LOG_PAGE)}, and so on (each page's "
        "_meta.next names the next)"
        if start + LOG_PAGE < end
        else ""
    )
    return mt.ResourceLink(
        name=f"{uri.rpartition('/')[0].rpartition('/')[2]} {uri.rpartition('/')[2]} "
        f"from byte {start}",
        uri=_paged(uri, start),
        mime_type="text/plain",
        description=f"the output the result left out, bytes {start} to {end} of "
        f"{result.get('output_bytes')} (saved whole, {LOG_PAGE} bytes a page): this page "
        f"starts after the kept head{following}; {uri} reads from the start",
    )


def links(ctx: Context, document: Mapping[str, Any]) -> list[mt.ResourceLink]:
    """A link per saved output the document names (to its first page the result left
    out), and to the log of each run it leaves running or waiting (recorded, so
    readable while it goes on)."""
    found = []
    for result in _truncated(document):
        uri = output_uri(ctx, result["full_output_path"])
        if uri is not None:
            found.append(_output_link(uri, result))
    results = [document, *(document.get("results") or [])]
    for result in results:
        if not isinstance(result, Mapping) or result.get("status") not in _GOING_ON:
            continue
        run_id = result.get("run_id")
        if isinstance(run_id, str) and _RUN_URI.fullmatch(run_uri(run_id)):
            found.append(
                mt.ResourceLink(
                    name=f"{run_id} log",
                    uri=log_uri(run_id),
                    mime_type="text/plain",
                    description="the run's whole output so far, while it goes on",
                )
            )
    return found


def listing(ctx: Context) -> list[mt.Resource]:
    """Each recorded run's state and log, newest first."""
    found: list[mt.Resource] = []
    for run_id in recorded_runs(ctx)[:LISTED_RUNS]:
        found.append(
            mt.Resource(
                name=f"run {run_id}",
                uri=run_uri(run_id),
                mime_type="application/json",
                description="a recorded run: its state and result",
            )
        )
        found.append(
            mt.Resource(
                name=f"run {run_id} log",
                uri=log_uri(run_id),
                mime_type="text/plain",
                description="the run's whole output so far, page by page",
            )
        )
    return found


def _text_or_blob(uri: str, data: bytes, meta: dict[str, Any] | None = None) -> Any:
    try:
        return mt.TextResourceContents(
            uri=uri, mime_type="text/plain", text=data.decode("utf-8"), _meta=meta
        )
    except UnicodeDecodeError:
        return mt.BlobResourceContents(
            uri=uri,
            mime_type="application/octet-stream",
            blob=base64.b64encode(data).decode("ascii"),
            _meta=meta,
        )


def _page_end(data: bytes, start: int) -> int:
    """Where a page from ``start`` ends: LOG_PAGE bytes on, moved back to the start
    of a UTF-8 character it would split (a page of text stays text)."""
    end = min(len(data), start + LOG_PAGE)
    back = end
    while back < len(data) and back > start and end - back < 3 and data[back] & 0xC0 == 0x80:
        back -= 1
    return back if back > start else end


def _read_run(ctx: Context, uri: str, run_id: str) -> mt.ReadResourceResult:
    summary, _ = run_log(ctx, run_id)
    summary["log"] = log_uri(run_id)
    return mt.ReadResourceResult(
        contents=[
            mt.TextResourceContents(uri=uri, mime_type="application/json", text=json.dumps(summary))
        ]
    )


def _page(uri: str, base: str, data: bytes, offset: int, **meta: Any) -> mt.ReadResourceResult:
    """The page of ``data`` from ``offset`` (``base``: its URI without the offset)."""
    if offset > len(data):
        raise errors.InvalidArgument(
            f"offset {offset} is past the {len(data)} bytes of {base}",
            uri=uri,
            output_bytes=len(data),
        )
    end = _page_end(data, offset)
    more = end < len(data)
    paging = {
        "offset": offset,
        "next_offset": end if more else None,
        "next": _paged(base, end) if more else None,
        "output_bytes": len(data),
        **meta,
    }
    return mt.ReadResourceResult(contents=[_text_or_blob(uri, data[offset:end], paging)])


def _read_log(ctx: Context, uri: str, run_id: str, offset: int) -> mt.ReadResourceResult:
    summary, data = run_log(ctx, run_id)
    return _page(uri, log_uri(run_id), data, offset, status=summary["status"])


def read(ctx: Context, uri: str) -> mt.ReadResourceResult:
    screen = _SCREEN_URI.fullmatch(uri.replace("%25", "%"))
    if screen is not None:
        from sane.ops.screen import read_screen

        text = read_screen(ctx, f"%{screen.group(1)}")["text"]
        return mt.ReadResourceResult(
            contents=[mt.TextResourceContents(uri=uri, mime_type="text/plain", text=text)]
        )
    run = _RUN_URI.fullmatch(uri)
    if run is not None:
        return _read_run(ctx, uri, run.group(1))
    log = _LOG_URI.fullmatch(uri)
    if log is not None:
        return _read_log(ctx, uri, log.group(1), int(log.group(2) or 0))
    match = _OUTPUT_URI.fullmatch(uri)
    if match is None:
        raise errors.InvalidArgument(
            f"no resource {uri!r}: sane serves "
            + ", ".join(template.uri_template for template in TEMPLATES),
            uri=uri,
        )
    run_id, name, offset = match.groups()
    try:
        data = (runs_dir(ctx) / run_id / name).read_bytes()
    except FileNotFoundError:
        raise errors.RunNotFound(
            f"no saved output {uri} (runs are forgotten after a week)", uri=uri
        ) from None
    return _page(uri, run_uri(run_id) + "/" + name, data, int(offset or 0))
