// /studio: go live, the ingest settings, the live stream with moderation from the chat, guests, PK
// invitations, ending with the final stats (earnings, payouts and past streams: studio-past.js).

import {
  $, api, el, formatDuration, formatNumber, guardErrors, me, newKey, renderHeader, requireSignIn, show,
} from "./api.js";
import { LiveView } from "./live.js";
import { loadEarnings, loadPastStreams } from "./studio-past.js";

const HEARTBEAT_MS = 30000; // the broadcaster's app beats too: a silent one is ended (broadcaster_grace_s)
const INGEST_KEY = (id) => `spaktok.ingest.${id}`;

let user = null;
let view = null;
let heartbeat = null;

guardErrors();
renderHeader();
main().catch((error) => show($("#page-error"), `The page could not start: ${error.message}`));

async function main() {
  const root = $("#studio");
  if (!requireSignIn(root)) return;
  user = me();
  root.replaceChildren(
    el("p", { id: "studio-error", class: "error", role: "alert", hidden: true, "data-testid": "studio-error" }),
    el("div", { id: "live-area" }),
    el("section", { class: "panel", "aria-labelledby": "earnings-title" }, el("h2", { id: "earnings-title" }, "Earnings"), el("div", { id: "earnings" })),
    el("section", { class: "panel", "aria-labelledby": "past-title" }, el("h2", { id: "past-title" }, "Past streams"), el("div", { id: "past" })),
    el("section", { class: "panel", "aria-labelledby": "report-title", id: "report-panel", hidden: true },
      el("h2", { id: "report-title" }, "Stream report"), el("div", { id: "report" })),
  );
  const live = await api("GET", `/v1/users/${encodeURIComponent(user.id)}/live`);
  if (live.ok && live.data?.live && live.data.streamId) await openLive(live.data.streamId);
  else {
    if (!live.ok) show($("#studio-error"), live.message);
    goLiveForm();
  }
  loadEarnings();
  loadPastStreams(user);
}

function studioError(message) {
  show($("#studio-error"), message);
}

// --- going live -------------------------------------------------------------------------------------

function field(id, label, input) {
  input.id = id;
  return el("label", { for: id }, label, input);
}

function goLiveForm() {
  const form = el(
    "form",
    { class: "panel stack", id: "go-live-form", "aria-labelledby": "go-live-title" },
    el("h2", { id: "go-live-title" }, "Go live"),
    field("studio-title", "Title", el("input", { "data-testid": "studio-title", required: true, maxlength: 200 })),
    field("studio-category", "Category", el("input", { "data-testid": "studio-category", required: true, maxlength: 64, value: "chat" })),
    field("studio-tags", "Tags (comma-separated)", el("input", { "data-testid": "studio-tags", autocomplete: "off" })),
    field("studio-language", "Language", el("input", { "data-testid": "studio-language", value: "en", maxlength: 16 })),
    field("studio-privacy", "Who may watch",
      el("select", { "data-testid": "studio-privacy" },
        el("option", { value: "public" }, "Everyone"),
        el("option", { value: "followers" }, "Followers only"),
        el("option", { value: "private" }, "Private (invited only)"))),
    el("label", { class: "check", for: "studio-recorded" }, el("input", { id: "studio-recorded", type: "checkbox", "data-testid": "studio-recorded" }), "Record for replay"),
    el("label", { class: "check", for: "studio-comments" }, el("input", { id: "studio-comments", type: "checkbox", checked: true }), "Allow comments"),
    el("label", { class: "check", for: "studio-gifts" }, el("input", { id: "studio-gifts", type: "checkbox", checked: true }), "Allow gifts"),
    el("label", { class: "check", for: "studio-age" }, el("input", { id: "studio-age", type: "checkbox" }), "18+ only"),
    el("button", { type: "submit", "data-testid": "go-live" }, "Go live"),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = form.querySelector("[data-testid=go-live]");
    const body = {
      title: $("#studio-title").value.trim(),
      category: $("#studio-category").value.trim() || "chat",
      tags: $("#studio-tags").value.split(",").map((t) => t.trim()).filter(Boolean),
      language: $("#studio-language").value.trim() || "en",
      privacy: $("#studio-privacy").value,
      isRecorded: $("#studio-recorded").checked,
      allowComments: $("#studio-comments").checked,
      allowGifts: $("#studio-gifts").checked,
      isAgeRestricted: $("#studio-age").checked,
    };
    button.disabled = true;
    const started = await api("POST", "/v1/streams", body, { idempotencyKey: newKey() });
    button.disabled = false;
    if (!started.ok) {
      studioError(started.message);
      return;
    }
    let streamId = started.data?.streamId;
    if (started.data?.ingestUrl && streamId) localStorage.setItem(INGEST_KEY(streamId), started.data.ingestUrl);
    if (!streamId) streamId = await waitForLive(); // 202: decided after the wait
    if (!streamId) {
      studioError("The stream is starting; reload the page in a moment.");
      return;
    }
    studioError("");
    form.remove();
    await openLive(streamId, started.data);
  });
  $("#live-area").replaceChildren(form);
}

