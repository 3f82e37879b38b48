// /admin: platform metrics over time, the reports queue with its actions, the gift and moderation
// audits with CSV export, and the ClickHouse rebuild. Each part is asked for only with a role that
// may read it, so a moderator's page makes no request bound to be refused.

import { $, api, el, formatNumber, guardErrors, me, newKey, renderHeader, requireSignIn, show, table } from "./api.js";
import { lineChart } from "./chart.js";

const METRICS_POLL_MS = 10000;
const MAX_POINTS = 360; // an hour at the poll interval
const REPORTS_POLL_MS = 5000; // the open queue refreshes itself

guardErrors();
renderHeader();
main().catch((error) => show($("#page-error"), `The page could not start: ${error.message}`));

async function main() {
  const root = $("#admin");
  if (!requireSignIn(root)) return;
  const roles = new Set(me().roles);
  const isAdmin = roles.has("admin");
  const isStaff = isAdmin || roles.has("moderation");
  if (!isStaff && !roles.has("payments")) {
    root.replaceChildren(el("p", { class: "notice", "data-testid": "admin-refused" }, "This page is for the platform team: it needs the admin or moderation role."));
    return;
  }
  root.replaceChildren();
  if (isAdmin) root.append(metricsPanel());
  if (isStaff) root.append(reportsPanel());
  root.append(auditPanel(roles));
  if (isAdmin) root.append(replayPanel());
}

// --- metrics ----------------------------------------------------------------------------------------

