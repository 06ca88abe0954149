"""``sane-run-command`` as a click command (``sane.cli.main.run_command_main``, the
installed entry point, parses the usual lines without click and comes here for the
rest)."""

from __future__ import annotations

from sane.cli.build import command

__all__ = ["main", "run_command_cli"]

EPILOG = """\b
Example:
  $ sane-run-command --pane %3 'printf "a\\nb"; exit 3'
  {"ok": true, "schema_version": 1, "run_id": "r6f0c2a91d4e7", "pane": "%3",
   "command": "printf \\"a\\\\nb\\"; exit 3", "status": "completed", "exit_code": 3,
   "output": "a\\nb", "output_base64": null, "output_start": 0, "output_bytes": 3,
   "truncated": false, "full_output_path": null, "shell_exited": true,
   "duration_ms": 4.2}

\b
Exit status: 0 completed (1 with --check and a non-zero exit code), 4 running,
waiting_input or interrupted, 5 lost, other codes for errors (see docs/errors.md).
"""

# Options, defaults and help: the command table (sane.tools, row run_command).
run_command_cli = command("run-command", EPILOG)


def main() -> None:
    """The front door (an entry point installed before it moved there still works)."""
    from sane.cli.main import run_command_main

    run_command_main()


if __name__ == "__main__":
    main()
