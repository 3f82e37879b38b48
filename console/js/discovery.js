// /: live streams as cards, the channels the user follows first, filtered by category, tag, language.

import { $, api, el, formatNumber, guardErrors, renderHeader, requireSignIn, show } from "./api.js";

guardErrors();
renderHeader();

const errorBox = $("#discover-error");
let cursor = null;
let followed = new Set();

function card(stream) {
  const thumb = stream.thumbnailUrl
    ? el("img", { src: stream.thumbnailUrl, alt: "", loading: "lazy", class: "thumb", onerror: (e) => e.target.remove() })
    : el("div", { class: "thumb placeholder", "aria-hidden": "true" }, "LIVE");
  return el(
    "li",
    { class: "card", "data-testid": "stream-card", "data-stream-id": stream.streamId },
    el(
      "a",
      { href: `/watch/${encodeURIComponent(stream.streamId)}`, "aria-label": `Watch ${stream.title} by ${stream.username || stream.userId}` },
      thumb,
      el("span", { class: "card-title" }, stream.title || "Untitled"),
      el("span", { class: "card-by" }, stream.username || stream.userId),
      el("span", { class: "card-viewers" }, `${formatNumber(stream.viewerCount)} watching`),
      stream.category ? el("span", { class: "card-category" }, stream.category) : null,
    ),
  );
}

function query(withCursor) {
  const params = new URLSearchParams({ status: "live" });
  for (const name of ["category", "tag", "language"]) {
    const value = $(`#filter-${name}`).value.trim();
    if (value) params.set(name, value);
  }
  if (withCursor && cursor) params.set("cursor", cursor);
  return `/v1/streams?${params}`;
}

async function loadFollowing() {
  const result = await api("GET", "/v1/me/following/live");
  const section = $("#following-section");
  if (!result.ok) {
    show(errorBox, `Followed channels: ${result.message}`);
    return;
  }
  const streams = result.data?.streams || [];
  followed = new Set(streams.map((s) => s.streamId));
  $("#following").replaceChildren(...streams.map(card));
  section.hidden = streams.length === 0;
}

async function loadStreams(more = false) {
  const result = await api("GET", query(more));
  if (!result.ok) {
    show(errorBox, result.message);
    return;
  }
  show(errorBox, "");
  const list = $("#streams");
  const streams = (result.data?.streams || []).filter((s) => !followed.has(s.streamId));
  if (!more) list.replaceChildren();
  list.append(...streams.map(card));
  if (!more && list.children.length === 0) list.append(el("li", { class: "empty" }, "No live streams match."));
  cursor = result.data?.nextCursor || null;
  $("#more").hidden = !cursor;
}

async function main() {
  if (!requireSignIn($("#main"))) return;
  // the filters can come with the address (`/?category=games&tag=speedrun`), so a filtered list can be shared
  const given = new URLSearchParams(window.location.search);
  for (const name of ["category", "tag", "language"]) {
    if (given.get(name)) $(`#filter-${name}`).value = given.get(name);
  }
  $("#filters").addEventListener("submit", (event) => {
    event.preventDefault();
    cursor = null;
    const shown = new URLSearchParams(new URL(query(false), window.location.origin).search);
    shown.delete("status");
    window.history.replaceState(null, "", `/${shown.size ? `?${shown}` : ""}`);
    loadStreams();
  });
  $("#more").addEventListener("click", () => loadStreams(true));
  await loadFollowing();
  await loadStreams();
}

main().catch((error) => show($("#page-error"), `The page could not start: ${error.message}`));
