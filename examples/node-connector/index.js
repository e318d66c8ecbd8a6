#!/usr/bin/env node
// A wxhub connector in Node.js: a knowledge-base lookup. It speaks only JSON on
// the subjects of docs/connectors.md ("In another language") and validates
// what it reads and writes against the JSON Schemas in schemas/. It does what
// the Go runner does: one durable pull consumer per partition (MaxAckPending 1
// keeps each user's events in order), replies published to WXHUB_OUT with
// Nats-Msg-Id = <event id>/<n> and acked by JetStream before the event is
// acked, retries with backoff, dead letters with the reason, and a graceful
// shutdown on SIGTERM that finishes the events in flight.
"use strict";

const crypto = require("node:crypto");
const fs = require("node:fs");
const path = require("node:path");
const { connect, headers, nanos, AckPolicy, DeliverPolicy } = require("nats");
const Ajv2020 = require("ajv/dist/2020").default;
const addFormats = require("ajv-formats").default;

// --- settings (the conformance kit sets the WXHUB_* ones)

function env(name, def) {
  const v = process.env[name];
  return v === undefined || v === "" ? def : v;
}
function intEnv(name, def) {
  const n = Number.parseInt(env(name, String(def)), 10);
  if (!Number.isFinite(n) || n < 0) throw new Error(`${name}: want a non-negative integer, got ${process.env[name]}`);
  return n;
}

const cfg = {
  url: env("WXHUB_NATS_URL", "nats://127.0.0.1:4222"),
  user: env("WXHUB_NATS_USER", ""),
  pass: env("WXHUB_NATS_PASSWORD", ""),
  name: env("WXHUB_CONNECTOR", "kb"),
  partitions: intEnv("WXHUB_PARTITIONS", 16),
  maxDeliver: intEnv("WXHUB_MAX_DELIVER", 5),
  backoffMs: intEnv("WXHUB_BACKOFF_MS", 1000),
  backoffMaxMs: intEnv("WXHUB_BACKOFF_MAX_MS", 60000),
  concurrency: intEnv("WXHUB_CONCURRENCY", 4),
  ackWaitMs: intEnv("WXHUB_ACK_WAIT_MS", 30000),
  pollMs: Math.max(1000, intEnv("WXHUB_POLL_MS", 1000)), // nats.js wants >= 1 s
  schemasDir: env("WXHUB_SCHEMAS_DIR", path.resolve(__dirname, "..", "..", "schemas")),
  legacyURL: env("LEGACY_URL", "http://127.0.0.1:8088"),
  legacyTimeoutMs: intEnv("LEGACY_TIMEOUT_MS", 2000),
};
cfg.inboxPrefix = env("WXHUB_NATS_INBOX_PREFIX", cfg.user ? `_INBOX_${cfg.name}` : "_INBOX");

const STREAM_ROUTE = "WXHUB_ROUTE";
const SCHEMA_EVENT = "wxhub.event/v1";
const SCHEMA_OUTBOUND = "wxhub.outbound/v1";
const SCHEMA_DEADLETTER = "wxhub.deadletter/v1";
const STAGE = `connector:${cfg.name}`;

// Logs are JSON lines; event ids only, never what users wrote.
function log(level, msg, fields = {}) {
  process.stdout.write(JSON.stringify({ level, ts: new Date().toISOString(), connector: cfg.name, msg, ...fields }) + "\n");
}

// --- schemas

const ajv = new Ajv2020({ strict: true, strictRequired: false, allowUnionTypes: true });
addFormats(ajv);
function loadSchema(file) {
  return ajv.compile(JSON.parse(fs.readFileSync(path.join(cfg.schemasDir, file), "utf8")));
}
const validate = {
  event: loadSchema("event.v1.json"),
  outbound: loadSchema("outbound.v1.json"),
  deadletter: loadSchema("deadletter.v1.json"),
};
function schemaError(v) {
  const e = v.errors && v.errors[0];
  return e ? `${e.instancePath || "/"} ${e.message}` : "invalid";
}

// --- errors: the three classes of docs/connectors.md

class Permanent extends Error {} // DLQ at once with the reason
class AnswerUser extends Error { // tell the user, then ack
  constructor(reason, text) {
    super(reason);
    this.text = text;
  }
}
// Anything else is retried: nak with a growing delay, DLQ after maxDeliver.

// --- tracing (W3C traceparent): replies continue the event's trace

function childTraceParent(tp) {
  const m = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})/.exec(tp || "");
  const span = crypto.randomBytes(8).toString("hex");
  if (!m || /^0+$/.test(m[2])) return `00-${crypto.randomBytes(16).toString("hex")}-${span}-01`;
  return `00-${m[2]}-${span}-${m[4]}`;
}

// --- the legacy system: POST {LEGACY_URL}/answer {question} -> {answer}

