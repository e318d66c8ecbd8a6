// wxhub operations dashboard. Plain JS, no build step, no network beyond the hub.
// Everything shown is built with textContent: message content never becomes markup.
"use strict";

const API = "/dashboard/api/";
const STREAM_DESC = {
  WXHUB_IN: "inbound events from WeChat",
  WXHUB_ROUTE: "routed, waiting for connectors",
  WXHUB_OUT: "outbound, for the sender",
  WXHUB_DLQ: "dead letters",
};
const HISTORY = 90; // points kept per sparkline
const state = { me: null, history: {}, dlqAfter: 0, dlqSel: null, stages: new Set() };

function $(sel) { return document.querySelector(sel); }
function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "style") el.style.cssText = v; // CSSOM, allowed by the CSP (style attributes are not)
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of kids.flat()) {
    if (c === undefined || c === null) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}
function fmtNum(n) { return Number(n || 0).toLocaleString(); }
function fmtRate(n) { return n >= 10 ? Math.round(n).toLocaleString() : (Math.round(n * 100) / 100).toString(); }
function fmtBytes(n) {
  const u = ["B", "KiB", "MiB", "GiB", "TiB"]; let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : n) + " " + u[i];
}
function ago(t) {
  if (!t) return "never";
  const s = (Date.now() - new Date(t).getTime()) / 1000;
  if (s < 2) return "just now";
  if (s < 90) return Math.round(s) + " s ago";
  if (s < 5400) return Math.round(s / 60) + " min ago";
  if (s < 172800) return Math.round(s / 3600) + " h ago";
  return Math.round(s / 86400) + " d ago";
}
function fmtTime(t) { return t ? new Date(t).toLocaleString() : ""; }

let toastTimer;
function toast(msg, isErr) {
  const t = $("#toast");
  t.textContent = msg; t.className = "toast" + (isErr ? " err" : ""); t.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { t.hidden = true; }, 4000);
}

async function api(path, opts) {
  opts = opts || {};
  const headers = { "Accept": "application/json" };
  if (opts.method === "POST") headers["X-CSRF-Token"] = state.me ? state.me.csrf : "";
  const res = await fetch(API + path, { method: opts.method || "GET", headers, credentials: "same-origin" });
  if (res.status === 401) { location.href = "/dashboard/login"; throw new Error("login required"); }
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(body.error || res.statusText);
  return body;
}

// ---- tabs ----
function showTab(name) {
  for (const b of document.querySelectorAll(".tabs button")) b.setAttribute("aria-selected", String(b.dataset.tab === name));
  for (const v of document.querySelectorAll(".view")) v.hidden = v.id !== "view-" + name;
  if (name === "dlq") loadDLQ(true);
  history.replaceState(null, "", "#" + name);
}

// ---- overview ----
function sparkline(values) {
  const max = Math.max(1, ...values);
  const n = Math.max(values.length - 1, 1);
  const pts = values.map((v, i) => (i / n * 100).toFixed(2) + "," + (38 - v / max * 36).toFixed(2)).join(" ");
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", "0 0 100 40"); svg.setAttribute("preserveAspectRatio", "none");
  const pl = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
  pl.setAttribute("points", pts); svg.append(pl);
  return svg;
}

function renderStreams(ov) {
  const box = $("#streams"); box.replaceChildren();
  for (const s of ov.streams || []) {
    const hist = state.history[s.name] = (state.history[s.name] || []).concat([s.messages]).slice(-HISTORY);
    const isDLQ = s.name === "WXHUB_DLQ";
    box.append(h("div", { class: "card" + (isDLQ ? " dlq" : "") + (isDLQ && s.messages > 0 ? " hot" : ""), id: "stream-" + s.name },
      h("div", { class: "name" }, s.name),
      h("div", { class: "desc" }, STREAM_DESC[s.name] || ""),
      h("div", { class: "depth", id: "depth-" + s.name, "data-value": s.messages }, fmtNum(s.messages)),
      h("div", { class: "meta" }, fmtBytes(s.bytes) + " · last seq " + fmtNum(s.last_seq) + " · " + s.consumers + " consumer" + (s.consumers === 1 ? "" : "s")),
      sparkline(hist)));
  }
  const dlq = (ov.dlq && ov.dlq.total) || 0;
  const badge = $("#dlq-badge"); badge.textContent = fmtNum(dlq); badge.className = "badge" + (dlq > 0 ? " hot" : "");
  for (const st of Object.keys((ov.dlq && ov.dlq.by_stage) || {})) state.stages.add(st);
}

