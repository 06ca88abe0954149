"""Record a real agent session with ``sane mcp`` and real CLI calls, as Markdown.

The transcripts in docs/agents.md and the examples in the commands' ``--help`` come
from this script's output, so they are what sane really printed. It needs root and
``/usr/sbin/sshd`` (two throw-away sshd servers on loopback, like the test fleet), a
private tmux server and a temporary $SANE_HOME; everything is removed at the end.

    .venv/bin/python examples/agent_transcript.py > /tmp/transcript.md
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import anyio
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

from sane.testing.fleet import Fleet

SOCKET = f"sane-transcript-{os.getpid()}"


def show(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def sh(env: dict[str, str], *argv: str, stdin: str | None = None) -> str:
    """Run a sane CLI command; return a console transcript of it."""
    proc = subprocess.run(
        [sys.executable, "-m", "sane.cli.main", *argv],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
    )
    shown = " ".join(
        a
        if a.replace("-", "")
        .replace("_", "")
        .replace(".", "")
        .replace("/", "")
        .replace(",", "")
        .isalnum()
        else f"'{a}'"
        for a in argv
    )
    return f"$ sane {shown}   # exit {proc.returncode}\n{proc.stdout}"


async def mcp_part(env: dict[str, str], fleet: Fleet, pane: str, tmp: Path) -> list[str]:
    out: list[str] = []
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "sane.cli.main", "mcp"],
        env={k: env[k] for k in ("SANE_TMUX_SOCKET", "SANE_HOME")},
    )
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        init = await session.initialize()
        out.append(f"initialize -> server {init.server_info.name} {init.server_info.version}")
        listed = await session.list_tools()
        out.append(f"tools/list -> {show([t.name for t in listed.tools])}")

        async def call(name: str, /, **arguments: Any) -> dict[str, Any]:
            result = await session.call_tool(name, arguments)
            doc: dict[str, Any] = result.structured_content
            out.append(f"\n→ {name} {show(arguments)}\n← isError={result.is_error} {show(doc)}")
            return doc

        await call("run_command", command="cd /tmp && printf 'a\\nb'; (exit 3)", pane=pane)
        await call("run_command", command="pwd; echo 'héllo' | wc -c", pane=pane)
        first = await call(
            "run_command",
            command="for i in 1 2 3; do echo tick $i; sleep 1; done",
            pane=pane,
            timeout=1.5,
        )
        await call("run_wait", run_id=first["run_id"], timeout=30)
        slow = await call("run_command", command="sleep 600", pane=pane, timeout=0.5)
        await call("run_interrupt", run_id=slow["run_id"])
        await call("run_command", command="true", pane="%999")
        await call("run_command", command="echo oops >&2; false", pane=pane, check=True)
        await call("run_command", command="true", timeot=5)
        await call(
            "create_file",
            path="/tmp/sane-transcript/app.conf",
            content="port = 8080\n",
            mode="0600",
            parents=True,
            pane=pane,
        )
        known = {"UserKnownHostsFile": str(fleet.known_hosts)}
        for s in fleet.servers:
            await call(
                "server_add",
                name=s.name,
                host=s.host,
                port=s.port,
                user="root",
                identity=str(fleet.client_key),
                ssh_options=known,
                tags=["web"],
            )
        await call("server_test", name="s1")
        await call("fleet_run", command="echo $FLEET_HOST; test $FLEET_HOST = s1", tag="web")
        await call("server_list")
        await call("health", query=".version")
        sh(
            env,
            "health",
            "set",
            "--server",
            "s1",
            "--status",
            "healthy",
            "--field",
            "version=1.4.2",
        )
        sh(env, "health", "set", "--server", "s2", "--status", "degraded")
        await call("health", query=".version")
        await call("health_wait", until='.status == "healthy"', timeout=1, interval=0.5)
        await call("health_wait", until='.status == "healthy"', servers=["s1"], timeout=10)
        plan = tmp / "plan.json"
        plan.write_text(
            json.dumps(
                {
                    "name": "hello",
                    "env": {"VERSION": "2"},
                    "steps": [
                        {
                            "name": "install",
                            "run": "echo $VERSION > version",
                            "undo": "rm -f version",
                        },
                        {
                            "name": "check",
                            "run": 'test "$FLEET_HOST" != s2 || { echo "s2: disk full" >&2; '
                            "exit 3; }",
                            "undo": "true",
                        },
                    ],
                }
            )
        )
        report = await call("deploy", plan=str(plan), servers=["s1", "s2"], wait=True)
        await call("deploy_status", deploy_id=report["deploy_id"])
    return out


def cli_part(env: dict[str, str], fleet: Fleet, tmp: Path) -> list[str]:
    out = []
    out.append(sh(env, "server", "show", "s1"))
    out.append(sh(env, "server", "list", "--tag", "web"))
    out.append(sh(env, "server", "test", "s2"))
    conf = tmp / "ssh_config"
    conf.write_text("Host db1\n  HostName 10.0.0.21\n  User deploy\n  Port 2222\n")
    out.append(sh(env, "server", "import", "--format", "ssh-config", str(conf)))
    out.append(sh(env, "server", "remove", "db1"))
    local = tmp / "app.conf"
    local.write_text("port = 8080\n")
    out.append(sh(env, "fleet", "put", str(local), "/tmp/app.conf", "--all"))
    out.append(sh(env, "fleet", "put", str(local), "/tmp/app.conf", "--all"))
    out.append(
        sh(
            env,
            "fleet",
            "detect",
            "--servers",
            "s1",
            "--jq",
            ".results[0] | {server, ok, os, distro, shell}",
        )
    )
    out.append(
        sh(
            env,
            "health",
            "set",
            "--server",
            "s2",
            "--status",
            "healthy",
            "--field",
            "version=1.4.2",
        )
    )
    out.append(sh(env, "health", "wait", "--until", '.version == "1.4.2"', "--timeout", "10"))
    out.append(sh(env, "watch", "--once", "--no-health"))
    out.append(sh(env, "down", "s2"))
    slow = json.loads(
        subprocess.run(
            [sys.executable, "-m", "sane.cli.run_command", "--timeout", "0.5", "sleep 600"],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        ).stdout
    )
    out.append(f"$ sane-run-command --timeout 0.5 'sleep 600'   # -> run_id {slow['run_id']}")
    out.append(sh(env, "run", "interrupt", slow["run_id"]))
    out.append(sh(env, "schema", "run-command", "--jq", ".input.required"))
    return out


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="sane-transcript-"))
    env = {**os.environ, "SANE_TMUX_SOCKET": SOCKET, "SANE_HOME": str(tmp / "home")}
    tmux = ["tmux", "-L", SOCKET, "-f", "/dev/null"]
    subprocess.run(
        [
            *tmux,
            "new-session",
            "-d",
            "-s",
            "work",
            "-x",
            "200",
            "-y",
            "50",
            "env PS1='$ ' bash --norc --noprofile",
        ],
        check=True,
    )
    pane = subprocess.run(
        [*tmux, "display", "-p", "-t", "work", "#{pane_id}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    try:
        with Fleet(2) as fleet:
            mcp_lines = anyio.run(mcp_part, env, fleet, pane, tmp)
            cli_lines = cli_part(env, fleet, tmp)
    finally:
        subprocess.run([*tmux, "kill-server"], check=False)
        shutil.rmtree(tmp, ignore_errors=True)
    sys.stdout.write("## MCP session\n\n```text\n" + "\n".join(mcp_lines) + "\n```\n\n")
    sys.stdout.write("## CLI\n\n```console\n" + "\n".join(cli_lines) + "```\n")


if __name__ == "__main__":
    main()
