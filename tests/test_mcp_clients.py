"""``sane mcp`` through the clients agents really use: the TypeScript SDK (what Claude
Code, Cursor, the MCP Inspector and most hosts embed) and the Python SDK, calling every
tool on a success path and on its error paths.

Both SDKs check ``structuredContent`` against the tool's declared output schema; the
TypeScript one does it on error results too and throws the whole result away when it
does not match, so an agent would never see ``error.code``. Here every result must come
through each SDK's own validation intact.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.shared.exceptions import MCPError

from sane import tools
from sane.schema import validate
from sane.testing.pytest_plugin import TmuxTestServer

TS_CLIENT = Path(__file__).resolve().parent / "ts-client"
SERVER_ARGV = [sys.executable, "-m", "sane.cli.main", "mcp"]
NO_RUN = "r000000000000"


def scenario(pane: str, fleet: Any, plan: Path, out: Path) -> list[tuple[dict[str, Any], str]]:
    """(call, expected outcome) pairs: a document name from ``sane.schema.DOCUMENTS`` for
    a success, or ``error:<code>``. ``${N.field}`` refers to call N's result."""
    known = {"UserKnownHostsFile": str(fleet.known_hosts)}
    imports = out.with_name("import.ssh_config")
    imports.write_text("Host imported1\n  HostName 127.0.0.1\n  Port 2222\n")

    def c(tool: str, **arguments: Any) -> dict[str, Any]:
        return {"tool": tool, "arguments": arguments}

    steps: list[tuple[dict[str, Any], str]] = [
        (c("run_command", command="echo hi", pane=pane), "run-command"),  # 0
        (c("run_command", command="true", pane="%999"), "error:pane_not_found"),
        (c("run_command", command="echo x; false", pane=pane, check=True), "error:command_failed"),
        (c("run_command", command="sleep 30", pane=pane, timeout=0.1), "run-command"),  # 3
        (c("run_wait", run_id="${3.run_id}", timeout=0.1), "run-command"),
        (c("run_command", command="true", pane=pane), "error:pane_busy"),
        (c("run_interrupt", run_id="${3.run_id}"), "run-command"),
        (c("run_wait", run_id=NO_RUN), "error:run_not_found"),
        (c("run_interrupt", run_id=NO_RUN), "error:run_not_found"),
        (c("run_command", command="true", timeout=-1), "error:invalid_argument"),
        (
            c(
                "run_command",
                command="read -r x; echo got $x",
                pane=pane,
                timeout=10,
                quiet_period=0.3,
            ),
            "run-command",
        ),  # 10
        (c("run_input", run_id="${10.run_id}", text="abc"), "run-command"),
        (c("run_input", run_id=NO_RUN, text="abc"), "error:run_not_found"),
        (c("create_file", path=str(out), content="bytes\n", pane=pane), "create-file"),
        (
            c("create_file", path=str(out), content="x", content_base64="eA=="),
            "error:invalid_argument",
        ),
        (
            c("create_file", path=str(out), content="x", pane=pane, no_overwrite=True),
            "error:file_exists",
        ),
        (c("detect_platform", pane=pane), "detect-platform"),
        (c("detect_platform", pane="%999"), "error:pane_not_found"),
        (c("list_panes", all=True), "list-panes"),
        (c("list_panes", sesion="base"), "error:invalid_argument"),
        (c("read_screen", pane=pane), "read-screen"),
        (c("read_screen", pane="%999"), "error:pane_not_found"),
        (c("send_keys", pane=pane, keys=["C-l"]), "send-keys"),
        (c("send_keys", pane=pane, keys=["not a key"]), "error:invalid_argument"),
        (c("wait_for_text", pane=pane, pattern="hi", lines=50, timeout=5), "wait-for-text"),
        (c("wait_for_text", pane=pane, pattern="("), "error:invalid_argument"),
    ]
    for s in fleet.servers:
        # health.json in this test's directory: the sshd fleet is shared with other tests
        steps.append(
            (
                c(
                    "server_add",
                    name=s.name,
                    host=s.host,
                    port=s.port,
                    user="root",
                    identity=str(fleet.client_key),
                    ssh_options=known,
                    tags=["ts"],
                    health_path=str(out.with_name(f"health-{s.name}.json")),
                ),
                "server-add",
            )
        )
    names = [s.name for s in fleet.servers]
    steps += [
        (c("server_add", name=names[0], host="127.0.0.1"), "error:server_exists"),
        (c("server_list", tag="ts"), "server-list"),
        (c("server_list", tags="ts"), "error:invalid_argument"),
        (c("server_test", name=names[0]), "server-test"),
        (c("server_test", name="nope"), "error:server_not_found"),
        (c("server_show", name=names[0]), "server-show"),
        (c("server_show", name="nope"), "error:server_not_found"),
        (c("server_import", source=str(imports), format="ssh-config"), "server-import"),
        (c("server_import", source=str(imports), format="nope"), "error:invalid_argument"),
        (c("server_remove", name="imported1"), "server-remove"),
        (c("server_remove", name="nope"), "error:server_not_found"),
        (c("connect", servers=names[:1]), "connect"),
        (c("connect", servers=["nope"]), "error:server_not_found"),
        (c("server_pane", name=names[0]), "server-pane"),
        (c("server_pane", name="nope"), "error:server_not_found"),
        (c("fleet_run", command="echo $FLEET_HOST", tag="ts"), "fleet-run"),
        (c("fleet_run", command="true", servers=["nope"]), "error:server_not_found"),
        (
            c(
                "fleet_put",
                local_file=str(plan),
                remote_path=str(out.with_name("put.yaml")),
                servers=names[:1],
            ),
            "fleet-put",
        ),
        (
            c(
                "fleet_put",
                local_file=str(plan.with_name("missing.yaml")),
                remote_path="/tmp/x",
                servers=names[:1],
            ),
            "error:invalid_argument",
        ),
        (c("fleet_detect", servers=names[:1]), "fleet-detect"),
        (c("fleet_detect", servers=["nope"]), "error:server_not_found"),
        (c("health", servers=names[:2], query=".version"), "health"),
        (c("health", servers=["nope"]), "error:server_not_found"),
        (
            c(
                "health_wait",
                until='.status == "healthy"',
                servers=names[:1],
                timeout=0,
                interval=0.05,
            ),
            "health-wait",
        ),
        (c("health_wait", until=""), "error:invalid_argument"),
        (c("health_set", server=names[0], status="healthy", fields={"version": "1"}), "health-set"),
        (c("health_set", server=names[0], status="bogus"), "error:invalid_argument"),
        (c("down", servers=names[-1:]), "down"),
        (c("down", servers=names[-1]), "error:invalid_argument"),
    ]
    deployed = len(steps)
    no_deploy = "d00000000-000000-000000"
    steps += [
        (c("deploy", plan=str(plan), servers=names[:2], wait=True), "deploy"),
        (c("deploy", plan=str(plan)), "error:usage_error"),
        (
            c("deploy", plan=str(plan.with_name("missing.yaml")), servers=names[:1]),
            "error:plan_invalid",
        ),
        (c("deploy_status", deploy_id=f"${{{deployed}.deploy_id}}"), "deploy"),
        (c("deploy_status", deploy_id=no_deploy), "error:deploy_not_found"),
        (c("deploy_plan_check", plan=str(plan), servers=names), "deploy-dry-run"),
        (
            c("deploy_plan_check", plan=str(plan.with_name("missing.yaml")), all=True),
            "error:plan_invalid",
        ),
        (c("deploy_list"), "deploy-list"),
        (c("deploy_list", all=True), "error:invalid_argument"),
        (c("deploy_resume", deploy_id=f"${{{deployed}.deploy_id}}", wait=True), "deploy"),
        (c("deploy_resume", deploy_id=no_deploy), "error:deploy_not_found"),
        (c("deploy_rollback", deploy_id=f"${{{deployed}.deploy_id}}", wait=True), "deploy"),
        (c("deploy_rollback", deploy_id=no_deploy), "error:deploy_not_found"),
        (c("deploy", plan=str(plan), servers=names[:1]), "deploy"),  # returns at once
    ]
    return steps


