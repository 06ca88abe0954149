// A real TypeScript MCP client (the SDK most agent hosts embed) driving `sane mcp`.
//
// Usage: node call.mjs '<server argv as JSON>' < calls.json        (stdio)
//        node call.mjs '{"url": URL, "token": TOKEN}' < calls.json (Streamable HTTP)
// calls.json: [{"tool": name, "arguments": {...}, "progress": bool, "timeout_ms": N,
//               "retry_busy_ms": N}, ...]; a string argument "${N.field}" is replaced by
// field `field` of call N's structured result (a run id, say). `progress`: collect the
// call's progress notifications; `timeout_ms`: the SDK's own request timeout (it sends
// notifications/cancelled when it fires); `retry_busy_ms`: call again while the answer
// is pane_busy, for at most that long (a deadline, not a sleep). A call {"read": URI}
// is resources/read instead, following each page's _meta.next to the end; "${N.links.K}"
// is the K-th resource_link URI of call N's result.
// Prints one JSON document: the listed tools and, per call, what the SDK handed back
// (structuredContent after its own output-schema validation) or what it threw; or
// {"connect_error": ..., "code": ...} when the client could not connect at all.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const target = JSON.parse(process.argv[2]);
let input = "";
for await (const chunk of process.stdin) input += chunk;
const calls = JSON.parse(input);

let transport;
if (Array.isArray(target)) {
  const [command, ...args] = target;
  transport = new StdioClientTransport({ command, args, env: process.env, stderr: "inherit" });
} else {
  const headers = target.token === null ? {} : { Authorization: `Bearer ${target.token}` };
  transport = new StreamableHTTPClientTransport(new URL(target.url), { requestInit: { headers } });
}
const client = new Client({ name: "sane-ts-client-test", version: "1.0.0" });
try {
  await client.connect(transport);
} catch (err) {
  process.stdout.write(JSON.stringify({ connect_error: String(err), code: err.code ?? null }) + "\n");
  process.exit(0);
}
const listed = await client.listTools();
const results = [];

function resolve(value) {
  if (typeof value === "string") {
    const m = /^\$\{(\d+)\.(\w+)(?:\.(\d+))?\}$/.exec(value);
    if (m && m[2] === "links") return results[Number(m[1])].links[Number(m[3])];
    if (m) return results[Number(m[1])].structured[m[2]];
    return value;
  }
  if (Array.isArray(value)) return value.map(resolve);
  if (value && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, resolve(v)]));
  }
  return value;
}

async function read(uri) {
  // every page of a paged resource: its length, its _meta, all the text
  const pages = [];
  let text = "";
  for (let next = uri; next; ) {
    const page = (await client.readResource({ uri: next })).contents[0];
    pages.push({ uri: next, length: page.text?.length ?? null, meta: page._meta ?? null });
    text += page.text ?? "";
    next = page._meta?.next ?? null;
  }
  return { pages, text };
}

async function once(call, progress) {
  if (call.read) return await read(resolve(call.read));
  const options = { timeout: call.timeout_ms ?? 120000 };
  if (call.progress) options.onprogress = (p) => progress.push(p);
  const result = await client.callTool(
    { name: call.tool, arguments: resolve(call.arguments ?? {}) },
    undefined,
    options,
  );
  return {
    is_error: result.isError ?? false,
    structured: result.structuredContent ?? null,
    text: result.content?.[0]?.text ?? null,
    links: (result.content ?? []).filter((c) => c.type === "resource_link").map((c) => c.uri),
  };
}

for (const call of calls) {
  const progress = [];
  const started = Date.now();
  try {
    let got = await once(call, progress);
    while (
      call.retry_busy_ms &&
      got.structured?.error?.code === "pane_busy" &&
      Date.now() - started < call.retry_busy_ms
    ) {
      got = await once(call, progress);
    }
    if (call.progress) got.progress = progress;
    got.elapsed_ms = Date.now() - started;
    results.push(got);
  } catch (err) {
    results.push({ thrown: String(err), code: err.code ?? null, elapsed_ms: Date.now() - started });
  }
}
await client.close();
process.stdout.write(JSON.stringify({ tools: listed.tools.map((t) => t.name), results }) + "\n");
