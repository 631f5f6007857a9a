// Nexus monitor dashboard: plain JS, no build step. Live data from /api/stream (server-sent events):
// a `snapshot` (GET /api/overview's body) every second and an `alert` on every transition.
// Charts are drawn as SVG paths; their history is preloaded from /api/series/<name>.
"use strict";

const KEEP_MS = 10 * 60 * 1000; // chart span
const COLORS = ["#58a6ff", "#3fb950", "#d29922", "#f85149", "#bc8cff", "#39c5cf", "#ff7b72", "#e3b341"];
const charts = {}; // chart id -> {name -> [[ms, value], ...]}
let historyList = [];

// -- small helpers ---------------------------------------------------------------------------------

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") el.className = v;
    else if (k === "style") el.style.cssText = v;
    else el.setAttribute(k, v);
  }
  for (const c of children) el.append(c instanceof Node ? c : document.createTextNode(c == null ? "" : String(c)));
  return el;
}

const fmt = {
  pct: (x) => (x == null ? "–" : (100 * x).toFixed(1) + "%"),
  num: (x, d = 1) => (x == null ? "–" : Number(x).toLocaleString("en-US", { minimumFractionDigits: d, maximumFractionDigits: d })),
  ms: (x) => (x == null ? "–" : x < 1 ? x.toFixed(3) : x < 100 ? x.toFixed(2) : x.toFixed(0)),
  money: (x) => (x == null ? "–" : Number(x).toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 })),
  age: (s) => (s < 10 ? s.toFixed(1) + "s" : s < 120 ? s.toFixed(0) + "s" : (s / 60).toFixed(0) + "m"),
  time: (ns) => new Date(ns / 1e6).toLocaleTimeString("en-GB"),
};

function healthClass(x) {
  if (x == null) return "";
  return x >= 0.8 ? "ok" : x >= 0.5 ? "warn" : "bad";
}

function healthCell(x) {
  const color = { ok: "var(--ok)", warn: "var(--warn)", bad: "var(--bad)", "": "var(--dim)" }[healthClass(x)];
  const width = x == null ? 0 : Math.round(100 * x);
  return h("td", { class: "health" },
    h("span", { class: "bar" }, h("span", { style: `width:${width}%;background:${color}` })),
    h("span", { class: "health-value " + healthClass(x) }, x == null ? "–" : x.toFixed(2)));
}

function badge(text) {
  return h("span", { class: "badge " + text }, text);
}

function num(text, cls) {
  return h("td", { class: "num " + (cls || "") }, text);
}

function fillBody(tableId, emptyId, rows) {
  const body = document.querySelector(`#${tableId} tbody`);
  body.replaceChildren(...rows);
  if (emptyId) document.getElementById(emptyId).style.display = rows.length ? "none" : "";
}

// -- charts ----------------------------------------------------------------------------------------

function push(chartId, name, ms, value) {
  if (value == null || !isFinite(value)) return;
  const lines = (charts[chartId] ||= {});
  const pts = (lines[name] ||= []);
  if (pts.length && ms <= pts[pts.length - 1][0]) return;
  pts.push([ms, value]);
  while (pts.length && pts[0][0] < ms - KEEP_MS) pts.shift();
}

