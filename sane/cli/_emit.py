"""The JSON contract on stdout, without click: every document and exit status the CLI
produces goes through here, for the click commands and the fast front door alike.

A person at a terminal (stdout a tty, no ``--json``/``--jq``) gets the same document
drawn by ``sane.cli.human`` instead; a pipe always gets the JSON."""

from __future__ import annotations

import contextlib
import json
import signal
import sys
import threading
from collections.abc import Callable, Mapping
from typing import Any, NoReturn

from sane import errors
from sane.envelope import error_document, ok_document


def _write(doc: Mapping[str, Any]) -> None:
    data = json.dumps(doc, ensure_ascii=False) + "\n"
    sys.stdout.buffer.write(data.encode("utf-8"))
    sys.stdout.flush()


# `--jq EXPR`, taken off the command line by take_jq for every command (as `gh --jq`).
_jq_filter: str | None = None
# `--json`: the JSON document even on a terminal (taken off by take_jq too).
_json_asked = False
# `--quiet`: no progress on stderr (taken off by take_jq too).
_quiet = False
# stdout carries another protocol (`sane mcp` over stdio: JSON-RPC): errors go to
# stderr, and to the protocol's own refusal (`_protocol_answer`).
_protocol_prog: str | None = None
_protocol_answer: Callable[[str, Mapping[str, Any]], None] | None = None


def stdout_is_protocol(
    prog: str, answer: Callable[[str, Mapping[str, Any]], None] | None = None
) -> None:
    """From now on stdout belongs to a protocol (``sane mcp``'s JSON-RPC over stdio):
    an error is one line on stderr, ``PROG: CODE: MESSAGE``, then handed to ``answer``
    (the line and the error document) to say in the protocol; never a document on
    stdout. Why: a client reads stdout as protocol, so a document there before the
    handshake only showed the user "Connection closed"."""
    global _protocol_prog, _protocol_answer
    _protocol_prog, _protocol_answer = prog, answer


def _say_on_stderr(doc: Mapping[str, Any]) -> str:
    error = doc["error"]
    line = f"{_protocol_prog}: {error['code']}: {error['message']}".replace("\n", " ")
    sys.stderr.write(line + "\n")
    sys.stderr.flush()
    return line


def for_person() -> bool:
    """Whether the output is read by a person: stdout is a terminal and neither
    ``--json``, ``--jq`` nor ``SANE_OUTPUT=json`` (a program driving sane through a
    terminal: a tmux pane, ``script``) asked for the document."""
    import os

    if _json_asked or _jq_filter is not None or os.environ.get("SANE_OUTPUT") == "json":
        return False
    try:
        return sys.stdout.isatty()
    except ValueError:  # stdout closed
        return False


def progress_on_stderr() -> bool:
    """Whether a fleet command draws its progress on stderr: stderr is a terminal (a
    person watches), stdout is not already showing them a live view (``for_person``),
    and neither ``--quiet`` nor ``SANE_OUTPUT=json`` (a program reading the terminal)
    said no. The document on stdout is the same either way."""
    import os

    if _quiet or os.environ.get("SANE_OUTPUT") == "json" or for_person():
        return False
    try:
        return sys.stderr.isatty()
    except ValueError:  # stderr closed
        return False


def _write_filtered(doc: Mapping[str, Any], expression: str) -> None:
    """Each jq result on its own line: strings raw, everything else as JSON."""
    import jq

    try:
        results = jq.compile(expression).input_value(doc).all()
    except ValueError as exc:
        emit_error(errors.InvalidArgument(f"--jq: {exc}", expression=expression))
    lines = [r if isinstance(r, str) else json.dumps(r, ensure_ascii=False) for r in results]
    sys.stdout.buffer.write("".join(line + "\n" for line in lines).encode("utf-8"))
    sys.stdout.flush()


def _said(status: int) -> NoReturn:
    """The document is out: exit with the status that goes with it. A Ctrl-C or
    SIGTERM from here on is ignored, as it can only contradict what the reader already
    has: raised while the command's contexts close, it printed a second document,
    ``cancelled`` (exit 130); once Python had put the default handlers back to
    finalise, the process died of the signal (status -2 under ``ok: true``, sweep17)."""
    with contextlib.suppress(ValueError):  # not the main thread: nothing to stop
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    sys.exit(status)


