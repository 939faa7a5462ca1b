// kizashi's workspace page: the portfolio strip, the at-risk queue as a heatmap, and one
// account's story. Plain JavaScript; every number comes from /v1 (the page holds no data).
"use strict";

const TOKEN_KEY = "kizashi.token";
const REFRESH_MS = 5000;
const $ = (id) => document.getElementById(id);
let timer = null;
let loginPending = null;
let lastQueueHash = "#/";

// ---- API access (bearer token from sessionStorage; a 401 asks for it again) ----

class Unauthorized extends Error {}

async function api(path, post) {
  const headers = {};
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers["Authorization"] = "Bearer " + token;
  const init = { headers };
  if (post !== undefined) {
    headers["Content-Type"] = "application/json";
    init.method = "POST";
    init.body = JSON.stringify(post);
  }
  const res = await fetch(path, init);
  if (res.status === 401) throw new Unauthorized();
  let body = null;
  try { body = await res.json(); } catch (_) { body = null; }
  return { status: res.status, body };
}

function askToken(message) {
  if (!loginPending) {
    loginPending = new Promise((resolve) => {
      const form = $("login");
      $("app").hidden = true;
      form.hidden = false;
      const err = $("login-error");
      err.hidden = !message;
      err.textContent = message || "";
      $("token").focus();
      form.onsubmit = (e) => {
        e.preventDefault();
        sessionStorage.setItem(TOKEN_KEY, $("token").value.trim());
        form.hidden = true;
        $("app").hidden = false;
        loginPending = null;
        resolve();
      };
    });
  }
  return loginPending;
}

// ---- formatting ----

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") e.className = v; else e.setAttribute(k, v);
  }
  for (const c of children.flat(Infinity)) if (c !== null && c !== undefined) e.append(c instanceof Node ? c : String(c));
  return e;
}

const money = (x) => (x === null || x === undefined) ? "—"
  : "$" + Number(x).toLocaleString("en-US", { maximumFractionDigits: 0 });
const num = (x, d) => (x === null || x === undefined) ? "—"
  : Number(x).toLocaleString("en-US", { maximumFractionDigits: d === undefined ? 1 : d });
// Measures' names for people and their units, from the server's one table (`/v1/summary`'s
// `measures`); a name the table lacks (a rule's) is written with spaces.
let MEASURES = {};
const label = (m) => (MEASURES[m] && MEASURES[m].label) || m.replace(/_/g, " ");
// A measure's value as people read it: ratios as percentages, days as days.
function fmtValue(m, v) {
  if (v === null || v === undefined) return "no data";
  const unit = MEASURES[m] && MEASURES[m].unit;
  if (unit === "ratio") return num(v * 100, 0) + "%";
  if (unit === "days") return num(v, 0) + " d";
  if (unit === "csat") return num(v, 1) + " / 5";
  return num(v, 1);
}
// Days since 1970 of a YYYY-MM-DD date.
const dayNumOf = (s) => Math.floor(Date.parse(s + "T00:00:00Z") / 86400000);
// A date with how far it is from `today` (days since 1970): "2026-05-04 (in 148 days)".
function whenFrom(date, today) {
  if (!date) return "—";
  if (today === null || today === undefined) return date;
  const d = dayNumOf(date) - today;
  const rel = d === 0 ? "today" : d > 0 ? "in " + d + (d === 1 ? " day" : " days") : Math.abs(d) + (d === -1 ? " day ago" : " days ago");
  return date + " (" + rel + ")";
}
// An event time without milliseconds: "2026-11-20 16:30 UTC".
const fmtTime = (t) => t ? String(t).replace("T", " ").replace(/:\d\d(\.\d+)?Z$/, " UTC") : "—";
// The board's today: the day of /v1/summary (the newest alert's), as days since 1970.
let TODAY = null;

function measureClass(value, points) {
  if (value === null || value === undefined || points === null || points === undefined) return "m-nodata";
  if (points <= 20) return "m-red";
  if (points < 70) return "m-yellow";
  return "m-green";
}

