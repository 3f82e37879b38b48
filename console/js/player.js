// The HLS player: hls.js when the set-up installed it (the page is told by the server, so a missing
// file is never requested), the browser's own HLS when it has one, else how to play it elsewhere.

import { el } from "./api.js";

let hlsLoading = null;
const RETRIES = 5;
const RETRY_MS = 3000;

function loadHls(src) {
  if (window.Hls) return Promise.resolve(window.Hls);
  if (!hlsLoading) {
    hlsLoading = new Promise((resolve) => {
      const script = el("script", { src });
      script.addEventListener("load", () => resolve(window.Hls || null));
      script.addEventListener("error", () => resolve(null));
      document.head.append(script);
    });
  }
  return hlsLoading;
}

function elsewhere(url, why) {
  return el(
    "div",
    { class: "player-notice", "data-testid": "player", role: "note", "aria-label": "Video player" },
    el("p", {}, why),
    el("p", {}, "Open the stream in VLC, ffplay or Safari:"),
    el("code", { class: "url" }, url),
    el("p", { class: "hint" }, "For example: ", el("code", {}, `ffplay "${url}"`)),
  );
}

export function waiting(text) {
  return el("div", { class: "player-notice", "data-testid": "player", role: "note", "aria-label": "Video player" }, text);
}

/** Mount a player for `url` into `area`; returns a function that stops it. */
export async function mountPlayer(area, url, onProblem) {
  const hlsSrc = document.body.dataset.hlsSrc;
  const video = el("video", {
    "data-testid": "player", controls: true, muted: true, autoplay: true, playsinline: true,
    "aria-label": "Live video",
  });
  video.muted = true; // autoplay is allowed for muted video only
  if (hlsSrc) {
    const Hls = await loadHls(hlsSrc);
    if (Hls && Hls.isSupported()) {
      const hls = new Hls({ lowLatencyMode: true });
      let retries = 0;
      hls.on(Hls.Events.ERROR, (_event, data) => {
        if (!data || !data.fatal) return;
        if (data.type === Hls.ErrorTypes.MEDIA_ERROR) hls.recoverMediaError();
        else if (data.type === Hls.ErrorTypes.NETWORK_ERROR && retries < RETRIES) {
          retries += 1; // a playlist not written yet, a media server restarting: try again shortly
          setTimeout(() => hls.loadSource(url), RETRY_MS);
        } else if (onProblem) onProblem(`The video stopped (${data.details}).`);
      });
      hls.on(Hls.Events.FRAG_LOADED, () => {
        retries = 0;
      });
      hls.loadSource(url);
      hls.attachMedia(video);
      area.replaceChildren(video);
      video.play().catch(() => {});
      return () => hls.destroy();
    }
  }
  if (video.canPlayType("application/vnd.apple.mpegurl")) {
    video.src = url;
    video.addEventListener("error", () => onProblem && onProblem("The video could not be played."));
    area.replaceChildren(video);
    video.play().catch(() => {});
    return () => video.removeAttribute("src");
  }
  area.replaceChildren(elsewhere(url, "This browser cannot play HLS video by itself, and hls.js is not installed."));
  return () => {};
}