async function waitForLive() {
  for (let i = 0; i < 40; i += 1) {
    const live = await api("GET", `/v1/users/${encodeURIComponent(user.id)}/live`);
    if (live.ok && live.data?.live) return live.data.streamId;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  return null;
}

// --- the live stream --------------------------------------------------------------------------------

async function openLive(streamId, created = null) {
  const path = `/v1/streams/${encodeURIComponent(streamId)}`;
  if (created) await waitForLive(); // the read model follows the start: never ask it for a 404
  const doc = await api("GET", path);
  const stream = doc.ok ? doc.data : { streamId, title: created?.title || "", streamKey: created?.streamKey };
  if (!doc.ok) studioError(`The stream's document: ${doc.message}`);
  const ingestUrl = created?.ingestUrl || localStorage.getItem(INGEST_KEY(streamId)) || "rtmp://127.0.0.1:1935/live";
  const key = created?.streamKey || stream.streamKey || "";

  const area = $("#live-area");
  const ingest = ingestPanel(streamId, ingestUrl, key);
  const health = el("div", { id: "health", "aria-live": "polite", "data-testid": "health" });
  const finalStats = el("div", { id: "final-stats", "data-testid": "final-stats" });
  const endButton = el("button", { type: "button", "data-testid": "end-stream" }, "End stream");
  const tools = el("div", { class: "studio-tools" });
  view = new LiveView(streamId, {
    me: user,
    moderate: (comment, who) => moderationActions(streamId, comment, who),
    onHealth: (sample) => showHealth(health, sample.warnings || [], sample),
    onIngest: (state) => show(health, state === "live" ? "" : "Your encoder stopped sending: the stream ends if it does not come back.", "info"),
    onEnded: (data) => {
      endButton.remove();
      tools.remove();
      clearInterval(heartbeat);
      showFinal(finalStats, data);
      loadPastStreams(user);
    },
  });
  view.setViewers(stream.viewerCount);
  view.setLikes(stream.likes);
  area.replaceChildren(
    el("section", { class: "panel", "aria-labelledby": "live-title" },
      el("h2", { id: "live-title" }, "Live: ", el("span", { id: "stream-title" }, stream.title || "")),
      el("dl", { class: "kv" },
        el("dt", {}, "Stream id"), el("dd", {}, el("code", { "data-testid": "stream-id", "aria-label": "Stream id" }, streamId)),
        el("dt", {}, "Watch page"), el("dd", {}, el("a", { href: `/watch/${encodeURIComponent(streamId)}` }, `/watch/${streamId}`))),
      health, endButton, finalStats),
    el("div", { class: "studio-live" }, el("div", {}, ingest, tools), view.node),
  );
  tools.append(guestsPanel(streamId), moderatorPanel(streamId), battlePanel(streamId));
  endButton.addEventListener("click", async () => {
    endButton.disabled = true;
    const ended = await api("POST", `${path}/end`, undefined, { idempotencyKey: newKey() });
    endButton.disabled = false;
    if (!ended.ok) {
      studioError(`Ending the stream: ${ended.message}`);
      return;
    }
    showFinal(finalStats, ended.data || {});
    endButton.remove();
  });
  view.setGuests(stream.guestUsers || []);
  view.loadBattle(stream.pkBattleId);
  if (stream.ingestStatus === "live") loadHealth(streamId, health);
  await view.start();
  heartbeat = setInterval(() => api("POST", `${path}/heartbeat`), HEARTBEAT_MS);
  api("POST", `${path}/heartbeat`);
}

function ingestPanel(streamId, ingestUrl, key) {
  const keyNode = el("code", { "data-testid": "stream-key", id: "stream-key", "aria-label": "Stream key" }, key);
  const server = el("code", { "data-testid": "ingest-url", "aria-label": "Ingest server" }, ingestUrl);
  const ffmpeg = el("pre", {});
  const render = () => {
    ffmpeg.textContent =
      `ffmpeg -re -f lavfi -i testsrc2=size=1280x720:rate=30 -f lavfi -i sine=frequency=440 \\\n` +
      `  -c:v libx264 -preset veryfast -tune zerolatency -g 60 -c:a aac -f flv \\\n  "${server.textContent}/${keyNode.textContent}"`;
  };
  render();
  const rotate = el("button", { type: "button", class: "secondary", "data-testid": "rotate-key" }, "Rotate stream key");
  const note = el("p", { class: "hint", role: "status" });
  rotate.addEventListener("click", async () => {
    rotate.disabled = true;
    const rotated = await api("POST", `/v1/streams/${encodeURIComponent(streamId)}/stream-key`, undefined, { idempotencyKey: newKey() });
    rotate.disabled = false;
    if (!rotated.ok) {
      show(note, rotated.message);
      return;
    }
    keyNode.textContent = rotated.data?.streamKey || keyNode.textContent;
    if (rotated.data?.ingestUrl) {
      server.textContent = rotated.data.ingestUrl;
      localStorage.setItem(INGEST_KEY(streamId), rotated.data.ingestUrl);
    }
    render();
    note.textContent = "The old key no longer works: update your encoder.";
  });
  return el("section", { class: "panel", "aria-labelledby": "ingest-title" },
    el("h2", { id: "ingest-title" }, "Stream from OBS or ffmpeg"),
    el("dl", { class: "kv" }, el("dt", {}, "Server"), el("dd", {}, server), el("dt", {}, "Stream key"), el("dd", {}, keyNode)),
    el("p", { class: "hint" }, "OBS: Settings → Stream → Service “Custom…”, paste the server and the stream key. Keep the key secret."),
    el("p", { class: "hint" }, "ffmpeg (a test pattern):"), ffmpeg, rotate, note);
}

async function loadHealth(streamId, box) {
  const health = await api("GET", `/v1/streams/${encodeURIComponent(streamId)}/health`);
  if (health.ok) showHealth(box, health.data?.warnings || [], health.data);
}

function showHealth(box, warnings, sample) {
  const figures = sample && sample.bitrateKbps != null ? `${sample.bitrateKbps} kbit/s, ${sample.frameRate ?? "?"} fps` : "";
  if (!warnings.length) {
    box.className = "hint";
    box.textContent = figures ? `Encoder healthy: ${figures}.` : "";
    return;
  }
  box.className = "warning";
  box.replaceChildren(
    el("strong", {}, "Encoder warnings"), figures ? ` (${figures})` : "",
    el("ul", {}, ...warnings.map((w) => el("li", { "data-testid": "health-warning" }, typeof w === "string" ? w : w.message || w.code))),
  );
}

function showFinal(box, stats) {
  box.replaceChildren(
    el("h3", {}, "Final stats"),
    el("dl", { class: "kv" },
      el("dt", {}, "Duration"), el("dd", {}, formatDuration(stats.duration)),
      el("dt", {}, "Peak viewers"), el("dd", {}, formatNumber(stats.peakViewerCount)),
      el("dt", {}, "Total views"), el("dd", {}, formatNumber(stats.totalViews)),
      el("dt", {}, "Likes"), el("dd", {}, formatNumber(stats.likes)),
      el("dt", {}, "Comments"), el("dd", {}, formatNumber(stats.comments)),
      el("dt", {}, "Gifts"), el("dd", {}, formatNumber(stats.gifts)),
      el("dt", {}, "Gift revenue (coins)"), el("dd", {}, formatNumber(stats.giftRevenue))),
    el("button", { type: "button", onclick: () => location.reload() }, "Start another stream"),
  );
}

// --- moderation from the chat -----------------------------------------------------------------------

function moderationActions(streamId, comment, who) {
  const path = `/v1/streams/${encodeURIComponent(streamId)}`;
  const act = async (label, method, url, body) => {
    const result = await api(method, url, body, { idempotencyKey: newKey() });
    if (!result.ok) view.notice(`${label}: ${result.message}`);
    else if (label !== "Pin" && label !== "Delete") view.notice(`${label}: ${who} (${comment.userId})`);
  };
  const button = (label, testid, handler) =>
    el("button", { type: "button", class: "small secondary", "data-testid": testid, "aria-label": `${label} the message from ${who}`, onclick: handler }, label);
  const actions = el("span", { class: "mod-actions" },
    button("Pin", "mod-pin", () => act("Pin", "POST", `${path}/comments/${encodeURIComponent(comment.commentId)}/pin`)),
    button("Delete", "mod-delete", () => act("Delete", "DELETE", `${path}/comments/${encodeURIComponent(comment.commentId)}`)));
  if (comment.userId && comment.userId !== user.id) {
    actions.append(
      button("Timeout", "mod-timeout", () => act("Timed out for 10 minutes", "POST", `${path}/timeouts`, { userId: comment.userId, durationSeconds: 600, reason: "timed out from the studio" })),
      button("Ban", "mod-ban", () => act("Banned", "POST", `${path}/bans`, { userId: comment.userId, reason: "banned from the studio" })),
    );
  }
  return actions;
}

function userForm(id, label, buttonText, testid, onSubmit) {
  const input = el("input", { id, "data-testid": `${testid}-user`, autocomplete: "off", maxlength: 128, required: true });
  const status = el("p", { class: "hint", role: "status" });
  const form = el("form", { class: "row" }, el("label", { for: id }, label, input), el("button", { type: "submit", "data-testid": `${testid}-submit` }, buttonText));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const value = input.value.trim();
    if (!value) return;
    const result = await onSubmit(value);
    status.textContent = result.ok ? "Done." : result.message;
    if (result.ok) input.value = "";
  });
  return [form, status];
}

