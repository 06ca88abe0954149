"""``sane-create-file``: write a file on the host behind a pane, byte for byte."""

from __future__ import annotations

from sane.cli._output import entry
from sane.cli.build import command

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


# Options, defaults and help: the command table (sane.tools, row create_file).
create_file_cli = command("create-file", EPILOG)


main = entry(create_file_cli)

if __name__ == "__main__":
    main()
