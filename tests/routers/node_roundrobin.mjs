// A round-robin JSON-RPC router on Node's standard library only (node:http, no npm
// packages), written without looking at examples/reference_router, so that Battle is
// proven on a router in another stack with another policy.
//
//   node tests/routers/node_roundrobin.mjs --listen 127.0.0.1:0 \
//       --upstream A=http://127.0.0.1:8101/ --upstream B=http://127.0.0.1:8102/ \
//       [--defect NAME]... [--set KEY=VALUE]...
//   node tests/routers/node_roundrobin.mjs --config router.json   (node_roundrobin.json.j2)
//
// Policy (each number a setting, see SETTINGS):
// - Round robin over the upstreams that are not ejected (all of them when every one is:
//   a router with nothing left tries anyway rather than refuse everything).
// - Passive health: 2 consecutive failures eject an upstream for 3 s; then it is back.
// - A failed attempt (connection error, 2 s timeout, HTTP 5xx or 429) is retried once
//   on the next upstream: 2 attempts at most. It reads no JSON-RPC: an error inside an
//   HTTP 200 is an answer and goes back as it came (as nginx would).
// - The body and the X-Battle-Tag header go upstream unchanged (ids too), so Battle
//   correlates every attempt by its tag. Batches pass through as they are.
// - No WebSocket: an upgrade request gets 404 (a scenario runs it with ws_path = "").
// - GET /health answers 200. Prints `ready http://HOST:PORT` once serving; exits 0 on
//   SIGTERM or SIGINT; bad arguments: one line on stderr, exit 2.

import http from "node:http";
import { readFileSync } from "node:fs";

const PROG = "node_roundrobin";

export const DEFECTS = {
  no_failover: "one attempt only: a failed attempt's answer goes to the client",
  no_ejection: "passive health off: a failing upstream stays in the rotation",
  eject_forever: "an ejected upstream is never returned to the rotation",
  retry_same_upstream: "the retry goes to the upstream that just failed, not the next one",
  drop_tag: "X-Battle-Tag is not forwarded (Battle must correlate by time)",
  swallow_errors: "when every attempt failed: HTTP 200 with result null, not an error",
  add_latency_15ms: "waits 15 ms before forwarding each request",
  slow_leak: "keeps 1 KB resident per JSON-RPC call (each batch element) forever",
  attempt_timeout_30s: "attempt timeout 30 s: a hung upstream hangs the call",
};

const SETTINGS = {
  attempt_timeout_s: 2,
  max_attempts: 2,
  eject_after: 2,
  eject_s: 3,
};

const LEAK_BYTES = 1024;
const HOP_BY_HOP = new Set([
  "connection", "keep-alive", "transfer-encoding", "upgrade", "proxy-connection", "te",
  "trailer", "content-length", "host",
]);

class UsageError extends Error {}

function parseUpstream(text) {
  const eq = text.indexOf("=");
  if (eq <= 0 || eq === text.length - 1) {
    throw new UsageError(`--upstream ${JSON.stringify(text)}: expected NAME=HTTP_URL[,WS_URL]`);
  }
  const [url, wsUrl] = text.slice(eq + 1).split(",");
  return { name: text.slice(0, eq), url, ws_url: wsUrl || null };
}

function parseListen(text) {
  const colon = text.lastIndexOf(":");
  const port = text.slice(colon + 1);
  if (colon < 0 || !/^\d+$/.test(port)) {
    throw new UsageError(`listen ${JSON.stringify(text)}: expected HOST:PORT`);
  }
  return { host: text.slice(0, colon) || "127.0.0.1", port: Number(port) };
}

