// sluice console: a small single-page app over the broker's JSON API
// (/api/...). Pages are chosen by the URL fragment (#/topics/NAME, ...).
// Everything shown is built with DOM calls and textContent: record keys,
// values and names are data, never markup.
"use strict";

const app = document.getElementById("app");
let timer = null; // the current page's refresh, if any

// h makes an element: h("td", {class: "num"}, "text", child, ...).
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "value") el.value = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function table(headers, rows, attrs) {
  return h("table", attrs,
    h("thead", {}, h("tr", {}, headers.map(c => typeof c === "string" ? h("th", {}, c) : c))),
    h("tbody", {}, rows));
}

function num(v) { return h("td", {class: "num"}, v); }

// api calls the JSON API; a non-2xx answer throws an Error with the
// server's message.
async function api(method, path, body) {
  const opts = {method, headers: {}};
  if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  const resp = await fetch("/api" + path, opts);
  const data = await resp.json();
  if (!resp.ok) throw new Error(data.error || resp.statusText);
  return data;
}

function showError(where, err) {
  where.replaceChildren(h("div", {class: "error", role: "alert"}, String(err.message || err)));
}

function time(ms) { return new Date(ms).toISOString().replace("T", " ").replace("Z", " UTC"); }

function enc(s) { return encodeURIComponent(s); }

// ---- overview ----

// samples are the throughput answers of the overview's refreshes, the
// last 61 (5 minutes at one each 5 s), kept across pages.
const samples = [];

async function sampleThroughput() {
  const t = await api("GET", "/throughput");
  samples.push({time: t.time, total: t.total, complete: t.topics.every(x => x.complete), error: t.error,
    topics: new Map(t.topics.map(x => [x.topic, x]))});
  if (samples.length > 61) samples.shift();
  return t;
}

// rate is the records appended per second between samples a and b, or
// null when it cannot be known.
function rate(a, b, endOf) {
  const ea = endOf(a), eb = endOf(b);
  if (ea === null || eb === null || b.time <= a.time) return null;
  return Math.max(0, eb - ea) / ((b.time - a.time) / 1000);
}

const totalOf = (s) => s.complete ? s.total : null;

function fmtRate(r) { return r === null ? "unknown" : (r >= 100 ? Math.round(r) : r.toFixed(1)) + " records/s"; }

// drawChart plots series, each {name, color, pts: [{time, v}]}, over the
// span of the samples' times t0..t1, with fmt formatting the values. The
// canvas says how many points it drew (data-points) for the tests.
function drawChart(canvas, series, fmt, t0, t1) {
  const ctx = canvas.getContext("2d");
  const w = canvas.width, hgt = canvas.height, pad = 28;
  ctx.clearRect(0, 0, w, hgt);
  const all = series.flatMap(s => s.pts);
  canvas.dataset.points = all.length;
  const top = Math.max(...all.map(p => p.v), 0) || 1;
  ctx.strokeStyle = "#d9dde5";
  ctx.fillStyle = "#667085";
  ctx.font = "11px sans-serif";
  ctx.beginPath(); ctx.moveTo(pad, 4); ctx.lineTo(pad, hgt - pad); ctx.lineTo(w - 4, hgt - pad); ctx.stroke();
  ctx.fillText(fmt(top), pad + 4, 14);
  const span = Math.round((t1 - t0) / 1000);
  const spanText = "last " + (span < 120 ? span + " s" : Math.round(span / 60) + " minutes");
  ctx.fillText(spanText, w - 8 - ctx.measureText(spanText).width, hgt - 10);
  if (series.length > 1) {
    let lx = pad + 4;
    for (const s of series) {
      ctx.fillStyle = s.color;
      ctx.fillRect(lx, hgt - 16, 10, 3);
      ctx.fillStyle = "#667085";
      ctx.fillText(s.name, lx + 14, hgt - 10);
      lx += 24 + ctx.measureText(s.name).width;
    }
  }
  if (all.length === 0) { ctx.fillText("measuring…", pad + 4, hgt / 2); return; }
  const x = (t) => pad + (w - pad - 8) * (t - t0) / Math.max(1, t1 - t0);
  const y = (v) => hgt - pad - (hgt - pad - 20) * v / top;
  for (const s of series) {
    ctx.strokeStyle = s.color;
    ctx.fillStyle = s.color;
    ctx.lineWidth = 2;
    ctx.beginPath();
    s.pts.forEach((p, i) => i === 0 ? ctx.moveTo(x(p.time), y(p.v)) : ctx.lineTo(x(p.time), y(p.v)));
    ctx.stroke();
    for (const p of s.pts) ctx.fillRect(x(p.time) - 2, y(p.v) - 2, 4, 4);
  }
}

