// A real TypeScript MCP client (the SDK most agent hosts embed) driving `sane mcp`.
//
// Usage: node call.mjs '<server argv as JSON>' < calls.json
// calls.json: [{"tool": name, "arguments": {...}}, ...]; a string argument "${N.field}"
// is replaced by field `field` of call N's structured result (a run id, say).
// Prints one JSON document: the listed tools and, per call, what the SDK handed back
// (structuredContent after its own output-schema validation) or what it threw.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";

const [command, ...args] = JSON.parse(process.argv[2]);
let input = "";
for await (const chunk of process.stdin) input += chunk;
const calls = JSON.parse(input);

const transport = new StdioClientTransport({ command, args, env: process.env, stderr: "inherit" });
const client = new Client({ name: "sane-ts-client-test", version: "1.0.0" });
await client.connect(transport);
const listed = await client.listTools();
const results = [];

function resolve(value) {
  if (typeof value === "string") {
    const m = /^\$\{(\d+)\.(\w+)\}$/.exec(value);
    if (m) return results[Number(m[1])].structured[m[2]];
    return value;
  }
  if (Array.isArray(value)) return value.map(resolve);
  if (value && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, resolve(v)]));
  }
  return value;
}

for (const call of calls) {
  try {
    const result = await client.callTool(
      { name: call.tool, arguments: resolve(call.arguments ?? {}) },
      undefined,
      { timeout: 120000 },
    );
    results.push({
      is_error: result.isError ?? false,
      structured: result.structuredContent ?? null,
      text: result.content?.[0]?.text ?? null,
    });
  } catch (err) {
    results.push({ thrown: String(err), code: err.code ?? null });
  }
}
await client.close();
process.stdout.write(JSON.stringify({ tools: listed.tools.map((t) => t.name), results }) + "\n");
