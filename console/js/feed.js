// The realtime feed of one stream (docs/realtime.md): a WebSocket whose messages are JSON arrays of
// items. Items carrying a `sequence` at or below the last one seen are skipped (a reconnect's overlap).

import { token } from "./api.js";

// closes after which reconnecting cannot help: ended (1000), refused (4401/4403/4404)
// items numbered by another log (a battle's), or sent apart from the shared frames (health): not
// part of the stream's sequence
const OWN_SEQUENCE = new Set(["pk_started", "pk_ended", "health"]);
const FINAL = new Set([1000, 4401, 4403, 4404]);
const CLOSE_WORDS = {
  1000: "The stream ended.",
  4401: "The feed refused your sign-in. Please sign in again.",
  4403: "You may no longer watch this stream.",
  4404: "This stream does not exist or is private.",
};

// 4403's reason is the problem slug (docs/realtime.md "Closing")
const REFUSALS = {
  "user-banned": "You were banned from this stream.",
  "stream-suspended": "The platform's moderation team suspended this stream.",
  "followers-only": "This stream is now for the broadcaster's followers only.",
  "private-stream": "This stream is now private.",
  "age-restricted": "This stream is now for viewers 18 and over.",
  "account-suspended": "Your account is suspended.",
};

function closeWords(code, reason) {
  if (code === 4403 && REFUSALS[reason]) return REFUSALS[reason];
  const words = CLOSE_WORDS[code] || `The feed closed (${code}).`;
  return reason ? `${words} (${reason})` : words;
}

export function openFeed(streamId, { onItems, onState }) {
  let socket = null;
  let lastSequence = -1;
  let stopped = false;
  let attempts = 0;

  const state = (name, detail = "", code = undefined) => onState && onState(name, detail, code);

  function connect() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const url = `${scheme}://${location.host}/v1/streams/${encodeURIComponent(streamId)}/live?access_token=${encodeURIComponent(token() || "")}`;
    try {
      socket = new WebSocket(url);
    } catch (error) {
      state("closed", `The feed could not be opened (${error.message}).`);
      return;
    }
    state("connecting");
    socket.addEventListener("open", () => {
      attempts = 0;
      state("live");
    });
    socket.addEventListener("message", (event) => {
      let items;
      try {
        items = JSON.parse(event.data);
      } catch {
        return; // not a frame of ours
      }
      if (!Array.isArray(items)) return;
      const fresh = items.filter((item) => {
        if (!item || typeof item !== "object") return false;
        if (typeof item.sequence !== "number" || OWN_SEQUENCE.has(item.type)) return true;
        if (item.sequence <= lastSequence) return false;
        lastSequence = item.sequence;
        return true;
      });
      try {
        onItems(fresh);
      } catch (error) {
        state("live", `An item could not be shown (${error.message}).`);
      }
    });
    socket.addEventListener("error", () => {
      // the close event follows with the code; nothing to do here
    });
    socket.addEventListener("close", (event) => {
      socket = null;
      if (stopped) {
        state("closed", "");
        return;
      }
      if (FINAL.has(event.code) || attempts >= 5) {
        stopped = true;
        state("closed", closeWords(event.code, event.reason), event.code);
        return;
      }
      attempts += 1;
      state("connecting", `Reconnecting to the feed (closed with ${event.code})…`);
      setTimeout(connect, Math.min(10000, 500 * 2 ** attempts));
    });
  }

  connect();
  return {
    close() {
      stopped = true;
      if (socket) socket.close(1000);
      else state("closed", "");
    },
    get open() {
      return socket !== null && socket.readyState === WebSocket.OPEN;
    },
  };
}