// rateSeries is the rate between successive samples of list, by endOf.
function rateSeries(list, endOf) {
  const pts = [];
  for (let i = 1; i < list.length; i++) {
    const r = rate(list[i - 1], list[i], endOf);
    if (r !== null) pts.push({time: list[i].time, v: r});
  }
  return pts;
}

function throughputSection() {
  const n = samples.length;
  const last = samples[n - 1], prev = samples[n - 2];
  const total = prev ? rate(prev, last, totalOf) : null;
  const rows = [...last.topics.values()].filter(t => !t.internal).map(t => {
    const end = (s) => { const x = s.topics.get(t.topic); return x && x.complete ? x.end : null; };
    return {topic: t.topic, end: t.end, r: prev ? rate(prev, last, end) : null};
  }).sort((a, b) => (b.r || 0) - (a.r || 0) || a.topic.localeCompare(b.topic));
  const canvas = h("canvas", {id: "throughput", width: 640, height: 170});
  drawChart(canvas, [{name: "records/s", color: "#2457c5", pts: rateSeries(samples, totalOf)}], fmtRate,
    samples[0].time, last.time);
  return [
    h("h2", {}, "Throughput"),
    h("p", {}, "Records appended, all topics: ", h("b", {id: "rate-total"}, prev ? fmtRate(total) : "measuring…"),
      h("span", {class: "muted"}, " (from the growth of the partitions' end offsets between refreshes)")),
    last.error ? h("p", {class: "muted", id: "throughput-error"}, "Not every end offset could be listed: " + last.error) : null,
    canvas,
    table(["Topic", h("th", {class: "num"}, "Records appended"), h("th", {class: "num"}, "Rate")],
      rows.map(t => h("tr", {"data-topic": t.topic}, h("td", {}, t.topic), num(t.end),
        h("td", {class: "num rate"}, prev ? fmtRate(t.r) : "measuring…"))), {id: "topic-rates"})];
}

// statSamples are this broker's /api/stats answers of the overview's
// refreshes, the last 61, kept across pages like samples.
const statSamples = [];

async function sampleStats() {
  const st = await api("GET", "/stats");
  st.apis = new Map(st.requests.map(a => [apiKey(a), a]));
  statSamples.push(st);
  if (statSamples.length > 61) statSamples.shift();
}

// apiKey names an API's row: the listener (sluice, kafka) and the API.
const apiKey = (a) => a.listener + "/" + a.api;

const STAGES = ["queue", "local", "wait", "send"];
const STAGE_COLORS = {queue: "#b54708", local: "#2457c5", wait: "#067647", send: "#7a5af8"};

function fmtBytes(r) {
  if (r === null) return "unknown";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (r >= 1024 && i < units.length - 1) { r /= 1024; i++; }
  return (i === 0 || r >= 100 ? Math.round(r) : r.toFixed(1)) + " " + units[i];
}

const fmtByteRate = (r) => r === null ? "unknown" : fmtBytes(r) + "/s";

function fmtSeconds(v) {
  if (v === null) return "–";
  if (v >= 1) return v.toFixed(2) + " s";
  if (v >= 0.001) return (v * 1000).toFixed(v >= 0.1 ? 0 : 1) + " ms";
  return Math.round(v * 1e6) + " µs";
}

// stageDelta is one stage's histogram between samples a and b (the
// counts per bucket, the +Inf bucket last) of the row key (apiKey), or
// null when it saw nothing or went back (a restart).
function stageDelta(a, b, key, i) {
  const sa = a.apis.get(key), sb = b.apis.get(key);
  if (!sb) return null;
  const x = sb.stages[i], y = sa ? sa.stages[i] : {count: 0, sum: 0, counts: x.counts.map(() => 0)};
  const count = x.count - y.count;
  if (count <= 0) return null;
  return {count, sum: x.sum - y.sum, counts: x.counts.map((c, j) => c - y.counts[j])};
}

// apiDelta is stageDelta of an API summed over every listener that
// answered it (histograms with the same buckets add), or null.
function apiDelta(a, b, api, i) {
  let out = null;
  for (const r of b.requests) {
    if (r.api !== api) continue;
    const d = stageDelta(a, b, apiKey(r), i);
    if (!d) continue;
    out = out ? {count: out.count + d.count, sum: out.sum + d.sum, counts: out.counts.map((c, j) => c + d.counts[j])} : d;
  }
  return out;
}

