// The reliactl dashboard: polls the JSON API (no CDN, no framework), draws sparklines as SVG.
"use strict";
// ?refresh=MS, kept between 1 s (/?refresh=0 made one tab send ~130 requests a second) and
// an hour (setInterval/setTimeout treat more than 2^31-1 ms as 0); not a number: 2 s.
const REFRESH_DEFAULT_MS = 2000, REFRESH_MIN_MS = 1000, REFRESH_MAX_MS = 3600000;
function refreshMs(search) {
  const given = new URLSearchParams(search).get("refresh");
  const ms = given === null || given.trim() === "" ? NaN : Number(given);
  if (!Number.isFinite(ms)) return REFRESH_DEFAULT_MS;
  return Math.min(REFRESH_MAX_MS, Math.max(REFRESH_MIN_MS, ms));
}
const REFRESH_MS = refreshMs(location.search);
const HISTORY_MS = 30000;
let history = {};
let lastHistory = 0;

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v; else node.setAttribute(k, v);
  }
  for (const child of children) node.append(child);
  return node;
}

function fmt(value, unit) {
  if (value === null || value === undefined) return "-";
  if (unit === "s") return value < 1 ? `${Math.round(value * 1000)}ms` : `${value.toFixed(2)}s`;
  if (unit === "%") return `${value.toFixed(1)}%`;
  return `${Number(value.toPrecision(6))}${unit || ""}`;
}

// As the `runs` table writes them (units.format_size_short, format_seconds_short).
function size(bytes) {
  if (typeof bytes !== "number" || !(bytes >= 0)) return "-";
  let value = bytes;
  for (const unit of ["B", "K", "M", "G", "T"]) {
    if (unit === "B" && value < 1024) return `${Math.trunc(value)}B`;
    if (unit !== "B") {
      if (value < 9.95) return `${value.toFixed(1)}${unit}`;
      if (Math.round(value) < 1024 || unit === "T") return `${Math.round(value)}${unit}`;
    }
    value /= 1024;
  }
  return "-";
}

function cpu(seconds) {
  if (typeof seconds !== "number" || !(seconds >= 0)) return "-";
  if (seconds < 9.995) return `${seconds.toFixed(2)}s`;
  if (seconds < 59.95) return `${seconds.toFixed(1)}s`;
  if (seconds < 60) return "60s";
  let total = Math.round(seconds), text = "";  // units.format_duration: "1h6m40s"
  for (const [unit, span] of [["d", 86400], ["h", 3600], ["m", 60], ["s", 1]]) {
    const count = Math.floor(total / span);
    total -= count * span;
    if (count) text += `${count}${unit}`;
  }
  return text;
}

function bound(text) {
  if (!text) return null;
  const body = String(text).replace(/^@/, "");
  const end = body.includes(":") ? body.split(":")[1] : body;
  const n = parseFloat(end);
  return Number.isFinite(n) ? n : null;
}

function sparkline(check, info) {
  const NS = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(NS, "svg");
  svg.setAttribute("class", "spark");
  svg.setAttribute("viewBox", "0 0 200 40");
  svg.setAttribute("preserveAspectRatio", "none");
  svg.setAttribute("role", "img");
  const series = [];
  for (const a of info.aggregates || []) if (a.max !== null) series.push([a.start_at_epoch, a.max]);
  for (const p of info.points || []) if (p.value !== null) series.push([p.at_epoch, p.value]);
  svg.setAttribute("aria-label", `${check.name}: ${series.length} points in 24 h`);
  const warn = bound(check.warn), crit = bound(check.critical);
  const values = series.map((s) => s[1]).concat([warn, crit].filter((v) => v !== null));
  if (!series.length) return svg;
  const now = Date.now() / 1000, since = now - 86400;
  const lo = Math.min(0, ...values), hi = Math.max(...values, lo + 1);
  const x = (t) => ((t - since) / 86400) * 200;
  const y = (v) => 38 - ((v - lo) / (hi - lo)) * 36;
  for (const [value, cls] of [[warn, "warn"], [crit, "crit"]]) {
    if (value === null) continue;
    const line = document.createElementNS(NS, "line");
    line.setAttribute("x1", 0); line.setAttribute("x2", 200);
    line.setAttribute("y1", y(value)); line.setAttribute("y2", y(value));
    line.setAttribute("class", cls);
    svg.append(line);
  }
  const path = document.createElementNS(NS, "polyline");
  path.setAttribute("class", "line");
  path.setAttribute("points", series.map(([t, v]) => `${x(t).toFixed(1)},${y(v).toFixed(1)}`).join(" "));
  svg.append(path);
  return svg;
}

// What `health` and `jobs` print beside a silenced, flapping or acknowledged check or job
// (alertstate.CheckNote.text), in words: the marker never relies on colour.
function notes(item) {
  const parts = [];
  const s = item.silenced;
  if (s) {
    parts.push(`silenced by ${s.by || "?"}${s.until ? ` until ${s.until}` : ""}` +
      (s.reason ? `: ${s.reason}` : ""));
  }
  if (item.flapping) parts.push("FLAPPING");
  const a = item.acknowledged;
  if (a) parts.push(`acknowledged by ${a.by || "?"}${a.reason ? `: ${a.reason}` : ""}`);
  return parts;
}

function noteNodes(item) {
  return notes(item).map((text) => el("div", {
    class: `note ${text.split(" ")[0].toLowerCase()}`,
  }, text));
}

async function getJSON(url) {
  const res = await fetch(url, { cache: "no-store" });
  if (!res.ok && res.status !== 503) throw new Error(`${url}: ${res.status}`);
  return res.json();
}