function renderConsumers(ov) {
  const tb = $("#consumers tbody"); tb.replaceChildren();
  const cs = (ov.consumers || []).slice().sort((a, b) => (a.stream + a.name).localeCompare(b.stream + b.name));
  if (!cs.length) tb.append(h("tr", { class: "empty" }, h("td", { colspan: 8 }, "No consumers yet: start the router, a connector or the sender.")));
  for (const c of cs) {
    const max = c.max_ack_pending > 0 ? c.max_ack_pending : 0;
    const pct = max ? Math.min(100, c.ack_pending / max * 100) : 0;
    tb.append(h("tr", { "data-consumer": c.name, "data-stream": c.stream },
      h("td", { "data-label": "Consumer" }, h("strong", {}, c.connector ? "connector " + c.connector : c.name),
        c.connector && c.connector !== c.name ? h("div", { class: "muted" }, c.name) : null),
      h("td", { "data-label": "Stream" }, c.stream),
      h("td", { "data-label": "Health" }, h("span", { class: "pill " + c.health }, c.health)),
      h("td", { "data-label": "Lag", class: "num lag" }, fmtNum(c.pending)),
      h("td", { "data-label": "In flight", class: "num" }, fmtNum(c.ack_pending) + (max ? " / " + fmtNum(max) : ""),
        max ? h("div", { class: "bar" + (pct > 90 ? " crit" : pct > 70 ? " warn" : "") }, h("i", { style: "width:" + pct + "%" })) : null),
      h("td", { "data-label": "Redelivered", class: "num" }, fmtNum(c.redelivered)),
      h("td", { "data-label": "Waiting pulls", class: "num" }, fmtNum(c.waiting)),
      h("td", { "data-label": "Last seen", title: fmtTime(c.last_active) }, ago(c.last_active))));
  }
}

function renderLimits(ov) {
  const box = $("#limits"); box.replaceChildren();
  const ls = ov.limits || [];
  if (!ls.length) { box.append(h("p", { class: "muted" }, "No sends counted yet.")); return; }
  for (const l of ls) {
    const pct = Math.min(100, (l.ratio || 0) * 100);
    box.append(h("div", { class: "row" },
      h("div", {}, h("strong", {}, l.app || "whole corp"), " · ", l.name),
      h("div", { class: "num" }, fmtRate(l.sent_per_minute) + " / min" + (l.per_minute ? " of " + fmtNum(l.per_minute) + " (" + Math.round(pct) + "%)" : "")),
      l.per_minute ? h("div", { class: "bar" + (pct > 90 ? " crit" : pct > 70 ? " warn" : "") }, h("i", { style: "width:" + pct + "%" })) : null));
  }
}

function renderErrors(ov) {
  const ul = $("#errors"); ul.replaceChildren();
  const es = ov.errors || [];
  if (!es.length) { ul.append(h("li", { class: "none" }, "No recent errors.")); return; }
  for (const e of es.slice(0, 15)) {
    ul.append(h("li", {},
      h("div", {}, h("strong", {}, e.kind.replace("_", " ")), " · ", e.where, e.seq ? " · #" + e.seq : ""),
      h("div", {}, e.reason),
      e.hint ? h("div", { class: "hint" }, e.hint) : null,
      h("div", { class: "when" }, ago(e.time))));
  }
}