// quantile is histogram_quantile's estimate of the q-quantile of a stage
// delta over bounds: linear within the bucket holding the rank; the
// highest bound when the rank is in the +Inf bucket.
function quantile(q, bounds, d) {
  const rank = q * d.count;
  for (let i = 0; i < bounds.length; i++) {
    if (d.counts[i] >= rank) {
      const lo = i === 0 ? 0 : bounds[i - 1], below = i === 0 ? 0 : d.counts[i - 1];
      const inBucket = d.counts[i] - below;
      return inBucket > 0 ? lo + (bounds[i] - lo) * (rank - below) / inBucket : bounds[i];
    }
  }
  return bounds[bounds.length - 1];
}

// brokerSection charts this broker's bytes in and out and its Produce
// latency by stage, and tables each API's requests between the last two
// samples.
function brokerSection() {
  const n = statSamples.length;
  const last = statSamples[n - 1], prev = statSamples[n - 2];
  const t0 = statSamples[0].time;
  const bytesIn = (s) => s.bytes_in, bytesOut = (s) => s.bytes_out;
  const bytes = h("canvas", {id: "bytes-chart", width: 600, height: 170});
  drawChart(bytes, [
    {name: "in", color: "#2457c5", pts: rateSeries(statSamples, bytesIn)},
    {name: "out", color: "#067647", pts: rateSeries(statSamples, bytesOut)}], fmtByteRate, t0, last.time);
  const produceP99 = STAGES.map((stage, i) => {
    const pts = [];
    for (let j = 1; j < n; j++) {
      const d = apiDelta(statSamples[j - 1], statSamples[j], "Produce", i);
      if (d) pts.push({time: statSamples[j].time, v: quantile(0.99, last.buckets, d)});
    }
    return {name: stage, color: STAGE_COLORS[stage], pts};
  });
  const latency = h("canvas", {id: "latency-chart", width: 600, height: 170});
  drawChart(latency, produceP99, fmtSeconds, t0, last.time);
  const secs = prev ? (last.time - prev.time) / 1000 : 0;
  const rows = last.requests.map(a => {
    const ds = STAGES.map((_, i) => prev ? stageDelta(prev, last, apiKey(a), i) : null);
    const d0 = ds[0];
    const mean = d0 ? ds.reduce((m, d) => m + (d ? d.sum / d.count : 0), 0) : null;
    return h("tr", {"data-listener": a.listener, "data-api": a.api},
      h("td", {}, a.listener), h("td", {}, a.api), num(a.count),
      h("td", {class: "num rate"}, d0 && secs > 0 ? (d0.count / secs).toFixed(1) : (prev ? "0.0" : "measuring…")),
      h("td", {class: "num mean"}, fmtSeconds(mean)),
      ds.map((d, i) => h("td", {class: "num p99 " + STAGES[i]}, d ? fmtSeconds(quantile(0.99, last.buckets, d)) : "–")));
  });
  const card = (label, v, id, raw) => h("div", {class: "card"}, h("div", {class: "muted"}, label), h("div", {class: "v", id, "data-value": raw}, v));
  return [
    h("h2", {}, "Broker " + last.broker + ": bytes and latency"),
    h("p", {class: "muted"}, "This broker's own metrics (those of its /metrics): the bytes of the partitions it leads, " +
      "and the requests it answered, between refreshes. Each broker's console shows its own."),
    h("div", {class: "cards"},
      card("Bytes in", prev ? fmtByteRate(rate(prev, last, bytesIn)) : "measuring…", "bytes-in-rate"),
      card("Bytes out", prev ? fmtByteRate(rate(prev, last, bytesOut)) : "measuring…", "bytes-out-rate"),
      card("Produced since start", fmtBytes(last.bytes_in), "bytes-in-total", last.bytes_in),
      card("Consumed since start", fmtBytes(last.bytes_out), "bytes-out-total", last.bytes_out)),
    h("div", {class: "charts"},
      h("figure", {}, h("figcaption", {}, "Bytes in and out per second"), bytes),
      h("figure", {}, h("figcaption", {}, "Produce latency (every listener), p99 of each stage"), latency)),
    table(["Listener", "API", h("th", {class: "num"}, "Requests"), h("th", {class: "num"}, "Requests/s"), h("th", {class: "num"}, "Mean"),
      ...STAGES.map(st => h("th", {class: "num"}, "p99 " + st))], rows, {id: "latency"}),
    h("p", {class: "muted"}, "Stages: queue (waiting for the connection's handler), local (decode, append or read, encode), " +
      "wait (the ISR or the fsync for a produce; the long-poll for a fetch: followers' fetches wait there by design), " +
      "send (until handed to the socket). Mean is the sum of the stages' means.")];
}