def emit(result: Mapping[str, Any], status: int = 0) -> NoReturn:
    doc = ok_document(result)
    if _jq_filter is not None:
        _write_filtered(doc, _jq_filter)
    elif for_person():
        from sane.cli import human

        human.show(doc)
    else:
        _write(doc)
    _said(status)


def emit_value(value: Any) -> NoReturn:
    """A document that is data for another program as it is (``sane schema --tools``:
    the definitions list, byte for byte the checked-in file), not a result envelope;
    ``--jq`` applies to it."""
    if _jq_filter is not None:
        _write_filtered(value, _jq_filter)
    else:
        sys.stdout.buffer.write(
            (json.dumps(value, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
        )
        sys.stdout.flush()
    _said(0)


def emit_error(err: errors.SaneError, extra: Mapping[str, Any] | None = None) -> NoReturn:
    _write_error(error_document(err, extra), err.exit_status)
    _said(err.exit_status)


def _write_error(doc: Mapping[str, Any], status: int) -> None:
    if _protocol_prog is not None:
        line = _say_on_stderr(doc)
        if _protocol_answer is not None:
            _protocol_answer(line, doc)
    elif for_person():
        from sane.cli import human

        human.show_error(doc, status)
    else:
        _write(doc)


def emit_document(doc: Mapping[str, Any], status: int) -> NoReturn:
    """A whole document built by the library (``sane.tools.call``): errors as they are,
    success through ``--jq`` like every other command."""
    if not doc["ok"]:
        _write_error(doc, status)
        _said(status)
    emit({k: v for k, v in doc.items() if k not in ("ok", "schema_version")}, status)


def take_jq(args: list[str]) -> list[str]:
    """Remove ``--jq EXPR`` / ``--jq=EXPR``, ``--json`` and ``--quiet`` (before any
    ``--``) and remember them; a bad expression fails here, before anything runs."""
    global _jq_filter, _json_asked, _quiet
    rest: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            rest.extend(args[i:])
            break
        if arg == "--jq":
            if i + 1 >= len(args):
                raise errors.UsageError("--jq needs an expression")
            _jq_filter = args[i + 1]
            i += 2
            continue
        if arg == "--json":
            _json_asked = True
        elif arg == "--quiet":
            _quiet = True
        elif arg.startswith("--jq="):
            _jq_filter = arg[5:]
        else:
            rest.append(arg)
        i += 1
    if _jq_filter is not None:
        _check_jq(_jq_filter)
    return rest


def _check_jq(expression: str) -> None:
    import jq

    try:
        jq.compile(expression)
    except ValueError as exc:
        raise errors.InvalidArgument(f"--jq: {exc}", expression=expression) from None


def _reader_went_away() -> NoReturn:
    """Whoever read stdout closed it (``sane ... | head -1``): nothing more can be
    said there. Exit 1 quietly, as click does, with stdout pointed at /dev/null so
    the interpreter's final flush cannot fail again."""
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    sys.exit(1)


# -- Ctrl-C ---------------------------------------------------------------------------
# A command that follows a run arms a soft Ctrl-C (`stop_on_ctrl_c`): the first SIGINT
# only sets an event, the run's follow loop hands the run over at once (as at a
# timeout: resumable, its pane still busy) and the command reports it as `cancelled`.
# A second Ctrl-C lets that hand-over finish. A third, and one anywhere else, raises
# KeyboardInterrupt as usual, and `guarded` reports `cancelled` with whatever ids the
# command noted (`note`); one raised in a run's follow loop hands that run over first
# (`errors.HandedOver`).
_STOP = threading.Event()
_soft = False
_noted: dict[str, Any] = {}


def stop_on_ctrl_c() -> threading.Event:
    """The event the first Ctrl-C sets instead of raising KeyboardInterrupt."""
    global _soft
    _soft = True
    return _STOP


def note(**ids: Any) -> None:
    """Ids a Ctrl-C report should carry (a deploy's id, once it has one)."""
    _noted.update(ids)


_presses = 0
_by = "Ctrl-C"


def interrupted_by() -> str:
    """What stopped the command, for its ``cancelled`` message: Ctrl-C or SIGTERM."""
    return _by


def _on_sigint(signum: int, frame: object) -> None:
    """The first Ctrl-C of a soft stop sets ``_STOP``; the second is ignored, since the
    runs are being handed over (one tmux line and a record each; a fleet run's worker
    threads would die mid-hand-over, their flags then stale under running commands);
    a third stops at once, as does any Ctrl-C without a soft stop.

    SIGTERM (a supervisor, ``timeout``, ``kill``) is answered the same way: Python's
    default ended the process on the spot, with no document, runs not handed over and
    its tmux control clients left behind (see ``control.end_every_client``)."""
    global _presses, _by
    if signum == signal.SIGTERM:
        _by = "SIGTERM"
    _presses += 1
    if _soft and _presses <= 2:
        _STOP.set()
        return
    raise KeyboardInterrupt


def emit_cancelled(
    message: str, result: Mapping[str, Any] | None = None, **details: Any
) -> NoReturn:
    emit_error(errors.Cancelled(message, **{**_noted, **details}), extra=result)


def _hard_cancel(exc: KeyboardInterrupt) -> NoReturn:
    """Ctrl-C outside a soft stop: the JSON document, then exit 130 at once (worker
    threads still inside tmux or ssh calls must not keep the process alive). A run the
    interrupt caught mid-follow was handed over first (``HandedOver``): named here."""
    import os

    result: Mapping[str, Any] | None = None
    if isinstance(exc, errors.HandedOver):
        result = exc.result
        note(run_id=result["run_id"], pane=result["pane"])
    ids = ", ".join(f"{k} {v}" for k, v in _noted.items() if k != "written")
    hint = ""
    if _noted.get("written"):
        hint = (
            f"; the file is already on {', '.join(_noted['written'])} (a new `sane fleet "
            "put` skips them: same sha256)"
        )
    if result is not None and result["status"] in ("running", "waiting_input"):
        hint = (
            f"; the run goes on: follow it with `sane run wait {result['run_id']}` or "
            f"stop it with `sane run interrupt {result['run_id']}`"
        )
    if "deploy_id" in _noted:
        hint = (
            f"; see `sane deploy status {_noted['deploy_id']}`, then `sane deploy "
            "resume` or `sane deploy rollback`"
        )
    doc = error_document(
        errors.Cancelled(f"interrupted by {_by}{' (' + ids + ')' if ids else ''}{hint}", **_noted),
        extra=result,
    )
    with contextlib.suppress(BrokenPipeError):
        if _protocol_prog is not None:
            _say_on_stderr(doc)
        else:
            _write(doc)
    control = sys.modules.get("sane.tmux.control")  # os._exit skips its atexit hook
    if control is not None:
        control.end_every_client()
    os._exit(errors.EXIT_CANCELLED)


def guarded(body: Callable[[], object]) -> NoReturn:
    """Run ``body`` so that every outcome is one JSON document: sane's errors with their
    code, a Ctrl-C as ``cancelled`` (exit 130), a bug as ``internal_error``; never a
    traceback. A reader gone away is a quiet exit 1 whether a result or an error was
    being written."""
    with contextlib.suppress(ValueError):  # not the main thread: Python's own handler
        signal.signal(signal.SIGINT, _on_sigint)
        signal.signal(signal.SIGTERM, _on_sigint)
    start = sys.modules.get("sane.cli.start")  # a console script's first module
    try:
        try:
            if start is not None and start.pressed_early():
                raise errors.Cancelled(
                    "interrupted by Ctrl-C before the command started: nothing was done"
                )
            body()
        except errors.SaneError as err:
            emit_error(err)
        except KeyboardInterrupt as exc:
            _hard_cancel(exc)
        except (SystemExit, BrokenPipeError):
            raise
        except BaseException as exc:  # a bug: still JSON, still no traceback
            emit_error(errors.InternalError(f"internal error: {type(exc).__name__}: {exc}"))
    except BrokenPipeError:
        _reader_went_away()
    sys.exit(0)
