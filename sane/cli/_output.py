"""Click's side of the JSON contract: usage errors become JSON documents too.

Writing documents lives in ``sane.cli._emit`` (no click), re-exported here for the
click commands."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import NoReturn

import click

from sane import errors
from sane.cli._emit import emit, emit_document, emit_error, guarded, take_jq
from sane.cli.spec import SOCKET

__all__ = ["emit", "emit_document", "emit_error", "entry", "run_cli", "socket_option"]


def run_cli(command: click.Command, args: list[str] | None = None) -> NoReturn:
    """Invoke a click command so that every outcome is one JSON document. ``args``:
    a command line the front door has already taken ``--jq`` from (default: this
    process's, taken here)."""

    def body() -> None:
        try:
            command.main(
                args=take_jq(sys.argv[1:]) if args is None else args,
                prog_name=None,
                standalone_mode=False,
            )
        except click.exceptions.NoArgsIsHelpError as exc:  # click >= 8.2
            # bare `sane` (or `sane server`): a person exploring; the help, as --help
            click.echo(exc.ctx.get_help() if exc.ctx else exc.format_message())
            sys.exit(0)
        except click.UsageError as exc:
            raise errors.UsageError(exc.format_message()) from None
        except click.ClickException as exc:
            raise errors.UsageError(exc.format_message()) from None
        except click.Abort as exc:
            cause = exc.__cause__ or exc.__context__
            if isinstance(cause, KeyboardInterrupt):  # Ctrl-C: `cancelled`, exit 130
                raise cause from None  # as raised: a HandedOver names its run
            raise errors.UsageError("aborted") from None

    guarded(body)


def entry(command: click.Command) -> Callable[[], NoReturn]:
    def main() -> NoReturn:
        run_cli(command)

    return main


socket_option = click.option(
    *SOCKET["opts"],
    "socket",
    envvar=SOCKET["envvar"],
    default=SOCKET["default"],
    metavar=SOCKET["metavar"],
    help=SOCKET["help"],
)
