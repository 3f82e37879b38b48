// /studio, after the stream: earnings and payout requests, past streams with their replays, and the
// per-stream report as charts. Split from studio.js, which holds going live and the live stream.

import { $, api, el, formatDuration, formatNumber, newKey, table } from "./api.js";
import { barChart, lineChart } from "./chart.js";

export async function loadEarnings() {
  const box = $("#earnings");
  const earnings = await api("GET", "/v1/earnings");
  if (!earnings.ok) {
    box.replaceChildren(el("p", { class: "error" }, earnings.message));
    return;
  }
  const e = earnings.data || {};
  const amount = el("input", { id: "payout-amount", "data-testid": "payout-amount", inputmode: "decimal", placeholder: "10.00", required: true, pattern: "\\d{1,9}(\\.\\d{1,2})?" });
  const method = el("select", { id: "payout-method", "data-testid": "payout-method" }, el("option", { value: "paypal" }, "PayPal"), el("option", { value: "bank" }, "Bank transfer"));
  const status = el("p", { class: "hint", role: "status" });
  const form = el("form", { class: "row" },
    el("label", { for: "payout-amount" }, "Amount (USD, minimum 10.00)", amount),
    el("label", { for: "payout-method" }, "Method", method),
    el("button", { type: "submit", "data-testid": "payout-request" }, "Request payout"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const result = await api("POST", "/v1/payouts", { method: method.value, amountUsd: amount.value.trim() }, { idempotencyKey: newKey() });
    status.textContent = result.ok ? `Payout requested: $${result.data?.amountUsd} (${result.data?.status}).` : result.message;
    if (result.ok) setTimeout(loadEarnings, 1000);
  });
  const payouts = await api("GET", "/v1/payouts");
  const rows = payouts.ok ? payouts.data?.payouts || [] : [];
  box.replaceChildren(
    el("dl", { class: "kv", "data-testid": "earnings" },
      el("dt", {}, "Balance"), el("dd", {}, `${formatNumber(e.balanceCoins)} coins ($${e.balanceUsd ?? "0.00"})`),
      el("dt", {}, "Reserved for payouts"), el("dd", {}, `${formatNumber(e.reservedCoins)} coins ($${e.reservedUsd ?? "0.00"})`),
      el("dt", {}, "Earned in total"), el("dd", {}, `${formatNumber(e.totalEarnedCoins)} coins ($${e.totalEarnedUsd ?? "0.00"})`)),
    form, status,
    rows.length ? table(rows, ["payoutId", "status", "method", "amountUsd", "requestedAt"]) : el("p", { class: "hint" }, payouts.ok ? "No payouts yet." : payouts.message),
  );
}

export async function loadPastStreams(user) {
  const box = $("#past");
  const result = await api("GET", `/v1/users/${encodeURIComponent(user.id)}/streams?limit=20`);
  if (!result.ok) {
    box.replaceChildren(el("p", { class: "error" }, result.message));
    return;
  }
  const streams = result.data?.streams || [];
  if (!streams.length) {
    box.replaceChildren(el("p", { class: "hint" }, "No streams yet."));
    return;
  }
  box.replaceChildren(el("ul", { class: "past-streams" }, ...streams.map((s) => {
    const replay = el("span", {});
    const item = el("li", { "data-testid": "past-stream", "data-stream-id": s.streamId },
      el("strong", {}, s.title || "Untitled"), ` · ${s.status} · ${s.startedAt ? new Date(s.startedAt).toLocaleString() : ""}`,
      s.duration ? ` · ${formatDuration(s.duration)}` : "", ` · peak ${formatNumber(s.peakViewerCount)} · `,
      el("button", { type: "button", class: "small secondary", "data-testid": "report-open", onclick: () => loadReport(s.streamId, s.title) }, "Report"), " ",
      s.hasReplay ? el("button", { type: "button", class: "small secondary", "data-testid": "replay-open", onclick: async () => {
        const signed = await api("GET", s.replayUrl || `/v1/streams/${encodeURIComponent(s.streamId)}/replay`);
        replay.replaceChildren(signed.ok && signed.data?.replayUrl ? el("a", { href: signed.data.replayUrl }, " Replay (HLS)") : ` ${signed.message || "no replay"}`);
      } }, "Replay") : null,
      replay);
    return item;
  })));
}

async function loadReport(streamId, title) {
  const panel = $("#report-panel");
  const box = $("#report");
  panel.hidden = false;
  box.replaceChildren(el("p", { class: "hint" }, "Loading…"));
  const result = await api("GET", `/v1/streams/${encodeURIComponent(streamId)}/analytics`);
  if (!result.ok) {
    box.replaceChildren(el("p", { class: "error" }, result.message));
    return;
  }
  const a = result.data || {};
  const timeline = a.timeline || a.viewerTimeline || [];
  const point = (key) => timeline.map((m) => ({ x: Date.parse(m.minute), y: m[key] || 0 }));
  const revenue = a.revenue || {};
  const demographics = a.demographics || {};
  const countries = Object.entries(demographics.countries || {}).map(([label, value]) => ({ label, value }));
  box.replaceChildren(
    el("h3", {}, title || streamId),
    el("dl", { class: "kv", "data-testid": "report-summary" },
      el("dt", {}, "Duration"), el("dd", {}, formatDuration(a.durationSeconds)),
      el("dt", {}, "Peak viewers"), el("dd", {}, formatNumber(a.peakViewers)),
      el("dt", {}, "Unique viewers"), el("dd", {}, formatNumber(a.uniqueViewers)),
      el("dt", {}, "Average watch time"), el("dd", {}, formatDuration(a.averageWatchTimeSeconds)),
      el("dt", {}, "Engagement"), el("dd", {}, `${Math.round((a.engagement?.rate || 0) * 100)}%`),
      el("dt", {}, "Gift revenue"), el("dd", {}, `${formatNumber(revenue.coins)} coins ($${revenue.usd ?? "0.00"})`),
      el("dt", {}, "Your share"), el("dd", {}, `${formatNumber(revenue.broadcasterCoins)} coins ($${revenue.broadcasterUsd ?? "0.00"})`)),
    lineChart("Viewers per minute", [{ name: "peak viewers", points: point("peakViewers") }]),
    lineChart("Engagement per minute", [
      { name: "likes", points: point("likes") },
      { name: "comments", points: point("comments") },
      { name: "gifts", points: point("gifts") },
    ]),
    barChart("Coins by gift", (revenue.byGift || []).map((g) => ({ label: g.giftName || g.giftId, value: g.coins || 0 }))),
    barChart("Top gifters (coins)", (a.topGifters || []).map((g) => ({ label: g.username || g.userId, value: g.coins || 0 }))),
    countries.length ? barChart("Viewers by country", countries) : null,
  );
}