function moderatorPanel(streamId) {
  const [form, status] = userForm("moderator-user", "User id", "Add moderator", "add-moderator", (userId) =>
    api("POST", `/v1/streams/${encodeURIComponent(streamId)}/moderators`, { userId }, { idempotencyKey: newKey() }));
  return el("section", { class: "panel", "aria-labelledby": "mods-title" }, el("h2", { id: "mods-title" }, "Moderators"), form, status);
}

function guestsPanel(streamId) {
  const path = `/v1/streams/${encodeURIComponent(streamId)}`;
  const list = el("ul", { "data-testid": "guest-list" });
  const [form, status] = userForm("guest-user", "User id", "Invite to the stage", "invite-guest", (userId) =>
    api("POST", `${path}/guests`, { userId }, { idempotencyKey: newKey() }));
  const render = (ids) => {
    list.replaceChildren(...ids.map((id) => el("li", {}, id, " ",
      el("button", { type: "button", class: "small secondary", "aria-label": `Remove ${id} from the stage`, onclick: async () => {
        const removed = await api("DELETE", `${path}/guests/${encodeURIComponent(id)}`);
        status.textContent = removed.ok ? `${id} left the stage.` : removed.message;
      } }, "Remove"))));
  };
  view.options.onGuests = render;
  return el("section", { class: "panel", "aria-labelledby": "guests-title" }, el("h2", { id: "guests-title" }, "Guests"), form, status, list);
}