// section takes a sample and renders it, or shows the error under title:
// the rest of the overview is shown either way.
async function section(title, sample, render) {
  try {
    await sample();
    return render().filter(x => x !== null);
  } catch (err) {
    return [h("h2", {}, title), h("div", {class: "error"}, String(err.message || err))];
  }
}

async function overview() {
  const c = await api("GET", "/cluster");
  const throughput = await section("Throughput", sampleThroughput, throughputSection);
  const brokerStats = await section("Bytes and latency", sampleStats, brokerSection);
  const served = document.getElementById("served-by");
  served.textContent = c.broker >= 0 ? "broker " + c.broker : "";
  const card = (label, v, id, cls) => h("div", {class: "card"}, h("div", {class: "muted"}, label), h("div", {class: "v " + (cls || ""), id}, v));
  const health = (n) => n > 0 ? "bad" : "ok";
  app.replaceChildren(
    h("h1", {}, "Cluster overview"),
    h("div", {class: "cards"},
      card("Controller", c.controller >= 0 ? "broker " + c.controller : "none", "controller", c.controller < 0 ? "bad" : ""),
      card("Brokers", c.brokers.length, "broker-count"),
      card("Topics", c.topics, "topic-count"),
      card("Partitions", c.partitions, "partition-count"),
      card("Under-replicated", c.under_replicated, "under-replicated", health(c.under_replicated)),
      card("Under min ISR", c.under_min_isr, "under-min-isr", health(c.under_min_isr)),
      card("Offline", c.offline, "offline", health(c.offline))),
    h("h2", {}, "Alerts"),
    h("div", {id: "alerts"}, c.alerts.length === 0 ? h("p", {class: "ok"}, "No alert condition holds.") :
      c.alerts.map(a => h("div", {class: "alert"}, h("b", {}, a.name), ": ", a.detail))),
    h("h2", {}, "Brokers"),
    table(["Id", "Address", "Rack", "State", "Epoch", "Controller", h("th", {class: "num"}, "Leaders"), h("th", {class: "num"}, "Replicas")],
      c.brokers.map(b => h("tr", {"data-broker": b.id},
        num(b.id), h("td", {}, b.addr), h("td", {}, b.rack || ""),
        h("td", {class: b.state === "alive" ? "ok" : "bad"}, b.state), num(b.epoch),
        h("td", {}, b.controller ? "yes" : ""), num(b.leaders), num(b.replicas))), {id: "brokers"}),
    ...throughput,
    ...brokerStats,
    h("p", {class: "muted"}, "Metadata version " + c.metadata_version + "; refreshed every 5 s."));
  timer = setTimeout(() => route(), 5000);
}

// ---- topics ----

async function topics() {
  const list = await api("GET", "/topics");
  const msg = h("div", {id: "create-result"});
  const name = h("input", {id: "new-name", required: true, placeholder: "orders", pattern: "[a-zA-Z0-9._\\-]+"});
  const parts = h("input", {id: "new-partitions", type: "number", min: 1, placeholder: "default"});
  const rf = h("input", {id: "new-rf", type: "number", min: 1, placeholder: "default"});
  const configs = h("textarea", {id: "new-configs", rows: 2, cols: 32, placeholder: "retention.ms=86400000"});
  const form = h("form", {class: "inline", id: "create-topic", onsubmit: async (e) => {
    e.preventDefault();
    const cfg = {};
    for (const line of configs.value.split("\n")) {
      const t = line.trim();
      if (!t) continue;
      const i = t.indexOf("=");
      if (i < 1) { showError(msg, new Error("config line " + JSON.stringify(t) + ": want key=value")); return; }
      cfg[t.slice(0, i).trim()] = t.slice(i + 1).trim();
    }
    try {
      await api("POST", "/topics", {name: name.value, partitions: Number(parts.value) || 0,
        replication_factor: Number(rf.value) || 0, configs: cfg});
      location.hash = "#/topics/" + enc(name.value);
    } catch (err) { showError(msg, err); }
  }},
    h("label", {}, "Name", name), h("label", {}, "Partitions", parts), h("label", {}, "Replication factor", rf),
    h("label", {}, "Configs (key=value per line)", configs), h("button", {type: "submit", id: "create"}, "Create topic"));
  app.replaceChildren(
    h("h1", {}, "Topics"),
    table(["Name", h("th", {class: "num"}, "Partitions"), h("th", {class: "num"}, "Replication"),
      h("th", {class: "num"}, "Under-replicated"), h("th", {class: "num"}, "Offline")],
      list.map(t => h("tr", {"data-topic": t.name},
        h("td", {}, h("a", {href: "#/topics/" + enc(t.name)}, t.name), t.internal ? h("span", {class: "muted"}, " (internal)") : null),
        num(t.partitions), num(t.replication_factor),
        h("td", {class: "num " + (t.under_replicated ? "warn" : "")}, t.under_replicated),
        h("td", {class: "num " + (t.offline ? "bad" : "")}, t.offline))), {id: "topics"}),
    h("h2", {}, "Create a topic"), form, msg);
}

