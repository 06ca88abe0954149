"""sane read-screen / send-keys / wait-for-text: the screen tools on the command line,
built from the same table rows as the MCP tools (same arguments, same documents)."""

from __future__ import annotations

from sane.schema import validate
from sane.testing.pytest_plugin import TmuxTestServer

from .conftest import cli


def test_type_wait_and_read_a_pane_from_the_cli(
    cli_env: dict[str, str], tmux_server: TmuxTestServer
) -> None:
    pane = tmux_server.new_pane("dash")
    status, sent, _ = cli(
        [
            "sane.cli.main",
            "send-keys",
            "--pane",
            pane,
            "--text",
            "echo screen-$((6 * 7))",
            "--enter",
        ],
        cli_env,
    )
    assert status == 0 and sent["sent_text_chars"] == len("echo screen-$((6 * 7))")
    validate("send-keys", sent)
    status, found, _ = cli(
        ["sane.cli.main", "wait-for-text", "^screen-42$", "--pane", pane, "--timeout", "20"],
        cli_env,
    )
    assert (status, found["matched"], found["match"]) == (0, True, "screen-42")
    validate("wait-for-text", found)
    status, screen, _ = cli(["sane.cli.main", "read-screen", "-t", pane, "--lines", "50"], cli_env)
    assert status == 0 and "screen-42\n" in screen["text"]
    validate("read-screen", screen)
    status, missed, _ = cli(
        ["sane.cli.main", "wait-for-text", "^never$", "--pane", pane, "--timeout", "0.2"], cli_env
    )
    assert (status, missed["matched"]) == (4, False)
    status, refused, _ = cli(
        ["sane.cli.main", "send-keys", "--pane", pane, "--key", "not a key"], cli_env
    )
    assert (status, refused["error"]["code"]) == (2, "invalid_argument")