async function askLegacy(ev) {
  const question = ev.data.content.replace(/^\s*(kb|问)\s*/i, "").trim();
  if (!question) throw new AnswerUser("empty question", "请在 kb 后面写上问题，例如“kb 报销流程”");
  let res;
  try {
    res = await fetch(new URL("/answer", cfg.legacyURL), {
      method: "POST",
      headers: { "content-type": "application/json", "idempotency-key": ev.id },
      body: JSON.stringify({ question, user: ev.data.user, event_id: ev.id }),
      signal: AbortSignal.timeout(cfg.legacyTimeoutMs),
    });
  } catch (err) {
    throw new Error(`knowledge base unreachable: ${err.name === "TimeoutError" ? "timeout" : err.message}`);
  }
  const body = await res.text();
  if (res.status === 404) throw new AnswerUser("no answer found", `没有找到“${question}”的答案，请换个说法试试`);
  if (res.status >= 500 || res.status === 429) throw new Error(`knowledge base: HTTP ${res.status}`);
  if (!res.ok) throw new Permanent(`knowledge base refused the question: HTTP ${res.status}`);
  let answer;
  try {
    answer = JSON.parse(body).answer;
  } catch {
    throw new Permanent("knowledge base: answer is not JSON");
  }
  if (typeof answer !== "string" || !answer) throw new Permanent("knowledge base: no answer field");
  return answer;
}

// handle returns the replies (WeCom message/send bodies) for one event.
async function handle(ev) {
  if (ev.data.msg_type !== "text") return []; // nothing to say to a location report
  const answer = await askLegacy(ev);
  return [{ touser: ev.data.user, msgtype: "text", text: { content: answer } }];
}

// --- the runner

function outbound(ev, id, body, tp) {
  return {
    specversion: "1.0",
    id,
    source: `connector/${cfg.name}`,
    type: "wxhub.out.message",
    time: new Date().toISOString(),
    datacontenttype: "application/json",
    traceparent: tp,
    data: { app: ev.data.app, kind: "message", priority: "urgent", in_reply_to: ev.id, event_time: ev.time, body },
  };
}

async function publishReplies(js, ev, bodies, tp, idPrefix) {
  for (let i = 0; i < bodies.length; i++) {
    const out = outbound(ev, `${ev.id}/${idPrefix}${i}`, bodies[i], tp);
    if (!validate.outbound(out)) throw new Permanent(`reply ${i} breaks ${SCHEMA_OUTBOUND}: ${schemaError(validate.outbound)}`);
    const h = headers();
    h.set("Wxhub-Schema", SCHEMA_OUTBOUND);
    h.set("traceparent", tp);
    // The message id makes a redelivered event's replies duplicates that JetStream drops.
    await js.publish(`wxhub.out.${out.data.app}`, JSON.stringify(out), { msgID: out.id, headers: h });
  }
}

async function deadLetter(js, msg, reason, attempts) {
  const raw = Buffer.from(msg.data);
  let original;
  let encoding;
  try {
    original = JSON.parse(raw.toString("utf8"));
  } catch {
    original = raw.toString("base64");
    encoding = "base64";
  }
  const hdrs = {};
  if (msg.headers) for (const [k, v] of msg.headers) hdrs[k] = v[0];
  const id = `dlq/${STAGE}/${STREAM_ROUTE}/${msg.info.streamSequence}`;
  const dl = {
    specversion: "1.0",
    id,
    source: `wxhub/${STAGE}`,
    type: `wxhub.dlq.${STAGE}`,
    time: new Date().toISOString(),
    datacontenttype: "application/json",
    data: { stage: STAGE, reason: reason.slice(0, 4096), attempts, subject: msg.subject, headers: hdrs, original, ...(encoding && { encoding }) },
  };
  if (!validate.deadletter(dl)) throw new Error(`dead letter breaks ${SCHEMA_DEADLETTER}: ${schemaError(validate.deadletter)}`);
  const h = headers();
  h.set("Wxhub-Schema", SCHEMA_DEADLETTER);
  h.set("traceparent", childTraceParent(msg.headers && msg.headers.get("traceparent")));
  await js.publish(`wxhub.dlq.${STAGE}`, JSON.stringify(dl), { msgID: id, headers: h });
  // Only what is safely in the DLQ is terminated.
  msg.term("dead-lettered");
  log("error", "event dead-lettered", { seq: msg.info.streamSequence, attempts, reason });
}

function backoff(attempt) {
  const d = Math.min(cfg.backoffMs * 2 ** Math.max(0, attempt - 1), cfg.backoffMaxMs);
  return Math.round(d / 2 + Math.random() * (d / 2)); // equal jitter, like the Go SDK
}