async function topic(name) {
  const t = await api("GET", "/topics/" + enc(name));
  const msg = h("div", {id: "topic-result"});
  const inputs = new Map();
  const cfgRows = t.configs.map(c => {
    const input = h("input", {value: c.value, "data-config": c.name, size: 24});
    inputs.set(c.name, {input, c});
    return h("tr", {},
      h("td", {}, c.name), h("td", {}, input),
      h("td", {class: "muted"}, c.default ? "default" : "set on the topic"),
      h("td", {}, c.default ? null : h("button", {class: "secondary", type: "button", onclick: () => alter({remove: [c.name]})}, "Revert to default")));
  });
  async function alter(change) {
    try {
      await api("PATCH", "/topics/" + enc(name) + "/configs", change);
      await topic(name);
      document.getElementById("topic-result").replaceChildren(h("div", {class: "notice"}, "Configs saved."));
    } catch (err) { showError(msg, err); }
  }
  const save = h("button", {type: "button", id: "save-configs", onclick: () => {
    const set = {};
    for (const [k, {input, c}] of inputs) if (input.value !== c.value) set[k] = input.value;
    if (Object.keys(set).length === 0) { showError(msg, new Error("nothing changed")); return; }
    alter({set});
  }}, "Save changed configs");
  const confirmName = h("input", {id: "delete-confirm", placeholder: "type the topic's name"});
  const del = h("button", {class: "danger", type: "button", id: "delete", disabled: true, onclick: async () => {
    try {
      await api("DELETE", "/topics/" + enc(name));
      location.hash = "#/topics";
    } catch (err) { showError(msg, err); }
  }}, "Delete topic");
  confirmName.addEventListener("input", () => { del.disabled = confirmName.value !== name; });
  app.replaceChildren(
    h("h1", {}, "Topic ", h("span", {id: "topic-name"}, t.name)),
    h("p", {}, t.partitions.length + " partitions, " + t.records + " records retained. ",
      h("a", {href: "#/messages/" + enc(name)}, "Browse messages")),
    msg,
    h("h2", {}, "Partitions"),
    table([h("th", {class: "num"}, "Partition"), h("th", {class: "num"}, "Leader"), h("th", {class: "num"}, "Leader epoch"),
      "Replicas", "ISR", h("th", {class: "num"}, "Start offset"), h("th", {class: "num"}, "End offset"), "Error"],
      t.partitions.map(p => h("tr", {"data-partition": p.partition},
        num(p.partition), h("td", {class: "num " + (p.leader < 0 ? "bad" : "")}, p.leader < 0 ? "none" : p.leader),
        num(p.leader_epoch), h("td", {}, p.replicas.join(", ")),
        h("td", {class: p.isr.length < p.replicas.length ? "warn" : ""}, p.isr.join(", ")),
        num(p.start), num(p.end), h("td", {class: "bad"}, p.error || ""))), {id: "partitions"}),
    h("h2", {}, "Configs"),
    t.internal ? h("p", {class: "muted"}, "An internal topic: its configs are the broker's.") : null,
    table(["Key", "Value", "Source", ""], cfgRows, {id: "configs"}),
    t.internal ? null : save,
    t.internal ? null : h("h2", {}, "Delete"),
    t.internal ? null : h("div", {class: "row"}, h("label", {}, "Deleting removes every record. Confirm with the name:", confirmName), del));
}

// ---- messages ----