def check_results(steps: list[tuple[dict[str, Any], str]], results: list[dict[str, Any]]) -> None:
    assert len(results) == len(steps)
    for (call, expected), got in zip(steps, results, strict=True):
        where = f"{call['tool']} {call['arguments']}"
        assert "thrown" not in got, f"{where}: the client rejected the result: {got}"
        doc = got["structured"]
        assert json.loads(got["text"]) == doc, where
        assert got["is_error"] == (not doc["ok"]), where
        if expected.startswith("error:"):
            assert doc["ok"] is False and doc["error"]["code"] == expected[6:], (where, doc)
            validate("command-failed" if expected == "error:command_failed" else "error", doc)
        else:
            assert doc["ok"] is True, (where, doc)
            validate(expected, doc)


@pytest.fixture
def calls(
    tmux_server: TmuxTestServer, ssh_fleet: Any, tmp_path: Path
) -> list[tuple[dict[str, Any], str]]:
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        json.dumps({"name": "t", "steps": [{"name": "one", "run": "true", "undo": "true"}]})
    )
    return scenario(tmux_server.new_pane("bash"), ssh_fleet, plan, tmp_path / "created")


def test_every_tool_through_the_typescript_sdk(
    cli_env: dict[str, str], calls: list[tuple[dict[str, Any], str]]
) -> None:
    node = shutil.which("node")
    assert node, "node (20+) is needed for the TypeScript MCP client test"
    assert (TS_CLIENT / "node_modules" / "@modelcontextprotocol" / "sdk").is_dir(), (
        "run bin/sane-bootstrap (npm ci in tests/ts-client)"
    )
    proc = subprocess.run(
        [node, str(TS_CLIENT / "call.mjs"), json.dumps(SERVER_ARGV)],
        input=json.dumps([call for call, _ in calls]),
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["tools"] == [t.name for t in tools.TOOLS]
    check_results(calls, out["results"])


def _resolve(value: Any, results: list[dict[str, Any]]) -> Any:
    if isinstance(value, str) and value.startswith("${") and value.endswith("}"):
        index, field = value[2:-1].split(".")
        return results[int(index)]["structured"][field]
    if isinstance(value, list):
        return [_resolve(v, results) for v in value]
    return value


def test_every_tool_through_the_python_sdk(
    cli_env: dict[str, str], calls: list[tuple[dict[str, Any], str]]
) -> None:
    params = StdioServerParameters(
        command=SERVER_ARGV[0],
        args=SERVER_ARGV[1:],
        env={k: cli_env[k] for k in ("SANE_TMUX_SOCKET", "SANE_HOME")},
    )
    results: list[dict[str, Any]] = []

    async def main() -> None:
        async with stdio_client(params) as (read, write), ClientSession(read, write) as s:
            await s.initialize()
            await s.list_tools()
            for call, _ in calls:
                arguments = {k: _resolve(v, results) for k, v in call["arguments"].items()}
                result = await s.call_tool(call["tool"], arguments)
                # the SDK skips its check on error results: make it check them too
                await s.validate_tool_result(call["tool"], result)
                assert result.content[0].type == "text"
                results.append(
                    {
                        "is_error": result.is_error,
                        "structured": result.structured_content,
                        "text": result.content[0].text,
                    }
                )

    anyio.run(main)
    check_results(calls, results)


@pytest.mark.parametrize(
    ("options", "said"),
    [
        (["--tools", "bogus"], "invalid_argument: --tools: no tool 'bogus'; the tools: "),
        (["--exclude", "run_command,nope"], "invalid_argument: --exclude: no tool 'nope'"),
        (["--bogus"], "usage_error: No such option '--bogus'"),
    ],
)
def test_an_argument_error_of_sane_mcp_reaches_the_client_not_its_stdout(
    cli_env: dict[str, str], tmp_path: Path, options: list[str], said: str
) -> None:
    """stdout is the protocol: a bad argument is one line on stderr (where hosts log
    it), and the refusal of the client's initialize (what the Inspector CLI and every
    SDK show); never the CLI's document on stdout, which a client only saw as
    "Connection closed"."""
    argv = [*SERVER_ARGV, *options]
    line = "sane mcp: " + said
    alone = subprocess.run(
        argv, stdin=subprocess.DEVNULL, env=cli_env, capture_output=True, text=True, timeout=60
    )
    assert (alone.returncode, alone.stdout) == (2, ""), alone
    assert alone.stderr.startswith(line) and alone.stderr.count("\n") == 1, alone.stderr
    if "no tool" in said:  # the valid names, the read-only set among them
        assert all(t.name in alone.stderr for t in tools.TOOLS), alone.stderr
        assert "read-only" in alone.stderr

    node = shutil.which("node")
    assert node, "node (20+) is needed for the TypeScript MCP client test"
    ts = subprocess.run(
        [node, str(TS_CLIENT / "call.mjs"), json.dumps(argv)],
        input="[]",
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    refused = json.loads(ts.stdout)
    assert refused["code"] == -32602 and line in refused["connect_error"], refused
    assert line in ts.stderr  # the server's stderr, passed through by the SDK

    log = tmp_path / "server-stderr"
    params = StdioServerParameters(command=argv[0], args=argv[1:], env=cli_env)

    refusals: list[MCPError] = []

    async def main() -> None:
        with log.open("w") as errlog:
            async with (
                stdio_client(params, errlog) as (read, write),
                ClientSession(read, write) as s,
            ):
                try:
                    await s.initialize()
                except MCPError as err:
                    refusals.append(err)

    anyio.run(main)
    [refusal] = refusals
    assert refusal.error.code == -32602 and refusal.error.message.startswith(line)
    assert refusal.error.data["error"]["code"] == said.split(":")[0]
    validate("error", refusal.error.data)
    assert log.read_text().startswith(line)


def test_sane_mcp_http_keeps_the_clis_json_error_on_stdout(cli_env: dict[str, str]) -> None:
    """With --http stdout is the CLI's (its first line the URL document): an argument
    error stays the JSON error document there."""
    proc = subprocess.run(
        [*SERVER_ARGV, "--http", "0", "--tools", "bogus"],
        stdin=subprocess.DEVNULL,
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    doc = json.loads(proc.stdout)
    assert proc.returncode == 2 and doc["error"]["code"] == "invalid_argument", proc
    assert doc["error"]["details"] == {"option": "--tools", "tool": "bogus"}
    validate("error", doc)


def test_a_truncated_results_link_reads_page_by_page_through_the_typescript_sdk(
    cli_env: dict[str, str], tmux_server: TmuxTestServer
) -> None:
    """What a host on the TypeScript SDK does with the link of a truncated result
    (run_command, and run_wait of a run left waiting for input): resources/read gives
    one model-sized page, the first the result left out; its _meta.next leads on to the
    end, and the pages are exactly the bytes the result left out and its tail."""
    from sane.mcp.resources import LOG_PAGE

    pane = tmux_server.new_pane("bash")
    full = "".join(f"{i}\n" for i in range(1, 100001))
    node = shutil.which("node")
    assert node, "node (20+) is needed for the TypeScript MCP client test"
    script = [
        {"tool": "run_command", "arguments": {"command": "seq 1 100000", "pane": pane}},
        {"read": "${0.links.0}"},
        {
            "tool": "run_command",
            "arguments": {"command": "read -r x; seq 1 100000", "pane": pane, "timeout": 1},
        },
        {"tool": "send_keys", "arguments": {"pane": pane, "text": "go", "enter": True}},
        {"tool": "run_wait", "arguments": {"run_id": "${2.run_id}", "timeout": 120}},
        {"read": "${4.links.0}"},
    ]
    proc = subprocess.run(
        [node, str(TS_CLIENT / "call.mjs"), json.dumps(SERVER_ARGV)],
        input=json.dumps(script),
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    results = json.loads(proc.stdout)["results"]
    assert results[2]["structured"]["status"] in ("running", "waiting_input"), results[2]
    for result, read in ((results[0], results[1]), (results[4], results[5])):
        doc = result["structured"]
        assert doc["status"] == "completed" and doc["truncated"], result
        echoed = full if doc["command"] == "seq 1 100000" else "go\n" + full
        head = doc["output"].index("\n[... sane: ")
        assert result["links"][0].endswith(f"/output-{doc['output_start']}?offset={head}")
        assert read["text"] == echoed[head:], read["pages"][:2]
        assert len(read["pages"]) == -(-(len(echoed) - head) // LOG_PAGE)
        assert all(page["length"] <= LOG_PAGE for page in read["pages"])
        assert read["pages"][0]["meta"]["next_offset"] == head + LOG_PAGE