async function settle(js, msg) {
  const attempt = msg.info.redeliveryCount; // 1 on the first delivery
  const seq = msg.info.streamSequence;
  const schema = msg.headers && msg.headers.get("Wxhub-Schema");
  if (schema && schema !== SCHEMA_EVENT) return deadLetter(js, msg, `connector ${cfg.name} does not consume schema "${schema}"`, attempt);
  let ev;
  try {
    ev = JSON.parse(Buffer.from(msg.data).toString("utf8"));
  } catch (err) {
    return deadLetter(js, msg, `invalid event JSON: ${err.message}`, attempt);
  }
  if (!validate.event(ev)) return deadLetter(js, msg, `event breaks ${SCHEMA_EVENT}: ${schemaError(validate.event)}`, attempt);
  if (attempt > cfg.maxDeliver) {
    return deadLetter(js, msg, `no outcome after ${attempt - 1} deliveries (crashed or exceeded ack wait)`, attempt - 1);
  }
  const tp = childTraceParent(msg.headers && msg.headers.get("traceparent"));
  const fields = { event: ev.id, seq, attempt, trace_id: tp.slice(3, 35) };
  try {
    const bodies = await handle(ev);
    await publishReplies(js, ev, bodies, tp, "");
    await msg.ackAck();
    log("debug", "event handled", { ...fields, replies: bodies.length });
  } catch (err) {
    if (err instanceof AnswerUser) {
      try {
        await publishReplies(js, ev, [{ touser: ev.data.user, msgtype: "text", text: { content: err.text } }], tp, "answer/");
        await msg.ackAck();
        log("warn", "answered the user instead of succeeding", { ...fields, reason: err.message });
        return;
      } catch (perr) {
        err = perr;
      }
    }
    if (err instanceof Permanent || attempt >= cfg.maxDeliver) return deadLetter(js, msg, err.message, attempt);
    const delay = backoff(attempt);
    log("warn", "handler failed; will retry", { ...fields, delay_ms: delay, error: err.message });
    msg.nak(delay);
  }
}

// A tiny semaphore: at most cfg.concurrency handlers at once in this process.
let running = 0;
const waiting = [];
async function acquire() {
  if (running < cfg.concurrency) {
    running++;
    return;
  }
  await new Promise((resolve) => waiting.push(resolve));
}
function release() {
  const next = waiting.shift();
  if (next) next();
  else running--;
}

let stopping = false;

// lane pulls one partition, one event at a time (MaxAckPending 1 on the server).
async function lane(js, consumerName) {
  const consumer = await js.consumers.get(STREAM_ROUTE, consumerName);
  while (!stopping) {
    let msg;
    try {
      msg = await consumer.next({ expires: cfg.pollMs });
    } catch (err) {
      log("warn", "pull failed; retrying", { consumer: consumerName, error: err.message });
      await new Promise((r) => setTimeout(r, 1000));
      continue;
    }
    if (!msg) continue;
    // In flight from here: finished even if a shutdown starts meanwhile.
    const beat = setInterval(() => msg.working(), Math.max(500, cfg.ackWaitMs / 2));
    try {
      await acquire();
      try {
        await settle(js, msg);
      } finally {
        release();
      }
    } catch (err) {
      // The bus failed mid-settle: leave the event to be redelivered after ack wait.
      log("error", "settling failed; the event will be redelivered", { consumer: consumerName, error: err.message });
    } finally {
      clearInterval(beat);
    }
  }
}

async function main() {
  const nc = await connect({
    servers: cfg.url.split(","),
    name: `wxhub-connector-${cfg.name}`,
    inboxPrefix: cfg.inboxPrefix,
    ...(cfg.user && { user: cfg.user, pass: cfg.pass }),
    maxReconnectAttempts: -1,
  });
  // checkAPI false: a connector's user may not read account info ($JS.API.INFO).
  const jsm = await nc.jetstreamManager({ checkAPI: false });
  const js = nc.jetstream();
  const names = [];
  for (let p = 0; p < cfg.partitions; p++) {
    const durable = `wxhub_${cfg.name}_${p}`;
    // Exactly the Go runner's ConsumerConfig (connectors/runner.go): the last declarer wins.
    await jsm.consumers.add(STREAM_ROUTE, {
      durable_name: durable,
      description: `wxhub connector ${cfg.name} partition ${p}`,
      filter_subject: `wxhub.route.${cfg.name}.${p}`,
      deliver_policy: DeliverPolicy.All,
      ack_policy: AckPolicy.Explicit,
      ack_wait: nanos(cfg.ackWaitMs),
      max_deliver: -1,
      max_ack_pending: 1,
      // State in memory: WXHUB_ROUTE is a work queue, so a consumer that starts
      // over begins at the first event not yet done.
      mem_storage: true,
    });
    names.push(durable);
  }
  log("info", "connector started", { partitions: cfg.partitions, concurrency: cfg.concurrency, consumes: [SCHEMA_EVENT], emits: [SCHEMA_OUTBOUND] });

  const stop = (sig) => {
    if (!stopping) log("info", "shutting down; finishing events in flight", { signal: sig });
    stopping = true;
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));

  await Promise.all(names.map((n) => lane(js, n)));
  await nc.drain(); // pending acks and publishes reach the server
  log("info", "connector stopped");
}

main().catch((err) => {
  log("error", "connector failed", { error: err.message });
  process.exit(1);
});