async function messages(topicName, query) {
  const list = await api("GET", "/topics");
  const topicSel = h("select", {id: "browse-topic"}, list.map(t => h("option", {value: t.name}, t.name)));
  topicSel.value = topicName || (list.find(t => !t.internal) || list[0] || {}).name || "";
  const partition = h("input", {id: "browse-partition", type: "number", min: 0, value: query.get("partition") || "0"});
  const mode = h("select", {id: "browse-mode"},
    h("option", {value: "oldest"}, "oldest"), h("option", {value: "newest"}, "newest"),
    h("option", {value: "offset"}, "from offset"), h("option", {value: "timestamp"}, "from time"));
  mode.value = query.get("mode") || "oldest";
  const at = h("input", {id: "browse-at", placeholder: "offset, or 2026-12-04T10:00:00Z", value: query.get("at") || ""});
  const limit = h("input", {id: "browse-limit", type: "number", min: 1, max: 500, value: query.get("limit") || "50"});
  const results = h("div", {id: "browse-results"});
  const form = h("form", {class: "inline", id: "browse", onsubmit: (e) => {
    e.preventDefault();
    const q = new URLSearchParams({partition: partition.value, mode: mode.value, at: at.value, limit: limit.value});
    location.hash = "#/messages/" + enc(topicSel.value) + "?" + q;
  }},
    h("label", {}, "Topic", topicSel), h("label", {}, "Partition", partition), h("label", {}, "Start", mode),
    h("label", {}, "Offset or time", at), h("label", {}, "Limit", limit), h("button", {type: "submit"}, "Read"));
  app.replaceChildren(h("h1", {}, "Message browser"),
    h("p", {class: "muted"}, "Reads a partition without a consumer group: nothing is committed."), form, results);
  if (!topicName) return;
  const q = new URLSearchParams({partition: partition.value, limit: limit.value});
  if (mode.value === "newest") q.set("from", "newest");
  if (mode.value === "offset") q.set("offset", at.value);
  if (mode.value === "timestamp") q.set("timestamp", at.value);
  let b;
  try { b = await api("GET", "/topics/" + enc(topicName) + "/records?" + q); }
  catch (err) { showError(results, err); return; }
  const shown = (v) => v.format === "null" ? h("span", {class: "muted"}, "null") :
    h("div", {}, h("pre", {}, v.text), h("span", {class: "fmt"}, v.format + ", " + v.size + " bytes" + (v.truncated ? ", truncated" : "")));
  const dl = (r, part) => h("a", {href: "/api/topics/" + enc(topicName) + "/records/" + r.partition + "/" + r.offset + "/" + part, download: ""}, part);
  const next = new URLSearchParams({partition: b.partition, mode: "offset", at: b.next, limit: limit.value});
  results.replaceChildren(
    h("p", {id: "browse-summary"}, "Partition " + b.partition + ": offsets " + b.start + " to " + b.end + "; " +
      b.records.length + " records from offset " + b.from + ". " + (b.note ? b.note + ". " : ""),
      b.next < b.end ? h("a", {href: "#/messages/" + enc(topicName) + "?" + next, id: "browse-next"}, "Next page") : null),
    table([h("th", {class: "num"}, "Offset"), "Timestamp", "Key", "Value", "Headers", "Download"],
      b.records.map(r => h("tr", {"data-offset": r.offset},
        num(r.offset), h("td", {}, time(r.timestamp)), h("td", {class: "key"}, shown(r.key)), h("td", {class: "value"}, shown(r.value)),
        h("td", {}, r.headers.map(x => h("div", {}, h("b", {}, x.key), ": ", shown(x.value)))),
        h("td", {}, dl(r, "key"), " ", dl(r, "value")))), {id: "records"}));
}

// ---- consumer groups ----

async function groups() {
  const g = await api("GET", "/groups");
  app.replaceChildren(h("h1", {}, "Consumer groups"),
    g.error ? h("div", {class: "error"}, g.error) : null,
    g.groups.length === 0 ? h("p", {class: "muted", id: "no-groups"}, "No consumer groups.") :
    table(["Group", "Type", "State", h("th", {class: "num"}, "Coordinator")],
      g.groups.map(x => h("tr", {"data-group": x.group},
        h("td", {}, h("a", {href: "#/groups/" + enc(x.group)}, x.group)), h("td", {}, x.type), h("td", {}, x.state), num(x.coordinator))), {id: "groups"}),
    h("p", {class: "muted"}, "Queue groups are on the ", h("a", {href: "#/queues"}, "Queue groups"), " page."));
}