function renderRates(ov) {
  state.rates = ov.rates || [];
  drawRates();
}
function drawRates() {
  const f = ($("#rate-filter").value || "").toLowerCase();
  const tb = $("#rates tbody"); tb.replaceChildren();
  for (const r of state.rates || []) {
    const labels = Object.entries(r.labels || {}).map(([k, v]) => k + "=" + v).join(" ");
    if (f && !(r.metric + " " + labels).toLowerCase().includes(f)) continue;
    tb.append(h("tr", {}, h("td", {}, r.metric), h("td", { class: "muted" }, labels),
      h("td", { class: "num" }, fmtRate(r.per_minute)), h("td", { class: "num" }, fmtNum(r.total))));
  }
}

function render(ov) {
  const be = $("#bus-error");
  be.hidden = !ov.bus_error; be.textContent = ov.bus_error ? "JetStream: " + ov.bus_error : "";
  renderStreams(ov); renderConsumers(ov); renderLimits(ov); renderErrors(ov); renderRates(ov);
}

function connect() {
  const live = $("#live");
  const es = new EventSource(API + "events");
  es.addEventListener("overview", (ev) => {
    live.className = "live on"; $("#live-text").textContent = "live";
    render(JSON.parse(ev.data));
  });
  es.onerror = async () => {
    live.className = "live off"; $("#live-text").textContent = "reconnecting…";
    // An expired session also ends the stream: check and go to the login form.
    try { await api("me"); } catch (e) { /* api() redirects on 401 */ }
  };
}

// ---- dead letters ----
async function loadDLQ(reset) {
  if (reset) { state.dlqAfter = 0; $("#dlq-list tbody").replaceChildren(); }
  const sel = $("#dlq-stage");
  for (const st of state.stages) if (![...sel.options].some((o) => o.value === st)) sel.append(h("option", { value: st }, st));
  const q = new URLSearchParams({ limit: "100" });
  if (sel.value) q.set("stage", sel.value);
  if (state.dlqAfter) q.set("after", String(state.dlqAfter));
  let page;
  try { page = await api("dlq?" + q); } catch (e) { toast(e.message, true); return; }
  const tb = $("#dlq-list tbody");
  if (reset && !page.items.length) tb.append(h("tr", { class: "empty" }, h("td", { colspan: 5 }, "The dead-letter queue is empty.")));
  for (const it of page.items) {
    tb.append(h("tr", { "data-seq": it.seq, onclick: () => showDLQ(it.seq) },
      h("td", { "data-label": "#", class: "num" }, it.seq),
      h("td", { "data-label": "Stage" }, it.stage),
      h("td", { "data-label": "Reason", class: "reason" }, it.reason, it.hint ? h("div", { class: "muted" }, it.hint) : null),
      h("td", { "data-label": "Tries", class: "num" }, it.attempts),
      h("td", { "data-label": "Stored", title: fmtTime(it.stored) }, ago(it.stored))));
  }
  state.dlqAfter = page.next || 0;
  $("#dlq-more").hidden = !page.next;
  $("#dlq-count").textContent = fmtNum(page.total) + " dead letter" + (page.total === 1 ? "" : "s");
}

async function showDLQ(seq) {
  let d;
  try { d = await api("dlq/" + seq); } catch (e) { toast(e.message, true); return; }
  state.dlqSel = seq;
  for (const tr of document.querySelectorAll("#dlq-list tbody tr")) tr.classList.toggle("sel", tr.dataset.seq === String(seq));
  $("#dlq-title").textContent = "Dead letter #" + d.seq;
  const meta = $("#dlq-meta"); meta.replaceChildren();
  const row = (k, v) => { if (v !== undefined && v !== "") meta.append(h("dt", {}, k), h("dd", {}, v)); };
  row("Stage", d.stage); row("Reason", d.reason); row("Hint", d.hint); row("Attempts", d.attempts);
  row("Replays to", d.subject); row("Stored", fmtTime(d.stored)); row("Id", d.id);
  for (const [k, v] of Object.entries(d.headers || {})) row(k, v);
  $("#dlq-original").textContent = (d.encoding === "base64" ? "(base64) " : "") + d.original;
  $("#dlq-detail").hidden = false;
}