// From red (0 points) to green (100 points), light enough for dark text.
function measureColour(points) {
  const p = Math.max(0, Math.min(100, points));
  return "hsl(" + Math.round(p * 1.2) + ", 65%, 80%)";
}

// ---- routing: #/account/<id>, or the queue's state as #sort=..&owner=..&offset=.. ----

// A hash is typed, pasted or linked from anywhere: one that does not decode (`%E0%A4%A`) is a
// "bad link" view with a message, never an exception that leaves the page blank.
function route() {
  const h = location.hash || "#/";
  const m = h.match(/^#\/account\/(.+)$/);
  if (m) {
    try { return { view: "account", id: decodeURIComponent(m[1]) }; }
    catch (_) { return { view: "badlink" }; }
  }
  return { view: "queue", params: new URLSearchParams(h.replace(/^#\/?\??/, "")) };
}

const FILTERS = ["sort", "band", "tier", "segment", "owner", "status", "rule", "limit"];

function queueHash(params) {
  const p = new URLSearchParams();
  for (const [k, v] of params) if (v !== "" && !(k === "sort" && v === "today") && !(k === "offset" && v === "0")) p.set(k, v);
  const s = p.toString();
  return s ? "#" + s : "#/";
}

function controlsToHash(offset) {
  const p = new URLSearchParams();
  for (const k of FILTERS) p.set(k, $(k).value.trim());
  p.set("offset", String(offset || 0));
  location.hash = queueHash(p);
}

// ---- the portfolio strip ----

// The filters of the queue's hash that the strip is scoped to.
const STRIP_FILTERS = ["band", "tier", "segment", "owner", "status", "rule"];

async function renderStrip(params) {
  const q = new URLSearchParams();
  for (const k of STRIP_FILTERS) { const v = params && (params.get(k) || "").trim(); if (v) q.set(k, v); }
  const scoped = q.toString();
  const { status, body } = await api("/v1/summary" + (scoped ? "?" + scoped : ""));
  const strip = $("strip");
  if (status !== 200 || !body) { strip.replaceChildren(el("p", { class: "error" }, "summary unavailable")); return; }
  if (body.day) TODAY = dayNumOf(body.day);
  const cards = ["red", "yellow", "green", "unscored"].map((b) =>
    el("div", { class: "card " + b },
      el("h2", {}, b),
      el("div", { class: "n" }, num(body.accounts[b], 0), " ", el("span", { class: "arr" }, "accounts")),
      el("div", { class: "arr" }, money(body.arr[b]), " ARR")));
  const rules = Object.entries(body.alerts_by_rule || {}).sort((a, b) => b[1] - a[1]);
  const ruleCard = el("div", { class: "card rules" },
    el("h2", {}, "alerts by rule" + (body.day ? " on " + body.day : "")),
    rules.length ? el("ul", {}, rules.map(([r, n]) => el("li", {}, label(r) + ": ", el("strong", {}, n))))
                 : el("p", {}, "no alerts"),
    // What the team did: the accounts acknowledged, snoozed and resolved (links to each view).
    body.status ? el("ul", { class: "team" }, ["acknowledged", "snoozed", "resolved"].filter((k) => body.status[k] > 0)
      .map((k) => el("li", {}, el("a", { href: "#status=" + k }, k + ": ", el("strong", {}, body.status[k]))))) : null);
  const scope = scoped ? el("p", { class: "scope" }, "Showing the accounts of the filter: " + q.toString().replace(/&/g, ", ").replace(/=/g, " ")) : null;
  strip.replaceChildren(...cards, ruleCard, ...(scope ? [scope] : []));
}

// ---- the queue / heatmap ----

// The rule filter's options come from the server's list of rules (`/v1/summary`'s `rules`), so
// the page offers every rule the server knows and cannot drift from it. Loaded once.
let rulesLoaded = null;
function loadRules() {
  if (!rulesLoaded) {
    rulesLoaded = api("/v1/summary").then(({ status, body }) => {
      if (status !== 200 || !body || !Array.isArray(body.rules)) { rulesLoaded = null; return; }
      MEASURES = body.measures || {};
      $("rule").replaceChildren(el("option", { value: "" }, "any"), ...body.rules.map((r) => el("option", { value: r }, label(r))));
      // Every owner and segment the server knows is offered (not only those of the page shown).
      $("owners").replaceChildren(...(body.owners || []).map((o) => el("option", { value: o })));
      $("segments").replaceChildren(...(body.segments || []).map((o) => el("option", { value: o })));
    }, (e) => { rulesLoaded = null; throw e; });
  }
  return rulesLoaded;
}

async function renderQueue(params) {
  await loadRules();
  for (const k of FILTERS) $(k).value = params.get(k) || (k === "sort" ? "today" : k === "limit" ? "50" : "");
  const offset = Math.max(0, parseInt(params.get("offset") || "0", 10) || 0);
  // What the link asks for goes to the server as it is: a filter the controls cannot show (a rule
  // this server does not know) is answered with the server's error, never dropped in silence.
  const q = new URLSearchParams();
  for (const k of FILTERS) { const v = (params.get(k) || $(k).value).trim(); if (v) q.set(k, v); }
  q.set("offset", String(offset));
  const { status, body } = await api("/v1/accounts?" + q.toString());
  const table = $("table");
  if (status !== 200 || !body) {
    table.replaceChildren(el("caption", { class: "error" }, (body && body.message) || ("error " + status)));
    $("pageinfo").textContent = "";
    return;
  }
  const rows = body.accounts;
  const measures = [];
  for (const r of rows) for (const m of r.measures || []) if (!measures.includes(m.measure)) measures.push(m.measure);

  const focused = document.activeElement && document.activeElement.dataset ? document.activeElement.dataset.id : null;
  const head = el("thead", {}, el("tr", {},
    el("th", { class: "num", scope: "col" }, "#"), el("th", { scope: "col" }, "Account"),
    el("th", { class: "num", scope: "col" }, "Score"), el("th", { scope: "col" }, "Band"),
    el("th", { class: "num", scope: "col" }, "ARR"),
    el("th", { scope: "col", class: "wide-only" }, "Segment"), el("th", { scope: "col", class: "wide-only" }, "Owner"),
    el("th", { scope: "col", class: "wide-only" }, "Renewal"),
    el("th", { scope: "col" }, "Why"),
    measures.map((m) => el("th", { class: "num", scope: "col" }, label(m)))));
  const body_ = el("tbody", {}, rows.map((r) => {
    const byName = Object.fromEntries((r.measures || []).map((m) => [m.measure, m]));
    const tr = el("tr", { tabindex: "0", "data-id": r.account_id, "aria-label": "Open account " + (r.name || r.account_id) },
      el("td", { class: "num" }, r.rank),
      el("td", { class: "name" }, r.name || r.account_id),
      el("td", { class: "num score" }, num(r.score)),
      el("td", { class: "band band-" + (r.band || "none"), title: r.scored_band ? "set by hand; the scorecard says " + r.scored_band : null },
        r.band || "unscored", r.scored_band ? el("span", { class: "byhand" }, " ✎") : null),
      el("td", { class: "num arr" }, money(r.arr)),
      el("td", { class: "wide-only" }, r.segment || "—"),
      el("td", { class: "owner wide-only" }, r.owner || "—"),
      el("td", { class: "wide-only renewal" }, whenFrom(r.renewal_date, TODAY)),
      el("td", { class: "reason", title: r.reason ? r.reason.text : "" },
        statusBadge(r.status, r.snoozed_until),
        r.reason ? [r.reason.rule ? el("span", { class: "rule" }, r.reason.rule.replace(/_/g, " ")) : "", " ", r.reason.text] : "—"),
      measures.map((name) => {
        const m = byName[name];
        if (!m) return el("td", { class: "m m-nodata", title: label(name) + ": not on this scorecard" }, "—");
        const cls = measureClass(m.value, m.points);
        const td = el("td", { class: "m " + cls, "data-points": m.points,
          title: label(name) + ": " + (m.value === null ? "no data" : fmtValue(name, m.value) + " → " + num(m.points) + " points") },
          fmtValue(name, m.value));
        if (cls !== "m-nodata") td.style.background = measureColour(m.points);
        return td;
      }));
    return tr;
  }));
  table.replaceChildren(
    el("caption", { class: "legend" }, body.total + " accounts" + (rows.length ? ", showing " + (offset + 1) + "–" + (offset + rows.length) : "")),
    head, body_);
  if (focused) { const again = table.querySelector('tr[data-id="' + CSS.escape(focused) + '"]'); if (again) again.focus(); }

  $("prev").disabled = offset === 0;
  $("next").disabled = body.next_offset === null || body.next_offset === undefined;
  $("prev").dataset.offset = String(Math.max(0, offset - body.limit));
  $("next").dataset.offset = String(body.next_offset || 0);
  const pages = Math.max(1, Math.ceil(body.total / body.limit));
  $("pageinfo").textContent = "page " + (Math.floor(offset / body.limit) + 1) + " of " + pages;

  // The same rows as a CSV download (the token, if any, goes as a header, not in the link).
  const csvQuery = new URLSearchParams(q);
  csvQuery.set("format", "csv");
  csvQuery.set("limit", "1000");
  csvQuery.set("offset", "0");
  $("csv").dataset.query = csvQuery.toString();
}

async function downloadCsv() {
  const headers = {};
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers["Authorization"] = "Bearer " + token;
  const res = await fetch("/v1/accounts?" + ($("csv").dataset.query || "format=csv"), { headers });
  if (!res.ok) { $("updated").textContent = "CSV: error " + res.status; return; }
  const url = URL.createObjectURL(await res.blob());
  const a = el("a", { href: url, download: "kizashi-accounts.csv" });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

function openRow(tr) {
  lastQueueHash = location.hash || "#/";
  location.hash = "#/account/" + encodeURIComponent(tr.dataset.id);
}

// ---- the account page ----

function historyChart(days, alerts) {
  const W = 640, H = 220, L = 34, R = 10, T = 10, B = 24;
  const NS = "http://www.w3.org/2000/svg";
  const s = (tag, attrs, ...kids) => {
    const e = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    for (const k of kids) e.append(k instanceof Node ? k : document.createTextNode(String(k)));
    return e;
  };
  const dayNum = (d) => Math.round(Date.parse(d + "T00:00:00Z") / 86400000);
  const last = days.length ? dayNum(days[days.length - 1].day) : Math.round(Date.now() / 86400000);
  const first = last - 89;
  const x = (d) => L + (W - L - R) * (d - first) / 89;
  const y = (score) => T + (H - T - B) * (1 - score / 100);
  const svg = s("svg", { class: "history", viewBox: "0 0 " + W + " " + H, role: "img",
    "aria-label": "Health score over the last 90 days with alerts marked" });
  svg.append(s("title", {}, "Health score, last 90 days"));
  for (const g of [0, 25, 50, 75, 100]) {
    svg.append(s("line", { class: "grid", x1: L, x2: W - R, y1: y(g), y2: y(g) }));
    svg.append(s("text", { class: "axis", x: L - 4, y: y(g) + 3, "text-anchor": "end" }, g));
  }
  const pts = days.filter((d) => d.score !== null && d.score !== undefined && dayNum(d.day) >= first)
    .map((d) => x(dayNum(d.day)).toFixed(1) + "," + y(d.score).toFixed(1));
  if (pts.length) svg.append(s("polyline", { class: "line", points: pts.join(" ") }));
  for (const d of days) {
    if (d.score === null || d.score === undefined || dayNum(d.day) < first) continue;
    svg.append(s("circle", { class: "day band-" + (d.band || "none"), cx: x(dayNum(d.day)).toFixed(1), cy: y(d.score).toFixed(1), r: 2 },
      s("title", {}, d.day + ": " + num(d.score) + " (" + (d.band || "unscored") + ")")));
  }
  const fmt = (n) => new Date(n * 86400000).toISOString().slice(0, 10);
  svg.append(s("text", { class: "axis", x: L, y: H - 6 }, fmt(first)));
  svg.append(s("text", { class: "axis", x: W - R, y: H - 6, "text-anchor": "end" }, fmt(last)));
  const scoreOn = new Map(days.map((d) => [d.day, d.score]));
  for (const a of alerts) {
    const day = String(a.event_time || "").slice(0, 10);
    const n = dayNum(day);
    if (!(n >= first && n <= last)) continue;
    const sc = scoreOn.get(day);
    svg.append(s("circle", { class: "alert-marker", cx: x(n).toFixed(1), cy: y(sc === undefined || sc === null ? 100 : sc).toFixed(1), r: 5 },
      s("title", {}, label(a.rule || "alert") + " on " + day)));
  }
  return svg;
}

function renderBadLink() {
  $("account").replaceChildren(el("a", { href: lastQueueHash, id: "back" }, "← Back to the queue"),
    el("p", { class: "error", id: "badlink" }, "This address does not name an account: its account id is not validly encoded."));
  document.title = "kizashi — account health";
}

async function renderAccount(id) {
  await loadRules();
  const view = $("account");
  const [{ status, body: a }, hist] = await Promise.all([
    api("/v1/accounts/" + encodeURIComponent(id)),
    api("/v1/accounts/" + encodeURIComponent(id) + "/history"),
  ]);
  const back = el("a", { href: lastQueueHash, id: "back" }, "← Back to the queue");
  if (status !== 200 || !a) {
    view.replaceChildren(back, el("p", { class: "error" }, (a && a.message) || ("error " + status)));
    return;
  }
  const f = a.facts || {};
  const facts = el("dl", { class: "facts" },
    [["Account id", a.account_id], ["Segment", f.segment || "—"], ["Touch tier", f.tier || "—"], ["Seats", num(f.seats, 0)], ["ARR", money(f.arr)],
     ["Renewal", whenFrom(f.renewal_date, TODAY)], ["Customer since", f.start_date || "—"],
     ["Scorecard", (a.scorecard || "—").replace(/@(\d+)$/, " (version $1)")],
     ["Owner", a.cs && a.cs.assignee ? a.cs.assignee + " (assigned; the account record says " + (f.owner || "—") + ")" : f.owner || "—"],
     ["Scored at", fmtTime(a.scored_at)]]
      .concat(f.status && f.status !== "active" ? [["Status", f.status + (f.end_date ? " since " + f.end_date : "")]] : [])
      .map(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
  const over = a.cs && a.cs.override;
  const scorePanel = el("div", { class: "panel" }, el("h3", {}, "Health"),
    el("div", { class: "bigscore band-" + (a.band || "none") }, num(a.score), " ", el("span", { class: "band" }, a.band || "unscored"),
      over ? el("small", { class: "byhand" }, " set by hand (the scorecard says " + (over.scored_band || "—") + ")") : null),
    el("p", { class: "summary" }, a.summary || ""));
  const teamPanel = el("div", { class: "panel" }, el("h3", {}, "What the team did"), csSummary(a.cs), actionsForm(a.account_id));

  const expl = a.explanation || [];
  const maxAbs = Math.max(1, ...expl.map((e) => Math.abs(e.points || 0)));
  const bars = expl.length ? el("div", { class: "bars", role: "list" }, expl.map((e) => {
    const w = (50 * Math.abs(e.points) / maxAbs).toFixed(1) + "%";
    const bar = el("div", { class: "bar " + (e.points < 0 ? "loss" : "gain") });
    bar.style.width = e.points === 0 ? "0" : w;
    const desc = e.value === null ? "no data" : fmtValue(e.measure, e.value) + (e.previous === null || e.previous === undefined ? "" : " (was " + fmtValue(e.measure, e.previous) + ")");
    return [el("div", { role: "listitem" }, label(e.measure), el("br"), el("small", {}, desc)),
            el("div", { class: "bar-track", "aria-hidden": "true" }, bar),
            el("div", { class: "pts" }, (e.points > 0 ? "+" : "") + num(e.points))];
  })) : el("p", {}, "no explanation: the account is not scored yet");

  let chart;
  if (hist.status === 200 && hist.body && Array.isArray(hist.body.days) && hist.body.days.length) {
    chart = historyChart(hist.body.days, hist.body.alerts || []);
  } else {
    chart = el("p", { class: "nohistory" }, "no history yet");
  }

  const alerts = a.last_alerts || [];
  const alertList = alerts.length
    ? el("ul", { class: "alerts" }, alerts.map((x) => el("li", {}, el("strong", {}, label(x.rule || "alert")), " — ", fmtTime(x.event_time),
        x.alert_id ? el("small", { title: "alert id " + x.alert_id }, " #" + x.alert_id.slice(0, 8)) : null,
        x.summary ? el("p", { class: "alert-summary" }, x.summary) : null)))
    : el("p", {}, "no recent alerts");

  const tickets = a.open_tickets || [];
  const ticketList = tickets.length
    ? el("table", { class: "tickets" },
        el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "Ticket"), el("th", { scope: "col" }, "Priority"),
          el("th", { scope: "col" }, "Opened"), el("th", { scope: "col" }, "Age (days)"))),
        el("tbody", {}, tickets.map((t) => el("tr", {}, el("td", {}, t.ticket_id), el("td", {}, t.priority || ""),
          el("td", {}, fmtTime(t.opened_at)), el("td", {}, String(t.age_days))))))
    : el("p", {}, "no open tickets");
  // The account's people: its most engaged users over 28 days, champions (SS) first.
  const people = a.top_users || [];
  const peopleList = people.length
    ? el("table", { class: "people" },
        el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "User"), el("th", { scope: "col" }, "Rank"),
          el("th", { class: "num", scope: "col" }, "Active days (28)"), el("th", { scope: "col" }, "Last seen"))),
        el("tbody", {}, people.map((u) => el("tr", {}, el("td", {}, u.user_id), el("td", { class: "rank-" + u.rank }, u.rank),
          el("td", { class: "num" }, String(u.active_days_28d)), el("td", {}, whenFrom(u.last_seen, TODAY))))))
    : el("p", {}, "no active users in the last 28 days");
  const ticketTitle = "Open tickets" + (a.open_ticket_count > tickets.length ? " (oldest " + tickets.length + " of " + a.open_ticket_count + ")" : "");

  // What keeps the score from 100, always (a red account red for weeks has no change to show).
  const short = a.shortfall || [];
  const shortBars = short.length ? el("div", { class: "bars shortfall", role: "list" }, short.map((x) => {
    const bar = el("div", { class: "bar loss" });
    bar.style.width = (50 * x.points / Math.max(1, short[0].points)).toFixed(1) + "%";
    return [el("div", { role: "listitem" }, label(x.measure)),
            el("div", { class: "bar-track", "aria-hidden": "true" }, bar),
            el("div", { class: "pts" }, "−" + num(x.points))];
  })) : el("p", {}, a.score === 100 ? "nothing: the score is 100" : "no data yet");

  view.replaceChildren(back,
    el("h2", {}, f.name || a.account_id),
    el("div", { class: "panels" },
      scorePanel,
      teamPanel,
      el("div", { class: "panel" }, el("h3", {}, "Facts"), facts),
      el("div", { class: "panel" }, el("h3", {}, "What keeps the score from 100 (points lost per measure)"), shortBars),
      el("div", { class: "panel" }, el("h3", {}, "What changed in the last 14 days (points won and lost)"), bars),
      el("div", { class: "panel wide" }, el("h3", {}, "Score history (last 90 days, alerts marked)"), chart),
      el("div", { class: "panel" }, el("h3", {}, "Recent alerts"), alertList),
      el("div", { class: "panel" }, el("h3", {}, "People (SS: champion, S: active on 8+ of 28 days, A: the others)"), peopleList),
      el("div", { class: "panel" }, el("h3", {}, ticketTitle), ticketList)));
  document.title = (f.name || a.account_id) + " — kizashi";
}

// ---- what the team did: status badges and the actions form ----

// "snoozed until 2026-12-20 (in 12 days)", "acknowledged", "resolved"; nothing when open.
function statusBadge(status, until) {
  if (!status || status === "open") return null;
  return el("span", { class: "status status-" + status }, status + (until ? " until " + whenFrom(until, TODAY) : ""));
}

// The team's status, assignee and override of an account, in words.
function csSummary(cs) {
  const lines = [];
  const a = cs && cs.action;
  if (a) lines.push(el("p", {}, statusBadge(a.status, a.until), " by ", a.by || "someone", ", ", fmtTime(a.at), a.note ? ": “" + a.note + "”" : ""));
  else lines.push(el("p", {}, "Open: nobody has acted on its alerts yet."));
  if (cs && cs.assignee) lines.push(el("p", {}, "Assigned to ", el("strong", {}, cs.assignee), "."));
  const o = cs && cs.override;
  if (o) lines.push(el("p", { class: "override" }, "Band set by hand to ", el("strong", { class: "band-" + o.band }, o.band),
    " by ", o.by || "someone", " until ", whenFrom(o.until, TODAY), ": “", o.reason, "”; the scorecard says ", o.scored_band || "—", "."));
  return lines;
}

// One form per account, kept across the page's refreshes (so what is being typed stays).
let actionForm = { id: null, node: null };
const BY_KEY = "kizashi.by";

function actionsForm(id) {
  if (actionForm.id === id) return actionForm.node;
  const field = (name, input, hint) => el("label", { "data-for": name }, name, input, hint ? el("small", {}, hint) : null);
  const select = el("select", { id: "act-action", name: "action" },
    [["acknowledge", "Acknowledge"], ["snooze", "Snooze until…"], ["resolve", "Resolve with a note"], ["assign", "Assign to…"],
     ["override", "Override the band…"], ["clear_override", "End the override"]].map(([v, t]) => el("option", { value: v }, t)));
  const band = el("select", { id: "act-band", name: "band" }, ["green", "yellow", "red"].map((b) => el("option", { value: b }, b)));
  const by = el("input", { id: "act-by", name: "by", size: "14", autocomplete: "name" });
  by.value = localStorage.getItem(BY_KEY) || "";
  const msg = el("p", { id: "act-msg", role: "status" });
  const form = el("form", { id: "actions", class: "actions" },
    field("Action", select), field("By", by), field("Until", el("input", { id: "act-until", name: "until", type: "date" })),
    field("Owner", el("input", { id: "act-owner", name: "owner", size: "14", list: "owners" })), field("Band", band),
    field("Note", el("input", { id: "act-note", name: "note", size: "30", maxlength: "1000" })),
    el("button", { type: "submit" }, "Send"), msg);
  // Only the fields the chosen action takes are shown.
  const needs = { acknowledge: ["note"], snooze: ["until", "note"], resolve: ["note"], assign: ["owner"], override: ["band", "until", "note"], clear_override: [] };
  const show = () => { for (const l of form.querySelectorAll("label[data-for]")) {
    const f = l.dataset.for.toLowerCase(); l.hidden = !(f === "action" || f === "by" || needs[select.value].includes(f)); } };
  select.addEventListener("change", show);
  show();
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const body = { action: select.value };
    if (by.value.trim()) { body.by = by.value.trim(); localStorage.setItem(BY_KEY, body.by); }
    for (const f of needs[select.value]) { const v = $("act-" + f).value.trim(); if (v) body[f] = v; }
    msg.className = "";
    msg.textContent = "sending…";
    try {
      const { status, body: res } = await api("/v1/accounts/" + encodeURIComponent(id) + "/actions", body);
      if (status === 202) {
        msg.textContent = "Sent: " + select.options[select.selectedIndex].text.replace("…", "") + ". It shows here once applied.";
        $("act-note").value = "";
        setTimeout(render, 800);
      } else {
        msg.className = "error";
        msg.textContent = (res && res.message) || ("error " + status);
      }
    } catch (err) {
      if (err instanceof Unauthorized) { await askToken("That token was refused; try again."); return; }
      msg.className = "error";
      msg.textContent = "cannot reach kizashi: " + err.message;
    }
  });
  actionForm = { id, node: form };
  return form;
}