async function group(name) {
  const g = await api("GET", "/groups/" + enc(name));
  const topicsOf = [...new Set(g.offsets.map(o => o.topic))];
  const topicSel = h("select", {id: "reset-topic"}, topicsOf.map(t => h("option", {value: t}, t)));
  const to = h("select", {id: "reset-to"}, ["earliest", "latest", "offset", "shift", "time"].map(x => h("option", {value: x}, x)));
  const value = h("input", {id: "reset-value", placeholder: "offset, shift, or 2026-12-04T10:00:00Z"});
  const out = h("div", {id: "reset-result"});
  const apply = h("button", {type: "button", class: "danger", id: "reset-apply", disabled: true}, "Apply reset");
  function body(execute) {
    let v = 0;
    if (to.value === "time") v = Date.parse(value.value);
    else if (to.value === "offset" || to.value === "shift") v = Number(value.value);
    if (Number.isNaN(v)) throw new Error("value " + JSON.stringify(value.value) + ": want a number (or a time)");
    return {topic: topicSel.value, to: to.value, value: v, execute};
  }
  async function run(execute) {
    try {
      const r = await api("POST", "/groups/" + enc(name) + "/reset", body(execute));
      const rows = r.offsets.map(o => h("tr", {"data-partition": o.partition},
        h("td", {}, o.topic), num(o.partition), num(o.current < 0 ? "none" : o.current), num(o.new)));
      out.replaceChildren(
        h("div", {class: execute ? "notice" : ""}, execute ? "Offsets reset." : "Preview: nothing is changed until you apply it."),
        table(["Topic", h("th", {class: "num"}, "Partition"), h("th", {class: "num"}, "Current"), h("th", {class: "num"}, "New")], rows, {id: "reset-plan"}));
      apply.disabled = execute;
      if (execute) {
        const keep = out.cloneNode(true);
        await group(name);
        document.getElementById("reset-result").replaceWith(keep);
      }
    } catch (err) { apply.disabled = true; showError(out, err); }
  }
  apply.addEventListener("click", () => run(true));
  for (const el of [topicSel, to, value]) el.addEventListener("input", () => { apply.disabled = true; });
  app.replaceChildren(
    h("h1", {}, "Group ", h("span", {id: "group-name"}, g.group)),
    h("div", {class: "cards"},
      h("div", {class: "card"}, h("div", {class: "muted"}, "State"), h("div", {class: "v", id: "group-state"}, g.state)),
      h("div", {class: "card"}, h("div", {class: "muted"}, "Members"), h("div", {class: "v", id: "group-members"}, g.members.length)),
      h("div", {class: "card"}, h("div", {class: "muted"}, "Total lag"), h("div", {class: "v", id: "group-lag"}, g.lag)),
      h("div", {class: "card"}, h("div", {class: "muted"}, "Coordinator"), h("div", {class: "v"}, "broker " + g.coordinator))),
    h("h2", {}, "Members"),
    g.members.length === 0 ? h("p", {class: "muted"}, "No members: the group's offsets can be reset.") :
    table(["Member", "Client", "Host", h("th", {class: "num"}, "Epoch"), "Topics", "Assigned"],
      g.members.map(m => h("tr", {},
        h("td", {}, m.member_id), h("td", {}, m.client_id), h("td", {}, m.client_host), num(m.member_epoch),
        h("td", {}, (m.topics || []).join(", ") || m.topic_regex || ""),
        h("td", {}, m.assignment.map(a => a.topic + "[" + a.partition + "]").join(", ")))), {id: "members"}),
    h("h2", {}, "Offsets"),
    table(["Topic", h("th", {class: "num"}, "Partition"), h("th", {class: "num"}, "Committed"), h("th", {class: "num"}, "End"),
      h("th", {class: "num"}, "Lag"), "Member", "Error"],
      g.offsets.map(o => h("tr", {"data-topic": o.topic, "data-partition": o.partition},
        h("td", {}, o.topic), num(o.partition), num(o.committed < 0 ? "none" : o.committed), num(o.end),
        h("td", {class: "num lag"}, o.lag), h("td", {}, o.member || ""), h("td", {class: "bad"}, o.error || ""))), {id: "offsets"}),
    h("h2", {}, "Reset offsets"),
    h("p", {class: "muted"}, "Only while the group has no members. Preview first; apply commits the new offsets."),
    h("div", {class: "row"}, h("label", {}, "Topic", topicSel), h("label", {}, "To", to), h("label", {}, "Value", value),
      h("button", {type: "button", class: "secondary", id: "reset-preview", onclick: () => run(false)}, "Preview"), apply),
    out);
}

// ---- queue groups ----

async function queues() {
  const g = await api("GET", "/queues");
  app.replaceChildren(h("h1", {}, "Queue groups"),
    g.error ? h("div", {class: "error"}, g.error) : null,
    g.groups.length === 0 ? h("p", {class: "muted", id: "no-queues"}, "No queue groups.") :
    table(["Group", h("th", {class: "num"}, "Coordinator")],
      g.groups.map(x => h("tr", {"data-group": x.group},
        h("td", {}, h("a", {href: "#/queues/" + enc(x.group)}, x.group)), num(x.coordinator))), {id: "queues"}));
}

// fmtAge is a lease age (ns; -1: none) as `sluice queue describe` prints
// it: milliseconds, "-" for none.
function fmtAge(ns) {
  if (ns < 0) return "-";
  const ms = Math.round(ns / 1e6);
  return ms < 1000 ? ms + "ms" : (ms / 1000) + "s";
}

