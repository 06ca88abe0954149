"""``sane-create-file``: write a file on the host behind a pane, byte for byte."""

from __future__ import annotations

import sys

import click

from sane.cli._output import emit, entry, socket_option
from sane.errors import InvalidArgument

EPILOG = """\b
Example:
  $ printf 'port: 8080\\n' | sane-create-file --pane %3 --mode 0600 app/config.yml
  {"ok": true, "schema_version": 1, "path": "/srv/app/config.yml", "pane": "%3",
   "bytes": 11, "sha256": "3b9c...", "mode": "0600", "action": "created",
   "backup_path": null, "duration_ms": 41.7}

\b
Content comes from --content, --from FILE, or stdin. Relative paths resolve against
the pane's current directory. Errors: parent_missing (3), file_exists,
permission_denied, is_directory, checksum_mismatch, transfer_failed (1).
"""


def _mode(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value, 8)
    except ValueError:
        raise InvalidArgument(f"--mode takes octal permission bits like 0644, not {value!r}",
                              mode=value) from None


@click.command(epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--server", "-s", "server", default=None, metavar="NAME",
              help="Run through this registered server's ssh pane (connects on demand).")
@click.option("--pane", "-t", default=None, metavar="TARGET",
              help="tmux target pane; default: sane's local pane.")
@click.option("--content", default=None, help="The file's content, as text (UTF-8).")
@click.option("--from", "from_file", type=click.Path(dir_okay=False, allow_dash=False),
              default=None, help="Copy this local file's bytes.")
@click.option("--mode", default=None, metavar="OCTAL",
              help="Permission bits (default: the replaced file's, or 0644).")
@click.option("--parents", is_flag=True, help="Create missing parent directories.")
@click.option("--no-overwrite", is_flag=True, help="Fail with file_exists if PATH exists.")
@click.option("--backup", is_flag=True, help="Keep a copy of a replaced file beside it.")
@click.option("--sha256", "expected", default=None, metavar="HEX",
              help="Refuse to install unless the content has this checksum.")
@click.option("--timeout", type=click.FloatRange(min=0), default=600.0, show_default=True)
@socket_option
@click.argument("path")
def create_file_cli(
    server: str | None, pane: str | None, content: str | None, from_file: str | None,
    mode: str | None,
    parents: bool, no_overwrite: bool, backup: bool, expected: str | None, timeout: float,
    socket: str | None, path: str,
) -> None:
    """Create PATH on the pane's host with exactly the given bytes (atomically)."""
    if content is not None and from_file is not None:
        raise InvalidArgument("give --content or --from, not both")
    if content is not None:
        data = content.encode("utf-8")
    elif from_file is not None:
        try:
            with open(from_file, "rb") as fh:
                data = fh.read()
        except OSError as exc:
            raise InvalidArgument(f"cannot read {from_file}: {exc.strerror}",
                                  file=from_file) from exc
    else:
        data = sys.stdin.buffer.read()
    from sane.ops.context import Context
    from sane.ops.create_file import create_file
    from sane.tmux.command import TmuxServer

    with Context(TmuxServer.from_env(socket)) as ctx:
        side_channel = None
        if server is not None:
            from sane.fleet.panes import file_channel, resolve_target

            pane = resolve_target(ctx, pane, server)
            side_channel = file_channel(ctx, server)
        result = create_file(ctx, path, data, pane=pane, mode=_mode(mode), parents=parents,
                             no_overwrite=no_overwrite, backup=backup,
                             expected_sha256=expected.lower() if expected else None,
                             timeout=timeout, side_channel=side_channel)
    emit(dict(result))


main = entry(create_file_cli)

if __name__ == "__main__":
    main()
