"""The JSON contract on stdout, and the only place that turns errors into exit codes."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping
from typing import Any, NoReturn

import click

from sane import errors
from sane.models import SCHEMA_VERSION


def _write(doc: Mapping[str, Any]) -> None:
    data = json.dumps(doc, ensure_ascii=False) + "\n"
    sys.stdout.buffer.write(data.encode("utf-8"))
    sys.stdout.flush()


def emit(result: Mapping[str, Any], status: int = 0) -> NoReturn:
    _write({"ok": True, "schema_version": SCHEMA_VERSION, **result})
    sys.exit(status)


def emit_error(err: errors.SaneError, extra: Mapping[str, Any] | None = None) -> NoReturn:
    doc: dict[str, Any] = {"ok": False, "schema_version": SCHEMA_VERSION, "error": err.to_dict()}
    if extra:
        doc.update(extra)
    _write(doc)
    sys.exit(err.exit_status)


def run_cli(command: click.Command, args: list[str] | None = None) -> NoReturn:
    """Invoke a click command so that every outcome is one JSON document."""
    try:
        command.main(args=args, prog_name=None, standalone_mode=False)
    except errors.SaneError as err:
        emit_error(err)
    except click.exceptions.NoArgsIsHelpError as exc:  # pragma: no cover - click >= 8.2
        click.echo(exc.ctx.get_help() if exc.ctx else str(exc), err=True)
        emit_error(errors.UsageError(str(exc.format_message())))
    except click.UsageError as exc:
        emit_error(errors.UsageError(exc.format_message()))
    except click.ClickException as exc:
        emit_error(errors.UsageError(exc.format_message()))
    except click.Abort:
        emit_error(errors.UsageError("aborted"))
    except KeyboardInterrupt:
        emit_error(errors.UsageError("interrupted by the user"))
    except SystemExit:
        raise
    except BaseException as exc:  # a bug: still JSON, still no traceback
        emit_error(errors.InternalError(f"internal error: {type(exc).__name__}: {exc}"))
    sys.exit(0)


def entry(command: click.Command) -> Callable[[], NoReturn]:
    def main() -> NoReturn:
        run_cli(command)

    return main


socket_option = click.option(
    "--socket",
    "socket",
    envvar="SANE_TMUX_SOCKET",
    default=None,
    metavar="NAME|PATH",
    help="tmux server socket, like tmux -L NAME (or -S PATH); default: your default server.",
)