async function queue(name) {
  const g = await api("GET", "/queues/" + enc(name));
  const out = h("div", {id: "redrive-result"});
  const confirmRow = h("div", {class: "row", id: "redrive-confirm-row", hidden: true},
    h("span", {}, "Republish every dead letter of " + name + " to its original topic? The group delivers each again as a new record."),
    h("button", {type: "button", class: "danger", id: "redrive-confirm", onclick: () => redrive()}, "Redrive"),
    h("button", {type: "button", class: "secondary", id: "redrive-cancel", onclick: () => { confirmRow.hidden = true; }}, "Cancel"));
  async function redrive() {
    confirmRow.hidden = true;
    try {
      const r = await api("POST", "/queues/" + enc(name) + "/redrive", {});
      const keep = h("div", {class: "notice", id: "redrive-done"},
        r.results.length === 0 ? "No dead-letter topic to redrive." :
        r.results.map(x => x.dead_letter_topic + ": " + x.republished + " dead letters republished" +
          (x.skipped ? " (" + x.skipped + " without an origin header skipped)" : "")).join("; "));
      await queue(name);
      document.getElementById("redrive-result").replaceChildren(keep);
    } catch (err) { showError(out, err); }
  }
  app.replaceChildren(
    h("h1", {}, "Queue group ", h("span", {id: "queue-name"}, g.group)),
    h("div", {class: "cards"},
      h("div", {class: "card"}, h("div", {class: "muted"}, "Available"), h("div", {class: "v", id: "queue-available"}, g.available)),
      h("div", {class: "card"}, h("div", {class: "muted"}, "Acquired"), h("div", {class: "v", id: "queue-acquired"}, g.acquired)),
      h("div", {class: "card"}, h("div", {class: "muted"}, "Dead letters"), h("div", {class: "v", id: "queue-dead"}, g.dead_lettered)),
      h("div", {class: "card"}, h("div", {class: "muted"}, "Partitions at cap"),
        h("div", {class: "v" + (g.at_cap > 0 ? " warn" : ""), id: "queue-at-cap"}, g.at_cap)),
      h("div", {class: "card"}, h("div", {class: "muted"}, "Lease"), h("div", {class: "v"}, fmtAge(g.lease_ns)))),
    h("h2", {}, "Partitions"),
    table(["Topic", h("th", {class: "num"}, "Partition"), h("th", {class: "num"}, "Start"), h("th", {class: "num"}, "End"),
      h("th", {class: "num"}, "Available"), h("th", {class: "num"}, "Acquired"), h("th", {class: "num"}, "Accepted"),
      h("th", {class: "num"}, "Archived"), h("th", {class: "num"}, "Dead-lettered"), h("th", {class: "num"}, "Oldest unacked"), "At cap"],
      g.partitions.map(p => h("tr", {"data-topic": p.topic, "data-partition": p.partition},
        h("td", {}, p.topic), num(p.partition), num(p.start_offset), num(p.end_offset), num(p.available), num(p.acquired),
        num(p.accepted), num(p.archived), num(p.dead_lettered), num(fmtAge(p.oldest_acquired_ns)),
        h("td", {class: p.at_cap ? "warn" : ""}, p.at_cap ? "yes" : "-"))), {id: "queue-partitions"}),
    h("h2", {}, "Dead letters"),
    h("p", {class: "muted"}, "Redrive republishes the dead letters (each topic's <topic>.dlq) to their original topics, " +
      "from where the last redrive stopped, as `sluice queue redrive " + name + "` does."),
    h("div", {class: "row"}, h("button", {type: "button", class: "secondary", id: "redrive",
      onclick: () => { confirmRow.hidden = false; }}, "Redrive dead letters…")),
    confirmRow, out);
}

// ---- routing ----

async function route() {
  clearTimeout(timer);
  timer = null;
  const frag = location.hash.replace(/^#/, "") || "/";
  const [path, qs] = frag.split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  const query = new URLSearchParams(qs || "");
  const page = parts[0] || "overview";
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.dataset.page === page);
  try {
    switch (page) {
      case "overview": await overview(); break;
      case "topics": parts[1] ? await topic(parts[1]) : await topics(); break;
      case "messages": await messages(parts[1], query); break;
      case "groups": parts[1] ? await group(parts[1]) : await groups(); break;
      case "queues": parts[1] ? await queue(parts[1]) : await queues(); break;
      default: app.replaceChildren(h("p", {class: "error"}, "No page " + path));
    }
    document.body.dataset.loaded = location.hash || "#/";
  } catch (err) {
    showError(app, err);
    document.body.dataset.loaded = "error";
  }
}

window.addEventListener("hashchange", route);
route();