// Config file first, then the flags: --listen replaces, --upstream (any) replaces the
// file's list, --defect and --set add.
export function loadConfig(argv) {
  const flags = { upstream: [], defect: [], set: [] };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const m = /^--(config|listen|upstream|defect|set)(?:=(.*))?$/.exec(arg);
    if (!m) throw new UsageError(`unknown argument ${JSON.stringify(arg)}`);
    let value = m[2];
    if (value === undefined) {
      if (i + 1 >= argv.length) throw new UsageError(`${arg} needs a value`);
      value = argv[++i];
    }
    if (Array.isArray(flags[m[1]])) flags[m[1]].push(value);
    else flags[m[1]] = value;
  }
  let data = {};
  if (flags.config) {
    try {
      data = JSON.parse(readFileSync(flags.config, "utf8"));
    } catch (err) {
      throw new UsageError(`--config ${flags.config}: ${err.message}`);
    }
  }
  const { host, port } = parseListen(flags.listen || data.listen || "127.0.0.1:0");
  const upstreams = flags.upstream.length
    ? flags.upstream.map(parseUpstream)
    : (data.upstreams || []).map((u) => ({ name: u.name, url: u.url, ws_url: u.ws_url || null }));
  if (!upstreams.length) {
    throw new UsageError("no upstreams: give --upstream NAME=URL or a config with upstreams");
  }
  const defects = new Set(data.defects || []);
  for (const item of flags.defect) for (const d of item.split(",")) if (d) defects.add(d);
  for (const d of defects) {
    if (!(d in DEFECTS)) {
      throw new UsageError(`unknown defect ${JSON.stringify(d)}; known: ${Object.keys(DEFECTS).join(", ")}`);
    }
  }
  const settings = { ...SETTINGS };
  const given = { ...(data.settings || {}) };
  for (const item of flags.set) {
    const eq = item.indexOf("=");
    if (eq <= 0) throw new UsageError(`--set ${JSON.stringify(item)}: expected KEY=VALUE`);
    given[item.slice(0, eq)] = item.slice(eq + 1);
  }
  for (const [key, value] of Object.entries(given)) {
    if (!(key in SETTINGS)) {
      throw new UsageError(`unknown setting ${JSON.stringify(key)}; known: ${Object.keys(SETTINGS).join(", ")}`);
    }
    const n = Number(value);
    if (!Number.isFinite(n)) throw new UsageError(`setting ${key}: not a number: ${JSON.stringify(value)}`);
    settings[key] = n;
  }
  if (defects.has("attempt_timeout_30s")) settings.attempt_timeout_s = 30;
  return { host, port, upstreams, defects, settings };
}

class Router {
  constructor(config) {
    this.config = config;
    this.settings = config.settings;
    this.defects = config.defects;
    this.next = 0;
    this.leak = [];
    this.agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
    this.health = new Map(config.upstreams.map((u) => [u.name, { failures: 0, ejectedUntil: 0 }]));
  }

  has(defect) {
    return this.defects.has(defect);
  }

  // The upstreams for one request: the rotation's next one first, ejected ones left out.
  order() {
    const all = this.config.upstreams;
    const start = this.next++ % all.length;
    const rotated = all.map((_, i) => all[(start + i) % all.length]);
    const now = Date.now();
    const live = rotated.filter((u) => this.health.get(u.name).ejectedUntil <= now);
    return live.length ? live : rotated;
  }

  succeeded(upstream) {
    this.health.get(upstream.name).failures = 0;
  }

  failed(upstream) {
    if (this.has("no_ejection")) return;
    const h = this.health.get(upstream.name);
    h.failures += 1;
    if (h.failures >= this.settings.eject_after) {
      h.failures = 0;
      h.ejectedUntil = this.has("eject_forever") ? Infinity : Date.now() + this.settings.eject_s * 1000;
    }
  }

