// The TypeScript MCP SDK's own client (what Claude Code and the MCP Inspector embed),
// held warm for bench/bench_mcp.py, which interleaves its calls with the raw tmux round
// trip it times itself.
//
// Usage: node ts_mcp_client.mjs '<server argv as JSON>'          (StdioClientTransport)
//        node ts_mcp_client.mjs '{"url": URL, "token": TOKEN}'   (StreamableHTTPClientTransport)
// The SDK comes from tests/ts-client/node_modules (bin/sane-bootstrap runs npm ci there).
// After connecting and listing the tools (the client caches each tool's output-schema
// validator from that list, as an agent's host does), it prints {"ready": true, "pid":
// PID of a stdio server or null}, then answers one JSON line per command line on stdin:
//   {"op": "ping"}                        -> client.ping()
//   {"op": "call", "arguments": {...}}    -> client.callTool run_command, the result
//                                            checked: completed with exit code 0
// with {"ms": wall, "cpu_ms": this process's CPU (user + system), "user_ms", "sys_ms"} of
// that one request,
// both taken inside node around the SDK call alone (the pipe to the bench is not in
// them), or {"error": "..."}. End of stdin closes the client.
import { createInterface } from "node:readline";
import { performance } from "node:perf_hooks";

const sdk = new URL("../tests/ts-client/node_modules/@modelcontextprotocol/sdk/dist/esm/", import.meta.url);
const { Client } = await import(new URL("client/index.js", sdk).href);
const { StdioClientTransport } = await import(new URL("client/stdio.js", sdk).href);
const { StreamableHTTPClientTransport } = await import(new URL("client/streamableHttp.js", sdk).href);

const target = JSON.parse(process.argv[2]);
let transport;
if (Array.isArray(target)) {
  const [command, ...args] = target;
  transport = new StdioClientTransport({ command, args, env: process.env, stderr: "inherit" });
} else {
  const headers = { Authorization: `Bearer ${target.token}` };
  transport = new StreamableHTTPClientTransport(new URL(target.url), { requestInit: { headers } });
}
const client = new Client({ name: "sane-bench-ts-client", version: "1.0.0" });
await client.connect(transport);
await client.listTools();
const pid = Array.isArray(target) ? transport.pid ?? null : null;
process.stdout.write(JSON.stringify({ ready: true, pid }) + "\n");

async function step(command) {
  if (command.op === "ping") {
    await client.ping();
    return;
  }
  const result = await client.callTool({ name: "run_command", arguments: command.arguments });
  const doc = result.structuredContent ?? {};
  if (result.isError || doc.status !== "completed" || doc.exit_code !== 0) {
    throw new Error(`\`true\` did not complete: ${JSON.stringify(result)}`);
  }
}

for await (const line of createInterface({ input: process.stdin })) {
  const command = JSON.parse(line);
  let answer;
  try {
    const cpu = process.cpuUsage();
    const start = performance.now();
    await step(command);
    const ms = performance.now() - start;
    const used = process.cpuUsage(cpu);
    answer = { ms, cpu_ms: (used.user + used.system) / 1000, user_ms: used.user / 1000, sys_ms: used.system / 1000 };
  } catch (err) {
    answer = { error: String(err) };
  }
  process.stdout.write(JSON.stringify(answer) + "\n");
}
await client.close();