function niceMax(v) {
  if (v <= 0) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function drawChart(chartId, opts = {}) {
  const svg = document.getElementById(chartId);
  if (!svg) return;
  const lines = charts[chartId] || {};
  const W = 600, H = svg.viewBox.baseVal.height || 180, L = 44, R = 8, T = 8, B = 18;
  const all = Object.values(lines).flat();
  const now = Date.now();
  // The x axis spans the data (at least a minute, at most KEEP_MS), so a fresh page is not a sliver.
  const oldest = Math.min(now, ...all.map((p) => p[0]));
  const span = Math.min(KEEP_MS, Math.max(60000, now - oldest));
  const x0 = now - span;
  let yMin = opts.yMin ?? Math.min(0, ...all.map((p) => p[1]));
  let yMax = opts.yMax ?? niceMax(Math.max(...all.map((p) => p[1]), 0));
  if (yMax <= yMin) yMax = yMin + 1;
  const sx = (t) => L + ((t - x0) / span) * (W - L - R);
  const sy = (v) => T + (1 - (v - yMin) / (yMax - yMin)) * (H - T - B);
  const ns = "http://www.w3.org/2000/svg";
  const el = (tag, attrs, text) => {
    const e = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    if (text != null) e.textContent = text;
    return e;
  };
  const kids = [];
  if (!all.length) {
    svg.replaceChildren(el("text", { x: W / 2, y: H / 2, "text-anchor": "middle" }, "no data yet"));
    return;
  }
  for (let i = 0; i <= 4; i++) {
    const v = yMin + (i / 4) * (yMax - yMin);
    kids.push(el("line", { class: "grid", x1: L, x2: W - R, y1: sy(v), y2: sy(v) }));
    kids.push(el("text", { x: L - 4, y: sy(v) + 3, "text-anchor": "end" }, opts.fmt ? opts.fmt(v) : +v.toPrecision(3)));
  }
  for (let i = 0; i <= 5; i++) {
    const ago = (span * i) / 5;
    const label = i === 0 ? "now" : ago < 120000 ? `-${Math.round(ago / 1000)}s` : `-${(ago / 60000).toFixed(ago % 60000 ? 1 : 0)}m`;
    kids.push(el("text", { x: sx(now - ago), y: H - 4, "text-anchor": i === 5 ? "start" : i === 0 ? "end" : "middle" }, label));
  }
  Object.entries(lines).forEach(([name, pts], i) => {
    if (!pts.length) return;
    const d = pts.map((p, j) => `${j ? "L" : "M"}${sx(Math.max(p[0], x0)).toFixed(1)},${sy(p[1]).toFixed(1)}`).join("");
    kids.push(el("path", { d, stroke: COLORS[i % COLORS.length], "data-series": name }));
  });
  svg.replaceChildren(...kids);
  let legend = svg.nextElementSibling;
  if (!legend || !legend.classList.contains("legend")) {
    legend = h("div", { class: "legend" });
    svg.after(legend);
  }
  legend.replaceChildren(...Object.keys(lines).map((name, i) =>
    h("span", {}, h("i", { style: `background:${COLORS[i % COLORS.length]}` }), name)));
}

async function preload(chartId, seriesName, label) {
  try {
    const r = await fetch(`/api/series/${encodeURIComponent(seriesName)}?seconds=${KEEP_MS / 1000}`);
    if (!r.ok) return;
    const body = await r.json();
    for (const [ms, v] of body.points) push(chartId, label, ms, v);
  } catch (e) {
    /* history is a nicety: live points still arrive */
  }
}

async function preloadAll() {
  let names = [];
  try {
    names = (await (await fetch("/api/series")).json()).names;
  } catch (e) {
    return;
  }
  const jobs = [preload("chart-health", "system.health", "system"),
    preload("chart-throughput", "throughput.md_rate", "market data"),
    preload("chart-throughput", "throughput.exec_rate", "exec reports")];
  for (const n of names) {
    let m = n.match(/^latency\.(.+)\.p99_ms$/);
    if (m) jobs.push(preload("chart-latency", n, m[1]));
    m = n.match(/^risk\.(.+)\.pnl$/);
    if (m) jobs.push(preload("chart-pnl", n, m[1]));
  }
  await Promise.all(jobs);
  drawAll();
}

function drawAll() {
  drawChart("chart-health", { yMin: 0, yMax: 1, fmt: (v) => v.toFixed(2) });
  drawChart("chart-throughput");
  drawChart("chart-latency", { fmt: (v) => fmt.ms(v) });
  drawChart("chart-pnl", { fmt: (v) => fmt.num(v, 0) });
}

// -- rendering a snapshot --------------------------------------------------------------------------

function renderServices(services) {
  fillBody("services", null, services.map((s) => {
    const queues = s.queues.map((q) =>
      `${q.name} ${fmt.num(q.depth, 0)}${q.limit ? "/" + fmt.num(q.limit, 0) : ""}` +
      (q.eta_seconds != null && q.eta_seconds < 3600 ? ` (limit in ${q.eta_seconds.toFixed(0)}s)` : "")).join(", ");
    return h("tr", { "data-key": s.key, class: "status-" + s.status },
      h("td", {}, s.service), h("td", {}, s.instance), h("td", {}, badge(s.status === "up" ? s.state : s.status)),
      healthCell(s.health), num(fmt.pct(s.availability)), num(fmt.age(s.heartbeat_age), "hb-age"),
      num(fmt.num(s.cpu_pct) + "%"), num(fmt.num(s.rss_mb, 0) + " MB"), num(fmt.ms(s.loop_lag_ms) + " ms"),
      num(fmt.num(s.msgs_in_rate), "in-rate"), num(fmt.num(s.msgs_out_rate), "out-rate"),
      num(fmt.num(s.error_rate, 2), s.error_rate > 0 ? "bad" : ""), h("td", { class: "queues" }, queues || "–"));
  }));
}

function renderFeeds(feeds) {
  fillBody("feeds", "feeds-empty", feeds.map((f) =>
    h("tr", { "data-feed": f.feed },
      h("td", {}, f.feed), h("td", {}, f.venue), h("td", { class: "state" }, badge(f.state)), healthCell(f.health),
      num(fmt.pct(f.availability)), h("td", { class: "active" }, f.active || "–"), num(fmt.num(f.msgs_rate)),
      num(fmt.num(f.gaps_total, 0)), num(fmt.num(f.failovers_total, 0)), h("td", { class: "dim" }, f.reason))));
}

function renderLatency(latency) {
  const rows = latency.filter((l) => l.scope === "all" || latency.filter((x) => x.stage === l.stage).length > 2);
  fillBody("latency", "latency-empty", rows.map((l) =>
    h("tr", { "data-stage": l.stage, "data-scope": l.scope, class: l.breach ? "bad" : "" },
      h("td", {}, l.stage), h("td", {}, l.scope), num(fmt.num(l.window.count, 0), "count"),
      num(fmt.ms(l.window.p50)), num(fmt.ms(l.window.p95)), num(fmt.ms(l.window.p99), "p99"), num(fmt.ms(l.window.max)),
      num(l.target_ms == null ? "–" : fmt.ms(l.target_ms)))));
}

function alertItem(a, when) {
  return h("li", { "data-name": a.name, "data-source": a.source, "data-state": a.state || "raised" },
    badge(a.state === "cleared" ? "cleared" : a.severity), h("strong", {}, a.name),
    h("span", { class: "when" }, fmt.time(when)), h("span", { class: "text" }, `${a.source} — ${a.text}`));
}

function renderAlerts(active, counts) {
  document.getElementById("alerts-active").replaceChildren(...active.map((a) => alertItem(a, a.raised_ts)));
  document.getElementById("alerts-empty").style.display = active.length ? "none" : "";
  const el = document.getElementById("alert-counts");
  el.textContent = `${counts.critical} crit · ${counts.warning} warn`;
  el.className = "big " + (counts.critical ? "bad" : counts.warning ? "warn" : "ok");
}

function renderHistory() {
  document.getElementById("alerts-history").replaceChildren(...historyList.slice(0, 100).map((a) => alertItem(a, a.ts)));
}

function renderAccounts(accounts) {
  fillBody("accounts", "accounts-empty", accounts.map((a) =>
    h("tr", { "data-account": a.account },
      h("td", {}, a.account), h("td", {}, badge(a.state)), num(fmt.money(a.realised_pnl)),
      num(fmt.money(a.unrealised_pnl)), num(fmt.money(a.total_pnl), "total-pnl " + (a.total_pnl < 0 ? "bad" : "ok")),
      num(fmt.money(a.gross_exposure)), num(fmt.money(a.net_exposure)), num(a.open_orders), num(a.rejects_total))));
}

function renderPortfolios(portfolios) {
  const box = document.getElementById("portfolios");
  box.replaceChildren(...portfolios.map((p) => {
    const maxAbs = Math.max(0.0001, ...p.weights.map(Math.abs));
    const rows = p.symbols.map((sym, i) => {
      const w = p.weights[i];
      const width = (50 * Math.abs(w)) / maxAbs;
      const left = w >= 0 ? 50 : 50 - width;
      return h("div", { class: "row", "data-symbol": sym },
        h("span", {}, sym),
        h("span", { class: "track" }, h("span", { class: "fill", style: `left:${left}%;width:${width}%;background:${w >= 0 ? "var(--ok)" : "var(--bad)"}` })),
        h("span", { class: "num weight" }, (100 * w).toFixed(1) + "%"));
    });
    return h("div", { class: "weights", "data-portfolio": p.portfolio },
      h("div", { class: "dim" }, `${p.portfolio} · ${p.objective} · ${p.status} · exp. return ${fmt.pct(p.exp_return)} · vol ${fmt.pct(p.volatility)} · Sharpe ${fmt.num(p.sharpe, 2)}`),
      ...rows);
  }));
  document.getElementById("portfolios-empty").style.display = portfolios.length ? "none" : "";
}

function render(o) {
  const sh = document.getElementById("system-health");
  sh.textContent = o.system_health.toFixed(2);
  sh.className = "big " + healthClass(o.system_health);
  document.getElementById("md-rate").textContent = fmt.num(o.throughput.md_rate) + "/s";
  document.getElementById("exec-rate").textContent = fmt.num(o.throughput.exec_rate) + "/s";
  document.getElementById("pub-rate").textContent = fmt.num(o.throughput.published_rate) + "/s";
  document.getElementById("snapshot-seq").textContent = o.seq;
  document.getElementById("updated").textContent = fmt.time(o.ts);
  renderServices(o.services);
  renderFeeds(o.feeds);
  renderLatency(o.latency);
  renderAlerts(o.alerts, o.alert_counts);
  renderAccounts(o.accounts);
  renderPortfolios(o.portfolios);

  const ms = o.ts / 1e6;
  push("chart-health", "system", ms, o.system_health);
  push("chart-throughput", "market data", ms, o.throughput.md_rate);
  push("chart-throughput", "exec reports", ms, o.throughput.exec_rate);
  for (const l of o.latency) if (l.scope === "all" && l.window.count) push("chart-latency", l.stage, ms, l.window.p99);
  for (const a of o.accounts) push("chart-pnl", a.account, ms, a.total_pnl);
  drawAll();
}

// -- wiring ----------------------------------------------------------------------------------------

function setConn(ok, text) {
  const el = document.getElementById("conn");
  el.textContent = text;
  el.className = "badge " + (ok ? "up" : "down");
}

async function start() {
  try {
    const r = await fetch("/api/alerts?limit=100");
    historyList = (await r.json()).history;
    renderHistory();
  } catch (e) {
    /* the stream below still brings new alerts */
  }
  preloadAll();
  const es = new EventSource("/api/stream");
  es.addEventListener("open", () => setConn(true, "live"));
  es.addEventListener("error", () => setConn(false, "reconnecting"));
  es.addEventListener("snapshot", (e) => {
    setConn(true, "live");
    render(JSON.parse(e.data));
  });
  es.addEventListener("alert", (e) => {
    historyList.unshift(JSON.parse(e.data));
    historyList = historyList.slice(0, 200);
    renderHistory();
  });
}

start();
