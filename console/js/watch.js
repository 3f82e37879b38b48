// /watch/{streamId}: join, play, chat, like, gift. Every refusal of the API is shown in words.

import { $, api, el, formatNumber, guardErrors, me, newKey, renderHeader, requireSignIn, show } from "./api.js";
import { LiveView } from "./live.js";
import { mountPlayer, waiting } from "./player.js";

const HEARTBEAT_MS = 30000; // the API drops a viewer silent for viewer_timeout_s (120 s)
const LIKE_FLUSH_MS = 1000; // taps are batched into one POST a second (API.md: count 1..1000)
const COIN_PACK = 100;
// the transcoder writes the first playlist a few seconds after the encoder starts: asking earlier is a
// 404 (an error in the browser's console), so the player waits this long after the ingest began
const PLAYER_DELAY_MS = 10000;

guardErrors();
renderHeader();
main().catch((error) => show($("#page-error"), `The page could not start: ${error.message}`));

async function main() {
  const streamId = decodeURIComponent(location.pathname.split("/")[2] || "");
  const errorBox = $("#watch-error");
  const content = $("#watch-content");
  if (!requireSignIn(content)) return;
  const user = me();
  const path = `/v1/streams/${encodeURIComponent(streamId)}`;

  const doc = await api("GET", path);
  if (!doc.ok) {
    show(errorBox, doc.message);
    content.replaceChildren();
    return;
  }
  $("#stream-title").textContent = doc.data.title || "Untitled stream";
  $("#stream-by").textContent = `${doc.data.username || doc.data.userId} · ${doc.data.category || ""}`;
  document.title = `${doc.data.title || "Watch"} · Spaktok Live`;
  if (doc.data.status !== "live") {
    show(errorBox, "This stream has ended.");
    offerReplay(content, path, doc.data);
    return;
  }

  const joined = await api("POST", `${path}/viewers`, undefined, { idempotencyKey: newKey() });
  if (!joined.ok) {
    show(errorBox, joined.message);
    content.replaceChildren();
    return;
  }
  let playbackUrl = joined.data?.playbackUrl;
  const playerArea = $("#player-area");
  let stopPlayer = () => {};
  const startPlayer = async () => {
    stopPlayer();
    if (!playbackUrl) {
      playerArea.replaceChildren(waiting("No playback address was issued for this stream."));
      return;
    }
    stopPlayer = await mountPlayer(playerArea, playbackUrl, (words) => show($("#player-problem"), words, "info"));
  };
  let playerTimer = null;
  const startAfterIngest = (since) => {
    clearTimeout(playerTimer);
    playerArea.replaceChildren(waiting("The broadcaster's video is starting…"));
    const began = Date.parse(since);
    const wait = Number.isNaN(began) ? PLAYER_DELAY_MS : Math.max(0, began + PLAYER_DELAY_MS - Date.now());
    playerTimer = setTimeout(startPlayer, Math.min(wait, PLAYER_DELAY_MS));
  };
  if (doc.data.ingestStatus === "live") startAfterIngest(doc.data.ingestChangedAt);
  else playerArea.replaceChildren(waiting("Waiting for the broadcaster's video…"));
  // the ingest may begin between the read above and the feed's first frame, and the feed tells only
  // what happens after it: until the video is known to be coming, ask the document again now and then
  let ingestCheck = null;
  const stopIngestCheck = () => clearInterval(ingestCheck);
  if (playerTimer === null) {
    ingestCheck = setInterval(async () => {
      if (playerTimer !== null) return stopIngestCheck();
      const again = await api("GET", `/v1/streams/${encodeURIComponent(streamId)}`);
      if (again.ok && again.data?.ingestStatus === "live" && playerTimer === null) {
        startAfterIngest(again.data.ingestChangedAt);
      }
    }, 3000);
  }

  let heartbeat = null;
  const view = new LiveView(streamId, {
    me: user,
    onBanned: (words) => {
      stopIngestCheck();
      show(errorBox, words || "You are banned from this stream.");
      removeViewerActions();
      stopPlayer();
      clearInterval(heartbeat);
    },
    onEnded: (data, words) => {
      stopIngestCheck();
      show(errorBox, words);
      removeViewerActions();
      clearInterval(heartbeat);
      stopPlayer();
      playerArea.replaceChildren(waiting(words));
    },
    onStatus: (state, detail) => {
      if (state === "closed") stopIngestCheck();
      // the feed closed for good (ended, refused, suspended): say so if nothing else did
      if (state === "closed" && errorBox.hidden) show(errorBox, detail || "The live feed closed.");
      removeViewerActions();
      clearInterval(heartbeat);
    },
    onIngest: (state, at) => {
      if (state === "live") startAfterIngest(at);
      else show($("#player-problem"), "The broadcaster's video is reconnecting…", "info");
    },
  });
  view.setViewers(joined.data?.viewerCount);
  view.setLikes(doc.data.likes);
  $("#live-slot").replaceWith(view.node);
  const actions = viewerActions(streamId, view, user);
  view.node.prepend(actions);
  view.loadBattle(doc.data.pkBattleId);
  view.setGuests(doc.data.guestUsers || []);
  await view.start();

  heartbeat = setInterval(async () => {
    const beat = await api("POST", `${path}/heartbeat`);
    if (beat.ok) {
      view.setViewers(beat.data?.viewerCount);
      if (beat.data?.playbackUrl) playbackUrl = beat.data.playbackUrl;
      else if (beat.data?.playbackRefused) show(errorBox, `Playback stopped: ${beat.data.playbackRefused}`);
    } else if (beat.status === 409) {
      await api("POST", `${path}/viewers`, undefined, { idempotencyKey: newKey() }); // dropped: join again
    }
  }, HEARTBEAT_MS);
  window.addEventListener("pagehide", () => {
    const headers = { Authorization: `Bearer ${localStorage.getItem("spaktok.token") || ""}` };
    fetch(`${path}/viewers/me`, { method: "DELETE", headers, keepalive: true }).catch(() => {});
  });
}