function renderHealth(doc) {
  const overall = document.getElementById("overall");
  const status = doc.status || "UNKNOWN";
  overall.textContent = status;
  overall.className = `badge ${status}`;
  document.title = `${status} · reliactl`;
  const cards = document.getElementById("checks");
  cards.replaceChildren();
  for (const c of doc.checks || []) {
    const info = history[c.name] || {};
    cards.append(el("div", { class: `card ${c.status}`, "data-check": c.name },
      el("div", { class: "row" }, el("span", { class: "name" }, c.name),
        el("span", { class: `badge ${c.status}` }, c.status)),
      el("div", { class: "row" }, el("span", {}, fmt(c.value, c.unit)),
        el("span", { class: "muted" }, [c.warn && `warn ${c.warn}`, c.critical && `crit ${c.critical}`].filter(Boolean).join(" · "))),
      sparkline(c, info),
      ...noteNodes(c),
      el("div", { class: "msg" }, c.message || "")));
  }
  document.getElementById("updated").textContent = doc.checked_at ? `checked ${doc.checked_at}` : "";
}

async function act(name, action) {
  const token = sessionStorage.getItem("reliactl-token") || "";
  const res = await fetch(`/api/breakers/${encodeURIComponent(name)}/${action}`, {
    method: "POST",
    headers: token ? { Authorization: `Bearer ${token}` } : {},
  });
  const body = await res.json().catch(() => ({}));
  document.getElementById("action").textContent =
    res.ok ? `${name}: ${body.was} → ${body.now}` : `${action} ${name} refused: ${body.error || res.status}`;
  refresh();
}

function renderBreakers(doc) {
  const body = document.querySelector("#breakers tbody");
  body.replaceChildren();
  for (const b of doc.breakers || []) {
    const reset = el("button", { "data-action": "reset" }, "reset");
    reset.addEventListener("click", () => act(b.name, "reset"));
    const trip = el("button", { "data-action": "trip" }, "trip");
    trip.addEventListener("click", () => act(b.name, "trip"));
    body.append(el("tr", { "data-breaker": b.name }, el("td", {}, b.name),
      el("td", { class: `state-${b.state}` }, b.state.replace("_", "-")),
      el("td", {}, String(b.consecutive_failures)), el("td", {}, b.retry_in || "-"),
      el("td", {}, reset, trip)));
  }
  if (!(doc.breakers || []).length) body.append(el("tr", {}, el("td", { colspan: "5", class: "muted" }, "no breakers yet")));
}

function renderRuns(doc) {
  const body = document.querySelector("#runs tbody");
  body.replaceChildren();
  for (const r of doc.runs || []) {
    const started = typeof r.started_at === "number" ? new Date(r.started_at * 1000).toISOString().slice(0, 19) + "Z" : String(r.started_at);
    body.append(el("tr", {}, el("td", {}, r.name), el("td", {}, r.outcome), el("td", {}, r.host || "-"),
      el("td", {}, started), el("td", {}, r.duration === null ? "-" : fmt(r.duration, "s")),
      el("td", {}, size(r.peak_rss)), el("td", {}, cpu(r.cpu_time))));
  }
  if (!(doc.runs || []).length) body.append(el("tr", {}, el("td", { colspan: "7", class: "muted" }, "no runs recorded")));
}

const SEVERITY = { CRITICAL: 3, UNKNOWN: 2, WARNING: 1, OK: 0 };

function renderJobs(doc) {
  const body = document.querySelector("#jobs tbody");
  body.replaceChildren();
  // Overdue (missed) jobs first, then by status, then by name.
  const jobs = (doc.jobs || []).slice().sort((a, b) =>
    (b.overdue - a.overdue) || ((SEVERITY[b.status] || 0) - (SEVERITY[a.status] || 0)) ||
    a.name.localeCompare(b.name));
  for (const j of jobs) {
    const status = j.overdue ? `${j.status} (overdue)` : j.status;
    body.append(el("tr", { "data-job": j.name, title: j.message || "" },
      el("td", {}, j.name + (j.declared ? "" : " (not declared)")),
      el("td", {}, el("span", { class: `badge ${j.status}` }, status), ...noteNodes(j)),
      el("td", {}, j.schedule || "-"), el("td", {}, j.last_success_at || "never"),
      el("td", {}, String(j.consecutive_failures))));
  }
  if (!jobs.length) body.append(el("tr", {}, el("td", { colspan: "5", class: "muted" }, "no jobs declared or run")));
}

async function refresh() {
  try {
    if (Date.now() - lastHistory > HISTORY_MS) {
      const doc = await getJSON("/api/history?since=24h&max_points=120");
      history = Object.fromEntries(doc.checks.map((c) => [c.name, c]));
      lastHistory = Date.now();
    }
    const [health, breakers, jobs, runs] = await Promise.all([
      getJSON("/api/health"), getJSON("/api/breakers"), getJSON("/api/jobs"),
      getJSON("/api/runs?limit=15")]);
    renderHealth(health); renderBreakers(breakers); renderJobs(jobs); renderRuns(runs);
  } catch (err) {
    document.getElementById("updated").textContent = `update failed: ${err.message}`;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  const input = document.getElementById("token");
  input.value = sessionStorage.getItem("reliactl-token") || "";
  input.addEventListener("change", () => sessionStorage.setItem("reliactl-token", input.value.trim()));
  // The next refresh REFRESH_MS after this one ended: never two polls in flight.
  const poll = async () => { await refresh(); setTimeout(poll, REFRESH_MS); };
  poll();
});
