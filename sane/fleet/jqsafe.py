"""jq expressions on data from servers, contained.

An expression reaches sane from whoever calls it (``health --query``, ``health wait
--until``, MCP's read-only ``health`` tool, a plan's health gate) and runs on
documents servers wrote. Run in this process, it could read the orchestrator's
environment (``$ENV``, ``env``: cloud keys included), read local files through jq's
module system (``import "x" as $x {search: "/etc"}`` loads ``/etc/x.json`` at compile
time), and run for ever or fill memory (``[range(1e12)]``). So:

* module directives (``import``, ``include``) are refused before anything compiles;
* evaluation happens in a forked child whose environment is empty, with 1 GiB of
  address space beyond what it inherits, killed at a time limit; a jq error or the
  time limit is that document's answer (one server's data cannot fail the others).
"""

from __future__ import annotations

import json
import os
import re
import select
import signal
import time
from typing import Any, NamedTuple

from sane import errors

TIME_LIMIT = 2.0
MEMORY_LIMIT = 1 << 30
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_MODULE = re.compile(r"(?<![\w$.])(import|include)(?!\w)")


class Answer(NamedTuple):
    """One document's first result, or the jq error it raised (``error`` set)."""

    value: Any
    error: str | None


def refuse_modules(expression: str) -> str:
    """``expression`` unless it uses jq's module system (which reads local files)."""
    errors.refuse_nul("jq expression", expression)
    # String literals may hold the words; interpolations \( ... ) are code, so only
    # whole strings without them are blanked out.
    code = _STRING.sub(lambda m: '""' if "\\(" not in m.group(0) else m.group(0), expression)
    found = _MODULE.search(code)
    if found:
        raise errors.InvalidArgument(
            f"jq: `{found.group(1)}` is not allowed here (jq modules read local files)",
            expression=expression,
            reason="module",
        )
    return expression


def compile_check(expression: str, args: dict[str, str] | None = None) -> None:
    """Refuse a bad expression before any server is contacted (compiling evaluates
    nothing once modules are refused)."""
    import jq

    refuse_modules(expression)
    try:
        jq.compile(expression, args=args or {})
    except ValueError as exc:
        raise errors.InvalidArgument(f"jq: {exc}", expression=expression) from None


def evaluate(
    expression: str,
    documents: list[Any],
    args: dict[str, str] | None = None,
    time_limit: float = TIME_LIMIT,
) -> list[Answer]:
    """The first result of ``expression`` on each document, computed in a contained
    child (see the module's docstring). Past ``time_limit`` every document still
    without an answer gets the error ``time limit``."""
    refuse_modules(expression)
    if not documents:
        return []
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: no return from here
        _child(read_end, write_end, expression, documents, args or {})
    os.close(write_end)
    data = bytearray()
    deadline = time.monotonic() + time_limit
    timed_out = False
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                timed_out = True
                break
            ready, _, _ = select.select([read_end], [], [], left)
            if not ready:
                continue
            chunk = os.read(read_end, 1 << 16)
            if not chunk:
                break
            data.extend(chunk)
    finally:
        os.close(read_end)
        if timed_out:
            os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    if timed_out:
        return [Answer(None, f"time limit: no answer within {time_limit:g}s")] * len(documents)
    try:
        answers = json.loads(data)
    except ValueError:
        answers = None
    if not isinstance(answers, list) or len(answers) != len(documents):
        why = answers.get("error") if isinstance(answers, dict) else "it was stopped"
        return [Answer(None, f"jq failed: {why}")] * len(documents)
    return [Answer(value, error) for value, error in answers]


def _child(
    read_end: int, write_end: int, expression: str, documents: list[Any], args: dict[str, str]
) -> None:
    code = 0
    try:
        os.close(read_end)
        import resource

        os.environ.clear()  # $ENV and env see nothing of the orchestrator's
        # MEMORY_LIMIT more than the forked process already maps (a server process with
        # many threads maps more than a fresh one: a flat cap would starve it).
        with open("/proc/self/statm") as fh:
            mapped = int(fh.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        resource.setrlimit(resource.RLIMIT_AS, (mapped + MEMORY_LIMIT, mapped + MEMORY_LIMIT))
        import jq

        program = jq.compile(expression, args=args)
        out: Any = []
        for document in documents:
            try:
                out.append([program.input_value(document).first(), None])
            except StopIteration:
                out.append([None, None])
            except Exception as exc:  # a jq runtime error: that document's answer
                out.append([None, str(exc)[:300]])
        data = json.dumps(out).encode()
    except BaseException as exc:
        data = json.dumps({"error": f"{type(exc).__name__}: {exc}"[:300]}).encode()
        code = 1
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(write_end, view) :]
    finally:
        os._exit(code)