// ---- the loop ----

let rendering = false;
let again = false;
// One render at a time; a render asked for meanwhile (a hash change during a refresh) runs next.
async function render() {
  if (rendering) { again = true; return; }
  rendering = true;
  try {
    do {
      again = false;
      await renderOnce();
    } while (again);
  } finally {
    rendering = false;
  }
}

async function renderOnce() {
  for (;;) {
    const r = route();
    try {
      $("queue").hidden = r.view !== "queue";
      $("account").hidden = r.view === "queue";
      if (r.view === "queue") {
        document.title = "kizashi — account health";
        await Promise.all([renderStrip(r.params), renderQueue(r.params)]);
      } else if (r.view === "badlink") {
        renderBadLink();
        await renderStrip();
      } else {
        await Promise.all([renderStrip(), renderAccount(r.id)]);
      }
      $("updated").textContent = "updated " + new Date().toLocaleTimeString();
      return;
    } catch (e) {
      if (!(e instanceof Unauthorized)) {
        $("updated").textContent = "cannot reach kizashi: " + e.message;
        return;
      }
      await askToken(sessionStorage.getItem(TOKEN_KEY) ? "That token was refused; try again." : "");
    }
  }
}

function schedule() {
  if (timer) clearInterval(timer);
  timer = $("auto").checked ? setInterval(render, REFRESH_MS) : null;
}