function removeViewerActions() {
  for (const node of document.querySelectorAll(".viewer-actions")) node.remove();
}

async function offerReplay(content, path, stream) {
  content.replaceChildren();
  if (!stream.isRecorded) return;
  const replay = await api("GET", `${path}/replay`);
  if (replay.ok && replay.data?.replayUrl) {
    const area = el("div", { class: "player" });
    content.append(el("h2", {}, "Replay"), area);
    mountPlayer(area, replay.data.replayUrl);
  } else if (!replay.ok) {
    content.append(el("p", { class: "notice" }, `No replay: ${replay.message}`));
  }
}

function viewerActions(streamId, view, user) {
  const path = `/v1/streams/${encodeURIComponent(streamId)}`;
  const status = el("p", { class: "error", role: "alert", hidden: true, "data-testid": "action-error" });

  // likes: counted at once, sent once a second
  let pending = 0;
  const likeButton = el("button", { type: "button", class: "like", "data-testid": "like-button", "aria-label": "Like" }, "♥ Like");
  likeButton.addEventListener("click", () => {
    pending += 1;
    view.addLocalLikes(1);
  });
  setInterval(async () => {
    if (!pending) return;
    const count = Math.min(pending, 1000);
    pending -= count;
    const sent = await api("POST", `${path}/likes`, { count });
    if (!sent.ok) show(status, sent.message);
  }, LIKE_FLUSH_MS);

  // gifts and the wallet
  const picker = el("select", { id: "gift-picker", "data-testid": "gift-picker" });
  const giftButton = el("button", { type: "button", "data-testid": "gift-button" }, "Send gift");
  const balance = el("span", { "data-testid": "balance", id: "balance", "aria-labelledby": "balance-label" }, "0");
  const buy = el("button", { type: "button", class: "secondary", "data-testid": "buy-coins" }, `Buy ${COIN_PACK} coins`);

  const refreshWallet = async () => {
    const wallet = await api("GET", "/v1/wallet");
    if (wallet.ok) balance.textContent = formatNumber(wallet.data?.balance ?? wallet.data?.coins);
    else show(status, `Wallet: ${wallet.message}`);
  };
  const loadGifts = async () => {
    const catalog = await api("GET", "/v1/gifts");
    if (!catalog.ok) {
      show(status, `Gifts: ${catalog.message}`);
      return;
    }
    const gifts = [...(catalog.data?.gifts || [])].sort((a, b) => a.coinCost - b.coinCost);
    picker.replaceChildren(
      ...gifts.map((g) => el("option", { value: g.giftId, "data-gift-id": g.giftId }, `${g.name} (${g.coinCost} coins)`)),
    );
  };
  giftButton.addEventListener("click", async () => {
    const giftId = picker.value;
    if (!giftId) return;
    giftButton.disabled = true;
    const sent = await api("POST", `${path}/gifts`, { giftId, count: 1 }, { idempotencyKey: newKey() });
    giftButton.disabled = false;
    if (!sent.ok) show(status, sent.message);
    else {
      show(status, "");
      const left = Number(balance.textContent) - (sent.data?.coinCost || 0);
      if (sent.data?.coinCost && left >= 0) balance.textContent = formatNumber(left);
      setTimeout(refreshWallet, 1500); // the wallet read model follows within a moment
    }
  });
  buy.addEventListener("click", async () => {
    buy.disabled = true;
    const body = { userId: user.id, coins: COIN_PACK, paymentRef: `console-${newKey()}` };
    const bought = await api("POST", "/v1/wallet/purchases", body, { idempotencyKey: newKey() });
    buy.disabled = false;
    if (!bought.ok) show(status, `Buying coins: ${bought.message}`);
    else {
      show(status, "");
      if (typeof bought.data?.balance === "number") balance.textContent = formatNumber(bought.data.balance);
      else refreshWallet();
    }
  });
  loadGifts();
  refreshWallet();

  // a viewer the broadcaster invited goes on stage (the feed's guest_joined shows it to everyone)
  const stage = el("button", { type: "button", class: "secondary", "data-testid": "guest-accept" }, "Join the stage (if invited)");
  stage.addEventListener("click", async () => {
    const accepted = await api("POST", `${path}/guests/accept`, undefined, { idempotencyKey: newKey() });
    show(status, accepted.ok ? "You are on stage." : `Joining the stage: ${accepted.message}`, accepted.ok ? "info" : "error");
  });

  return el(
    "section",
    { class: "viewer-actions", "aria-label": "Like and gift" },
    likeButton,
    el("div", { class: "gift-row" },
      el("label", { for: "gift-picker" }, "Gift"), picker, giftButton),
    el("div", { class: "wallet-row" },
      el("span", { id: "balance-label" }, "Balance"), " ", balance, " coins ", buy),
    stage,
    status,
  );
}
