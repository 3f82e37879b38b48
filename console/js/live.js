// One live stream as the watch page and the studio show it: counters, chat (history, then the feed),
// gift animations, the top-gifter leaderboard, the PK battle bar and the guests on stage.
// The feed's item types are docs/realtime.md's; the page decides what the viewer may do besides.

import { $, api, el, formatNumber, show } from "./api.js";
import { openFeed } from "./feed.js";
import { pkMethods } from "./live-pk.js";

const ANIMATION_MS = 6000;
const END_WORDS = {
  ended_by_broadcaster: "The broadcaster ended the stream.",
  suspended: "The stream was ended by the platform's moderation team.",
};

export class LiveView {
  /**
   * @param {string} streamId
   * @param {{me: {id: string, name: string}, moderate?: boolean, onBanned?: Function, onEnded?: Function,
   *          onHealth?: Function, onIngest?: Function, onStatus?: Function}} options
   */
  constructor(streamId, options) {
    this.streamId = streamId;
    this.options = options;
    this.seen = new Set(); // comment ids shown (history and feed overlap)
    this.gifters = new Map(); // userId -> {userId, username, coins}
    this.shownLikes = 0;
    this.battle = null;
    this.feed = null;
    this.chatClosed = false;
    this.node = this.build();
  }

  build() {
    const stat = (label, testid, extra = {}) =>
      el("div", { class: "stat" }, el("span", { class: "stat-label", id: `${testid}-label` }, label),
        el("span", { class: "stat-value", "data-testid": testid, "aria-labelledby": `${testid}-label`, ...extra }, "0"));
    this.viewerCount = stat("Viewers", "viewer-count");
    this.likeCount = stat("Likes", "like-count");
    this.feedStatus = el("span", { "data-testid": "feed-status", "aria-label": "Feed status", class: "feed-status" }, "connecting");
    this.feedNotice = el("p", { class: "notice", role: "status", hidden: true, "data-testid": "feed-notice" });
    this.pinned = el("div", { class: "pinned", hidden: true, "data-testid": "pinned-message", "aria-label": "Pinned message" });
    this.pkBar = this.buildPkBar();
    this.guests = el("p", { class: "guests", "data-testid": "guests", "aria-label": "Guests on stage", hidden: true });
    this.animations = el("div", { class: "gift-animations", "aria-live": "polite", "aria-label": "Gifts" });
    this.chatList = el("ul", { class: "chat-list", "data-testid": "chat-list", role: "log", "aria-label": "Chat" });
    this.chatError = el("p", { class: "error", role: "alert", hidden: true, "data-testid": "chat-error" });
    this.chatForm = this.buildChatForm();
    this.leaderboard = el("ol", { class: "leaderboard", "data-testid": "leaderboard", "aria-label": "Top gifters" });
    return el(
      "div",
      { class: "live-view" },
      el("div", { class: "stats" }, this.viewerCount, this.likeCount,
        el("div", { class: "stat" }, el("span", { class: "stat-label" }, "Feed"), this.feedStatus)),
      this.feedNotice,
      this.pkBar,
      this.guests,
      this.animations,
      el("section", { class: "chat", "aria-label": "Chat" }, el("h2", {}, "Chat"), this.pinned, this.chatList, this.chatError, this.chatForm),
      el("section", { class: "top-gifters", "aria-labelledby": "top-gifters-title" },
        el("h2", { id: "top-gifters-title" }, "Top gifters"), this.leaderboard),
    );
  }