function metricsPanel() {
  const figures = el("dl", { class: "kv", "data-testid": "metrics-figures" });
  const chart = el("div", { "data-testid": "metrics-chart" });
  const error = el("p", { class: "error", role: "alert", hidden: true });
  const points = [];
  const poll = async () => {
    const result = await api("GET", "/v1/admin/metrics?hours=24");
    if (!result.ok) {
      show(error, `Metrics: ${result.message}`);
      return;
    }
    show(error, "");
    const m = result.data || {};
    const w = m.window || {};
    const e = m.errors || {};
    points.push({ at: Date.now(), streams: m.concurrentStreams || 0, viewers: m.totalViewers || 0 });
    if (points.length > MAX_POINTS) points.shift();
    const rows = [
      ["Live streams", formatNumber(m.concurrentStreams)],
      ["Viewers now", formatNumber(m.totalViewers)],
      ...flatten(w).filter(([k]) => !WINDOW_BOUNDS.has(k)).map(([k, v]) => [`Last 24 h: ${k}`, String(v)]),
      ["Client error rate", String(e.clientErrorRate ?? "")],
      ["Server error rate", String(e.serverErrorRate ?? "")],
      ["Dead-lettered records", String(e.deadLetteredRecords ?? "")],
    ];
    figures.replaceChildren(...rows.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
    chart.replaceChildren(lineChart("Live streams and viewers over time", [
      { name: "live streams", points: points.map((p) => ({ x: p.at, y: p.streams })) },
      { name: "viewers", points: points.map((p) => ({ x: p.at, y: p.viewers })) },
    ]));
  };
  poll();
  setInterval(poll, METRICS_POLL_MS);
  return el("section", { class: "panel", "data-testid": "admin-metrics", "aria-labelledby": "metrics-title" },
    el("h2", { id: "metrics-title" }, "Platform metrics"), error, figures, chart);
}

const WINDOW_BOUNDS = new Set(["since", "until", "hours"]);

/** [["a.b", 1], ...]: a nested figure as dotted names. */
function flatten(object, prefix = "") {
  return Object.entries(object || {}).flatMap(([k, v]) =>
    v && typeof v === "object" && !Array.isArray(v) ? flatten(v, `${prefix}${k}.`) : [[`${prefix}${k}`, v]],
  );
}

// --- reports ----------------------------------------------------------------------------------------

function reportsPanel() {
  const list = el("div", { "data-testid": "reports" });
  const status = el("p", { class: "hint", role: "status", "data-testid": "reports-status" });
  const which = el("select", { id: "reports-status-filter" }, el("option", { value: "open" }, "Open"), el("option", { value: "resolved" }, "Resolved"));
  const refresh = el("button", { type: "button", class: "secondary", "data-testid": "reports-refresh" }, "Refresh");
  const load = async () => {
    const result = await api("GET", `/v1/admin/reports?status=${which.value}&limit=50`);
    if (!result.ok) {
      list.replaceChildren(el("p", { class: "error" }, result.message));
      return;
    }
    const reports = result.data?.reports || [];
    if (!reports.length) {
      list.replaceChildren(el("p", { class: "hint" }, which.value === "open" ? "No open reports." : "No resolved reports."));
      return;
    }
    list.replaceChildren(el("div", { class: "table-wrap" }, el("table", {},
      el("thead", {}, el("tr", {}, ...["Stream", "Owner", "Reporters", "Last reported", "State", "Actions"].map((c) => el("th", { scope: "col" }, c)))),
      el("tbody", {}, ...reports.map((r) => reportRow(r, status, load))))));
  };
  which.addEventListener("change", load);
  refresh.addEventListener("click", load);
  load();
  setInterval(() => { if (which.value === "open") load(); }, REPORTS_POLL_MS);
  return el("section", { class: "panel", "aria-labelledby": "reports-title" },
    el("h2", { id: "reports-title" }, "Reports queue"),
    el("div", { class: "row" }, el("label", { for: "reports-status-filter" }, "Show", which), refresh),
    status, list, suspendForm());
}

/** Any live stream, reported or not: POST /v1/admin/streams/{id}/suspend. */
function suspendForm() {
  const stream = el("input", { id: "suspend-stream-id", "data-testid": "suspend-stream-id", required: true, autocomplete: "off" });
  const reason = el("input", { id: "suspend-reason", "data-testid": "suspend-reason", required: true, maxlength: 500 });
  const status = el("p", { class: "hint", role: "status" });
  const form = el("form", { class: "row", "aria-labelledby": "suspend-title" },
    el("label", { for: "suspend-stream-id" }, "Stream id", stream),
    el("label", { for: "suspend-reason" }, "Reason", reason),
    el("button", { type: "submit", "data-testid": "suspend-submit" }, "Suspend stream"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const id = stream.value.trim();
    const result = await api("POST", `/v1/admin/streams/${encodeURIComponent(id)}/suspend`, { reason: reason.value.trim() }, { idempotencyKey: newKey() });
    status.textContent = result.ok ? `Stream ${id} suspended.` : result.message;
  });
  return el("div", {}, el("h3", { id: "suspend-title" }, "Suspend a stream"), form, status);
}

function reportRow(r, status, reload) {
  const stream = r.stream || {};
  const resolution = r.resolution || {};
  const title = stream.title || r.streamId;
  const resolve = (action) => async () => {
    const note = `${action} from the admin console`;
    const result = await api("POST", `/v1/admin/reports/${encodeURIComponent(r.reportId)}/resolve`, { action, note }, { idempotencyKey: newKey() });
    status.textContent = result.ok ? `Report on “${title}”: ${action}.` : result.message;
    if (result.ok) setTimeout(reload, 800);
  };
  const button = (label, testid, action, secondary = true) =>
    el("button", { type: "button", class: `small${secondary ? " secondary" : ""}`, "data-testid": testid, "aria-label": `${label}: ${title}`, onclick: resolve(action) }, label);
  const open = r.status === "open";
  return el("tr", { "data-testid": "report-row", "data-stream-id": r.streamId, "data-report-id": r.reportId },
    el("td", {}, el("a", { href: `/watch/${encodeURIComponent(r.streamId)}` }, title)),
    el("td", {}, stream.ownerUsername || stream.ownerId || ""),
    el("td", { title: (r.reporters || []).map((x) => `${x.userId}: ${x.reason}`).join("\n") }, formatNumber(r.count)),
    el("td", {}, r.lastReportedAt ? new Date(r.lastReportedAt).toLocaleString() : ""),
    el("td", {}, open
      ? `open · stream ${stream.moderationStatus || stream.status || "?"}`
      : `${resolution.action || "resolved"}${resolution.note ? ` (${resolution.note})` : ""}`),
    el("td", {}, open ? el("span", { class: "mod-actions" },
      button("Suspend stream", "report-suspend", "suspend-stream", false),
      button("Suspend user", "report-suspend-user", "suspend-user"),
      button("Dismiss", "report-dismiss", "dismiss")) : ""),
  );
}

// --- audits -----------------------------------------------------------------------------------------

function auditPanel(roles) {
  const kinds = [];
  if (roles.has("admin") || roles.has("payments")) kinds.push(["gifts", "Gifts"]);
  if (roles.has("admin") || roles.has("moderation")) kinds.push(["moderation", "Moderation"]);
  const kind = el("select", { id: "audit-kind", "data-testid": "audit-kind" }, ...kinds.map(([v, t]) => el("option", { value: v }, t)));
  const stream = el("input", { id: "audit-stream", "data-testid": "audit-stream", autocomplete: "off" });
  const who = el("input", { id: "audit-user", "data-testid": "audit-user", autocomplete: "off" });
  const since = el("input", { id: "audit-since", type: "datetime-local" });
  const until = el("input", { id: "audit-until", type: "datetime-local" });
  const results = el("div", { "data-testid": "audit-results" });
  const exportLink = el("a", { class: "button", hidden: true, "data-testid": "audit-export", download: "audit.csv" }, "Download CSV");
  let rows = [];
  const form = el("form", { class: "row", "aria-label": "Audit search" },
    el("label", { for: "audit-kind" }, "Audit", kind),
    el("label", { for: "audit-stream" }, "Stream id", stream),
    el("label", { for: "audit-user" }, "User id", who),
    el("label", { for: "audit-since" }, "Since", since),
    el("label", { for: "audit-until" }, "Until", until),
    el("button", { type: "submit", "data-testid": "audit-search" }, "Search"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const params = new URLSearchParams({ limit: "500" });
    if (stream.value.trim()) params.set("stream", stream.value.trim());
    if (who.value.trim()) params.set("user", who.value.trim());
    if (since.value) params.set("since", new Date(since.value).toISOString());
    if (until.value) params.set("until", new Date(until.value).toISOString());
    const result = await api("GET", `/v1/audit/${kind.value}?${params}`);
    if (!result.ok) {
      results.replaceChildren(el("p", { class: "error" }, result.message));
      exportLink.hidden = true;
      return;
    }
    rows = result.data?.items || [];
    const columns = [...new Set(rows.flatMap((r) => Object.keys(r)))];
    results.replaceChildren(rows.length ? table(rows, columns) : el("p", { class: "hint" }, "Nothing found."),
      result.data?.nextCursor ? el("p", { class: "hint" }, "More results exist: narrow the search (time range).") : null);
    if (exportLink.href) URL.revokeObjectURL(exportLink.href);
    exportLink.href = URL.createObjectURL(new Blob([toCsv(rows, columns)], { type: "text/csv" }));
    exportLink.download = `${kind.value}-audit.csv`;
    exportLink.hidden = rows.length === 0;
  });
  if (!kinds.length) return el("section", {});
  return el("section", { class: "panel", "aria-labelledby": "audit-title" },
    el("h2", { id: "audit-title" }, "Audit search"), form, exportLink, results);
}

export function toCsv(rows, columns) {
  const cell = (v) => {
    const text = v == null ? "" : typeof v === "object" ? JSON.stringify(v) : String(v);
    // quoted always; a leading formula character is neutralised for spreadsheets
    const safe = /^[=+\-@\t\r]/.test(text) ? `'${text}` : text;
    return `"${safe.replace(/"/g, '""')}"`;
  };
  return [columns.map(cell).join(","), ...rows.map((r) => columns.map((c) => cell(r[c])).join(","))].join("\r\n") + "\r\n";
}

// --- the ClickHouse rebuild -------------------------------------------------------------------------

function replayPanel() {
  const status = el("pre", { "data-testid": "replay-status", "aria-live": "polite" }, "Not checked yet.");
  const check = async () => {
    const result = await api("GET", "/v1/admin/replay/clickhouse");
    status.textContent = result.ok ? JSON.stringify(result.data, null, 2) : result.message;
  };
  const start = async () => {
    if (!window.confirm("Rebuild the ClickHouse analytics from the event log? It runs in the background.")) return;
    const result = await api("POST", "/v1/admin/replay/clickhouse", undefined, { idempotencyKey: newKey() });
    status.textContent = result.ok ? JSON.stringify(result.data, null, 2) : result.message;
  };
  return el("section", { class: "panel", "aria-labelledby": "replay-title" },
    el("h2", { id: "replay-title" }, "Analytics rebuild (ClickHouse replay)"),
    el("div", { class: "row" },
      el("button", { type: "button", class: "secondary", "data-testid": "replay-check", onclick: check }, "Check status"),
      el("button", { type: "button", class: "secondary", "data-testid": "replay-start", onclick: start }, "Start a rebuild")),
    status);
}