function init() {
  $("controls").addEventListener("submit", (e) => { e.preventDefault(); controlsToHash(0); });
  for (const k of ["sort", "band", "tier", "status", "rule", "limit"]) $(k).addEventListener("change", () => controlsToHash(0));
  for (const k of ["segment", "owner"]) $(k).addEventListener("change", () => controlsToHash(0));
  $("reset").addEventListener("click", () => { location.hash = "#/"; });
  $("csv").addEventListener("click", () => { downloadCsv().catch((e) => { $("updated").textContent = "CSV: " + e; }); });
  $("prev").addEventListener("click", () => controlsToHash(parseInt($("prev").dataset.offset, 10)));
  $("next").addEventListener("click", () => controlsToHash(parseInt($("next").dataset.offset, 10)));
  const table = $("table");
  table.addEventListener("click", (e) => { const tr = e.target.closest("tbody tr"); if (tr) openRow(tr); });
  table.addEventListener("keydown", (e) => {
    const tr = e.target.closest("tbody tr");
    if (!tr) return;
    if (e.key === "Enter" || e.key === " ") { e.preventDefault(); openRow(tr); }
    else if (e.key === "ArrowDown" && tr.nextElementSibling) { e.preventDefault(); tr.nextElementSibling.focus(); }
    else if (e.key === "ArrowUp" && tr.previousElementSibling) { e.preventDefault(); tr.previousElementSibling.focus(); }
  });
  $("auto").addEventListener("change", schedule);
  window.addEventListener("hashchange", () => {
    const r = route();
    if (r.view === "queue") lastQueueHash = location.hash || "#/";
    render();
  });
  const r = route();
  if (r.view === "queue") lastQueueHash = location.hash || "#/";
  render();
  schedule();
}

init();