  // One attempt: resolves {ok, status, headers, body} or {ok: false, why} (no answer).
  attempt(upstream, body, headers) {
    return new Promise((resolve) => {
      let done = false;
      const finish = (result) => {
        if (!done) {
          done = true;
          clearTimeout(timer);
          resolve(result);
        }
      };
      const req = http.request(upstream.url, {
        method: "POST",
        agent: this.agent,
        headers: { ...headers, "content-length": body.length },
      });
      const timer = setTimeout(() => {
        req.destroy();
        finish({ ok: false, why: "timeout" });
      }, this.settings.attempt_timeout_s * 1000);
      req.on("error", (err) => finish({ ok: false, why: `connection: ${err.code || err.message}` }));
      req.on("response", (res) => {
        const chunks = [];
        res.on("data", (c) => chunks.push(c));
        res.on("error", (err) => finish({ ok: false, why: `connection: ${err.code || err.message}` }));
        res.on("end", () => {
          const answer = { status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) };
          const bad = res.statusCode >= 500 || res.statusCode === 429;
          finish({ ...answer, ok: !bad, why: bad ? `HTTP ${res.statusCode}` : null });
        });
      });
      req.end(body);
    });
  }

  async route(body, clientHeaders) {
    let calls = 1;
    let parsed;
    try {
      parsed = JSON.parse(body);
      if (Array.isArray(parsed)) calls = Math.max(1, parsed.length);
    } catch {
      parsed = undefined; // not JSON: forwarded anyway, the upstream answers the parse error
    }
    if (this.has("slow_leak")) {
      // Filled with a non-zero byte so that every page is written, hence resident.
      for (let i = 0; i < calls; i++) this.leak.push(Buffer.alloc(LEAK_BYTES, 1));
    }
    if (this.has("add_latency_15ms")) await new Promise((r) => setTimeout(r, 15));
    const headers = { "content-type": clientHeaders["content-type"] || "application/json" };
    const tag = clientHeaders["x-battle-tag"];
    if (tag !== undefined && !this.has("drop_tag")) headers["x-battle-tag"] = tag;
    const order = this.order();
    const attempts = this.has("no_failover") ? 1 : Math.max(1, this.settings.max_attempts);
    let last = null;
    for (let i = 0; i < attempts; i++) {
      const upstream = this.has("retry_same_upstream") ? order[0] : order[i % order.length];
      const result = await this.attempt(upstream, body, headers);
      if (result.ok) {
        this.succeeded(upstream);
        return result;
      }
      this.failed(upstream);
      last = result;
    }
    return this.giveUp(parsed, last);
  }

  giveUp(parsed, last) {
    const ids = Array.isArray(parsed)
      ? parsed.map((e) => (e && typeof e === "object" ? (e.id ?? null) : null))
      : [parsed && typeof parsed === "object" ? (parsed.id ?? null) : null];
    const json = (status, items) => ({
      status,
      headers: { "content-type": "application/json" },
      body: Buffer.from(JSON.stringify(Array.isArray(parsed) ? items : items[0])),
    });
    if (this.has("swallow_errors")) {
      return json(200, ids.map((id) => ({ jsonrpc: "2.0", id, result: null })));
    }
    if (last && last.status !== undefined) return last; // the upstream's own 5xx/429
    const why = last ? last.why : "no upstream";
    return json(502, ids.map((id) => ({ jsonrpc: "2.0", id, error: { code: -32603, message: `router: ${why}` } })));
  }
}

function reply(res, { status, headers, body }) {
  const out = {};
  for (const [k, v] of Object.entries(headers || {})) if (!HOP_BY_HOP.has(k)) out[k] = v;
  out["content-length"] = body.length;
  res.writeHead(status, out);
  res.end(body);
}

function main(argv) {
  let config;
  try {
    config = loadConfig(argv);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`${PROG}: ${err.message}\n`);
    process.exit(2);
  }
  const router = new Router(config);
  const server = http.createServer((req, res) => {
    if (req.method === "GET" && req.url.split("?")[0] === "/health") {
      reply(res, { status: 200, headers: { "content-type": "application/json" }, body: Buffer.from('{"status":"ok"}') });
      return;
    }
    if (req.method !== "POST") {
      reply(res, { status: 405, headers: { "content-type": "text/plain" }, body: Buffer.from("POST JSON-RPC here\n") });
      return;
    }
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      router.route(Buffer.concat(chunks), req.headers).then(
        (answer) => reply(res, answer),
        (err) => reply(res, { status: 500, headers: {}, body: Buffer.from(String(err)) }),
      );
    });
  });
  // No WebSocket here: say so plainly rather than leave the client waiting.
  server.on("upgrade", (req, socket) => {
    socket.end("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
  });
  server.keepAliveTimeout = 30_000;
  server.on("error", (err) => {
    process.stderr.write(`${PROG}: cannot listen on ${config.host}:${config.port}: ${err.message}\n`);
    process.exit(1);
  });
  server.listen(config.port, config.host, () => {
    const { address, port } = server.address();
    process.stdout.write(`ready http://${address}:${port}\n`);
  });
  const stop = () => {
    server.close(() => process.exit(0));
    server.closeAllConnections();
    router.agent.destroy();
    // Connections mid-request close with the process; never outlive the runner's grace.
    setTimeout(() => process.exit(0), 1000).unref();
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

main(process.argv.slice(2));