  buildChatForm() {
    const input = el("input", {
      id: "chat-input", "data-testid": "chat-input", type: "text", maxlength: 500, autocomplete: "off",
      placeholder: "Say something nice",
    });
    const send = el("button", { type: "submit", "data-testid": "chat-send" }, "Send");
    const form = el("form", { class: "chat-form", "aria-label": "Send a message" },
      el("label", { for: "chat-input", class: "visually-hidden" }, "Message"), input, send);
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.sendComment(input, send);
    });
    return form;
  }

  /** History, leaderboard, then the feed. */
  async start() {
    await Promise.all([this.loadHistory(), this.loadLeaderboard()]);
    this.feed = openFeed(this.streamId, {
      onItems: (items) => items.forEach((item) => this.handle(item)),
      onState: (name, detail, code) => this.feedState(name, detail, code),
    });
    this.pkTimer = setInterval(() => this.tickPk(), 1000);
  }

  stop() {
    if (this.feed) this.feed.close();
    clearInterval(this.pkTimer);
  }

  feedState(name, detail, code) {
    this.feedStatus.textContent = name;
    this.feedStatus.dataset.state = name;
    show(this.feedNotice, detail || "", name === "closed" ? "error" : "info");
    if (name === "closed") {
      this.closeChat(detail || "The feed is closed.");
      if (code === 4403 && this.options.onBanned) this.options.onBanned(detail);
      if (this.options.onStatus) this.options.onStatus("closed", detail, code);
    }
  }

  async loadHistory() {
    const result = await api("GET", `/v1/streams/${encodeURIComponent(this.streamId)}/comments?types=text,gift,system&limit=50`);
    if (!result.ok) {
      this.notice(`Chat history is not available: ${result.message}`);
      return;
    }
    const comments = Array.isArray(result.data?.comments) ? [...result.data.comments].reverse() : [];
    for (const c of comments) {
      if (c.type === "gift") this.addNotice(`${c.username || c.userId} ${c.text || "sent a gift"}`, c.commentId);
      else if (c.type === "system") this.addNotice(c.text || c.systemKind || "system message", c.commentId);
      else this.addComment(c);
      if (c.isPinned) this.pin(c.commentId);
    }
  }

  async loadLeaderboard() {
    const result = await api("GET", `/v1/streams/${encodeURIComponent(this.streamId)}/leaderboard`);
    if (!result.ok) return; // the feed's leaderboard items fill it in
    for (const g of result.data?.topGifters || []) this.gifters.set(g.userId, g);
    this.renderLeaderboard();
  }

  async sendComment(input, send) {
    const text = input.value.trim();
    if (!text || this.chatClosed) return;
    send.disabled = true;
    const result = await api("POST", `/v1/streams/${encodeURIComponent(this.streamId)}/comments`, { text });
    send.disabled = false;
    if (!result.ok) {
      show(this.chatError, result.message);
      return;
    }
    show(this.chatError, "");
    input.value = "";
    input.focus();
    if (result.data && result.data.commentId) {
      this.addComment({ ...result.data, username: result.data.username || this.options.me.name, userId: result.data.userId || this.options.me.id });
    }
  }

  // --- the feed's items ---------------------------------------------------------------------------

  handle(item) {
    const data = item.data && typeof item.data === "object" ? { ...item.data, ...item } : item;
    switch (item.type) {
      case "snapshot":
        this.setViewers(data.viewerCount);
        this.setLikes(data.likes);
        if (data.status === "ended") this.ended(data);
        break;
      case "comment":
        this.addComment(data);
        break;
      case "join":
        this.addNotice(`${data.username || data.userId} joined`, null, "join");
        break;
      case "likes":
        this.setLikes(data.totalLikes);
        break;
      case "viewers":
        this.setViewers(data.viewerCount);
        break;
      case "deleted":
        this.removeComment(data.commentId);
        break;
      case "pinned":
        if (data.previousCommentId) this.unpin(data.previousCommentId);
        this.pin(data.commentId);
        break;
      case "unpinned":
        this.unpin(data.commentId);
        break;
      case "banned":
        this.banned(data);
        break;
      case "updated":
        this.addNotice(`The broadcaster changed the stream's settings (${Object.keys(data.changes || {}).join(", ")}).`);
        if (data.changes && data.changes.title) {
          const title = $("#stream-title");
          if (title) title.textContent = data.changes.title;
        }
        break;
      case "status":
        this.ended(data);
        break;
      case "gift":
        this.gift(data);
        break;
      case "leaderboard":
        for (const g of data.gifters || []) this.gifters.set(g.userId, g);
        this.renderLeaderboard();
        break;
      case "pk_started":
        this.pkStart(data);
        break;
      case "pk_score":
        this.pkScore(data);
        break;
      case "pk_ended":
        this.pkEnd(data);
        break;
      case "guest_joined":
        this.addNotice(`${data.userId} went on stage`);
        this.setGuests(data.guests);
        break;
      case "guest_left":
        this.addNotice(`${data.userId} left the stage (${data.reason || "left"})`);
        this.setGuests(data.guests);
        break;
      case "ingest":
        this.addNotice(data.ingest === "live" ? "The broadcaster's video is live." : "The broadcaster's video is reconnecting…");
        if (this.options.onIngest) this.options.onIngest(data.ingest, data.at);
        break;
      case "health":
        if (this.options.onHealth) this.options.onHealth(data);
        break;
      default:
        break; // an item type this console does not know yet
    }
  }

  setViewers(n) {
    if (typeof n === "number") this.viewerCount.querySelector(".stat-value").textContent = formatNumber(n);
  }

  setLikes(total) {
    if (typeof total !== "number") return;
    this.shownLikes = Math.max(this.shownLikes, total);
    this.likeCount.querySelector(".stat-value").textContent = formatNumber(this.shownLikes);
  }

  /** A tap shown at once; the feed's total catches up within a second or two. */
  addLocalLikes(count) {
    this.shownLikes += count;
    this.likeCount.querySelector(".stat-value").textContent = formatNumber(this.shownLikes);
  }

  addComment(c) {
    if (!c.commentId || this.seen.has(c.commentId)) return;
    this.seen.add(c.commentId);
    const who = c.username || c.userId || "someone";
    const item = el("li", {
      class: "chat-message", "data-testid": "chat-message", "data-comment-id": c.commentId,
      "data-user-id": c.userId, "data-at": c.at || c.timestamp || "",
    }, el("strong", { class: "author" }, who), ": ", el("span", { class: "text" }, c.text || ""));
    if (this.options.moderate) item.append(this.options.moderate(c, who));
    this.append(item);
  }

  addNotice(text, id = null, kind = "system") {
    if (id) {
      if (this.seen.has(id)) return;
      this.seen.add(id);
    }
    this.append(el("li", { class: `chat-notice ${kind}`, "data-testid": "chat-notice" }, text));
  }

  notice(text) {
    this.addNotice(text);
  }

  append(item) {
    const list = this.chatList;
    const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
    list.append(item);
    while (list.children.length > 300) list.firstElementChild.remove();
    if (atBottom) list.scrollTop = list.scrollHeight;
  }

  messageNode(commentId) {
    return [...this.chatList.querySelectorAll("[data-comment-id]")].find((n) => n.dataset.commentId === commentId);
  }

  removeComment(commentId) {
    const node = this.messageNode(commentId);
    if (node) node.remove();
    if (this.pinned.dataset.commentId === commentId) this.unpin(commentId);
  }

  pin(commentId) {
    const node = this.messageNode(commentId);
    if (node) node.classList.add("is-pinned");
    this.pinned.dataset.commentId = commentId;
    const text = node ? `${node.querySelector(".author")?.textContent}: ${node.querySelector(".text")?.textContent}` : "A message is pinned.";
    this.pinned.replaceChildren(el("span", { class: "pin-label" }, "Pinned"), " ", text);
    this.pinned.hidden = false;
  }

  unpin(commentId) {
    const node = this.messageNode(commentId);
    if (node) node.classList.remove("is-pinned");
    if (this.pinned.dataset.commentId === commentId) {
      this.pinned.hidden = true;
      delete this.pinned.dataset.commentId;
    }
  }

  banned(data) {
    const since = data.commentsDeletedSince ? Date.parse(data.commentsDeletedSince) : NaN;
    for (const node of this.chatList.querySelectorAll("[data-user-id]")) {
      if (node.dataset.userId !== data.userId) continue;
      const at = Date.parse(node.dataset.at);
      if (Number.isNaN(since) || Number.isNaN(at) || at >= since) node.remove();
    }
    if (data.userId === this.options.me.id) {
      this.addNotice("You were banned from this stream.", null, "alert");
      this.closeChat("You were banned from this stream.");
      if (this.options.onBanned) this.options.onBanned("You were banned from this stream.");
      if (this.feed) this.feed.close();
    } else {
      this.addNotice(`${data.userId} was banned.`);
    }
  }

  closeChat(reason) {
    if (this.chatClosed) return;
    this.chatClosed = true;
    this.chatForm.replaceWith(el("p", { class: "notice", "data-testid": "chat-closed" }, reason));
  }

  ended(data) {
    const words = END_WORDS[data.reason] || (data.reason ? `The stream ended (${data.reason}).` : "The stream ended.");
    this.addNotice(words, "status-ended", "alert");
    this.closeChat(words);
    if (this.options.onEnded) this.options.onEnded(data, words);
  }

  gift(g) {
    const name = g.giftName || g.giftId || "a gift";
    const count = g.count && g.count > 1 ? ` (${g.count})` : "";
    const combo = g.comboCount && g.comboCount > 1 ? ` x${g.comboCount}` : "";
    const key = g.comboId || g.giftTx || String(Math.random());
    let node = [...this.animations.children].find((n) => n.dataset.comboId === key);
    const text = `${g.senderUsername || g.senderId} sent ${name}${count}${combo}`;
    if (!node) {
      node = el("div", { class: "gift-animation", "data-testid": "gift-animation", "data-combo-id": key, role: "status" });
      this.animations.append(node);
    }
    // only an image of this site: a catalog's CDN may be unreachable (a failed load is a console error)
    const image = g.giftImageUrl && /^\/[^/]/.test(g.giftImageUrl)
      ? el("img", { src: g.giftImageUrl, alt: "", width: 32, height: 32, onerror: (e) => e.target.remove() })
      : el("span", { class: "gift-icon", "aria-hidden": "true" }, "🎁");
    node.replaceChildren(image, el("span", {}, text));
    node.classList.remove("pop");
    void node.offsetWidth; // restart the animation
    node.classList.add("pop");
    clearTimeout(node.timer);
    // the newest stays until the next gift replaces it; older ones fade out
    node.timer = setTimeout(() => {
      if (node !== this.animations.lastElementChild) node.remove();
    }, ANIMATION_MS);
    for (const other of [...this.animations.children]) {
      if (other !== node && !other.timer) other.remove();
    }
    while (this.animations.children.length > 3) this.animations.firstElementChild.remove();
    this.addNotice(text, g.giftTx ? g.giftTx : null, "gift");
  }

  renderLeaderboard() {
    const top = [...this.gifters.values()].sort((a, b) => (b.coins || 0) - (a.coins || 0)).slice(0, 10);
    this.leaderboard.replaceChildren(
      ...top.map((g) =>
        el("li", { "data-testid": "leaderboard-entry", "data-user-id": g.userId },
          el("span", { class: "name" }, g.username || g.userId), " ",
          el("span", { class: "coins" }, `${formatNumber(g.coins)} coins`)),
      ),
    );
    if (!top.length) this.leaderboard.append(el("li", { class: "empty" }, "No gifts yet."));
  }

  setGuests(guests) {
    const names = (Array.isArray(guests) ? guests : []).map((g) => (typeof g === "string" ? g : g.username || g.userId));
    this.guests.hidden = names.length === 0;
    this.guests.textContent = names.length ? `On stage: ${names.join(", ")}` : "";
    this.guestIds = (Array.isArray(guests) ? guests : []).map((g) => (typeof g === "string" ? g : g.userId));
    if (this.options.onGuests) this.options.onGuests(this.guestIds);
  }
}

// the PK battle bar's methods live in live-pk.js
Object.assign(LiveView.prototype, pkMethods);