async function dlqAction(kind) {
  const seq = state.dlqSel;
  if (!seq) return;
  const what = kind === "replay" ? "Replay dead letter #" + seq + " to its original subject?" : "Drop dead letter #" + seq + " for good?";
  if (!confirm(what)) return;
  try {
    const r = await api("dlq/" + seq + "/" + kind, { method: "POST" });
    toast(kind === "replay" ? "Replayed #" + seq + " to " + r.subject : "Dropped #" + seq);
    $("#dlq-detail").hidden = true; state.dlqSel = null;
    loadDLQ(true);
  } catch (e) { toast(e.message, true); }
}

// ---- tracer ----
async function trace(ev) {
  ev.preventDefault();
  const by = $("#trace-by").value, q = $("#trace-q").value.trim();
  if (!q) return;
  $("#trace-info").textContent = "Tracing…";
  const ol = $("#trace-hops"); ol.replaceChildren();
  let tr;
  try { tr = await api("trace?" + new URLSearchParams({ [by]: q })); } catch (e) { $("#trace-info").textContent = e.message; return; }
  const scanned = Object.entries(tr.scanned || {}).map(([k, v]) => k + " " + fmtNum(v)).join(", ");
  $("#trace-info").textContent = (tr.hops.length ? tr.hops.length + (tr.hops.length === 1 ? " hop" : " hops") : "Nothing found in the newest messages") +
    (tr.truncated ? " (newest shown)" : "") + " · scanned " + scanned;
  let prev = null;
  for (const hp of tr.hops) {
    const step = prev ? new Date(hp.time) - new Date(prev) : 0;
    prev = hp.time;
    ol.append(h("li", { class: hp.kind },
      h("div", { class: "head" }, h("span", { class: "kind" }, hp.kind.replace("_", " ")),
        h("span", { class: "delta" }, "+" + hp.since_first_ms.toFixed(1) + " ms"),
        step ? h("span", { class: "muted" }, "(step " + step + " ms)") : null,
        h("span", { class: "muted" }, fmtTime(hp.time)), hp.replay ? h("span", { class: "pill idle" }, "replay") : null),
      h("div", {}, hp.summary),
      h("div", { class: "sub" }, [hp.stream && hp.stream + " #" + hp.seq, hp.subject, hp.msg_id && "msg id " + hp.msg_id,
        hp.trace_id && "trace " + hp.trace_id].filter(Boolean).join(" · "))));
  }
}

// ---- start ----
async function start() {
  try { state.me = await api("me"); } catch (e) { return; }
  $("#who").textContent = state.me.user + " (" + state.me.role + ")";
  document.body.classList.toggle("viewer", state.me.role !== "admin");
  for (const b of document.querySelectorAll(".tabs button")) b.addEventListener("click", () => showTab(b.dataset.tab));
  $("#logout").addEventListener("click", async () => { try { await api("../logout", { method: "POST" }); } catch (e) { /* go anyway */ } location.href = "/dashboard/login"; });
  $("#rate-filter").addEventListener("input", drawRates);
  $("#dlq-refresh").addEventListener("click", () => loadDLQ(true));
  $("#dlq-stage").addEventListener("change", () => loadDLQ(true));
  $("#dlq-more").addEventListener("click", () => loadDLQ(false));
  $("#dlq-close").addEventListener("click", () => { $("#dlq-detail").hidden = true; state.dlqSel = null; });
  $("#dlq-replay").addEventListener("click", () => dlqAction("replay"));
  $("#dlq-drop").addEventListener("click", () => dlqAction("drop"));
  $("#trace-form").addEventListener("submit", trace);
  const tab = location.hash.slice(1);
  if (["overview", "dlq", "trace"].includes(tab)) showTab(tab);
  connect();
}
document.addEventListener("DOMContentLoaded", start);