function battlePanel(streamId) {
  const opponent = el("input", { id: "pk-opponent", "data-testid": "pk-opponent", required: true, autocomplete: "off" });
  const duration = el("input", { id: "pk-duration", "data-testid": "pk-duration", type: "number", min: 10, max: 3600, value: 300 });
  const status = el("p", { class: "hint", role: "status", "data-testid": "pk-status" });
  const invite = el("form", { class: "row" },
    el("label", { for: "pk-opponent" }, "Opponent's stream id", opponent),
    el("label", { for: "pk-duration" }, "Seconds", duration),
    el("button", { type: "submit", "data-testid": "pk-invite" }, "Invite to a PK battle"));
  invite.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = { streamId, opponentStreamId: opponent.value.trim(), durationSeconds: Number(duration.value) || undefined };
    const result = await api("POST", "/v1/pk-battles", body, { idempotencyKey: newKey() });
    status.textContent = result.ok ? `Invitation sent (battle ${result.data?.battleId}, ${result.data?.status}).` : result.message;
    if (result.ok) battleId.value = result.data?.battleId || "";
  });
  const battleId = el("input", { id: "pk-battle-id", "data-testid": "pk-battle-id", autocomplete: "off" });
  const answer = (verb) => async () => {
    const id = battleId.value.trim();
    if (!id) return;
    const result = await api("POST", `/v1/pk-battles/${encodeURIComponent(id)}/${verb}`, undefined, { idempotencyKey: newKey() });
    status.textContent = result.ok ? `Battle ${id}: ${result.data?.status || verb}.` : result.message;
  };
  const reply = el("div", { class: "row" },
    el("label", { for: "pk-battle-id" }, "Battle id (an invitation you received)", battleId),
    el("button", { type: "button", "data-testid": "pk-accept", onclick: answer("accept") }, "Accept"),
    el("button", { type: "button", class: "secondary", "data-testid": "pk-decline", onclick: answer("decline") }, "Decline"));
  return el("section", { class: "panel", "aria-labelledby": "pk-title" }, el("h2", { id: "pk-title" }, "PK battles"), invite, reply, status);
}
