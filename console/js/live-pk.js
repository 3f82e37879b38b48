// The PK battle bar of a LiveView (live.js): both scores, the bar between them, the countdown and the
// result. Mixed into LiveView's prototype, so `this` is the view.

import { api, el, formatNumber } from "./api.js";

export const pkMethods = {
  buildPkBar() {
    this.pkLabel1 = el("span", { class: "pk-label", id: "pk-label-1" }, "Stream 1");
    this.pkLabel2 = el("span", { class: "pk-label", id: "pk-label-2" }, "Stream 2");
    this.pkScore1 = el("span", { "data-testid": "pk-score-1", class: "pk-score", "aria-labelledby": "pk-label-1" }, "0");
    this.pkScore2 = el("span", { "data-testid": "pk-score-2", class: "pk-score", "aria-labelledby": "pk-label-2" }, "0");
    this.pkFill = el("div", { class: "pk-fill" });
    this.pkCountdown = el("span", { "data-testid": "pk-countdown", class: "pk-countdown", "aria-label": "Battle time left" }, "");
    this.pkResult = el("p", { class: "pk-result", role: "status" });
    return el("section", { class: "pk-bar", "data-testid": "pk-bar", "aria-label": "PK battle", hidden: true },
      el("div", { class: "pk-row" }, el("span", {}, this.pkLabel1, " ", this.pkScore1), this.pkCountdown,
        el("span", {}, this.pkScore2, " ", this.pkLabel2)),
      el("div", { class: "pk-track" }, this.pkFill),
      this.pkResult);
  },

  pkStart(b) {
    this.battle = { ...b, score1: 0, score2: 0, ended: false };
    this.pkBar.hidden = false;
    const label = (id) => (id === this.streamId ? "This stream" : "Opponent");
    this.pkLabel1.textContent = label(b.stream1Id);
    this.pkLabel2.textContent = label(b.stream2Id);
    this.pkResult.textContent = "";
    this.renderPk();
    this.tickPk();
  },

  pkScore(b) {
    if (!this.battle || this.battle.battleId !== b.battleId) this.pkStart(b);
    this.battle.score1 = b.score1 ?? this.battle.score1;
    this.battle.score2 = b.score2 ?? this.battle.score2;
    this.renderPk();
  },

  pkEnd(b) {
    if (!this.battle || this.battle.battleId !== b.battleId) this.pkStart(b);
    Object.assign(this.battle, { score1: b.score1, score2: b.score2, ended: true });
    this.renderPk();
    const won = b.isTie ? "It's a tie!" : b.winnerStreamId === this.streamId ? "This stream won!" : "The opponent won.";
    this.pkResult.textContent = `Battle over: ${won}`;
    this.pkCountdown.textContent = "ended";
    this.addNotice(`PK battle over: ${won} (${b.score1} – ${b.score2})`);
  },

  renderPk() {
    const { score1 = 0, score2 = 0 } = this.battle;
    this.pkScore1.textContent = formatNumber(score1);
    this.pkScore2.textContent = formatNumber(score2);
    const total = score1 + score2;
    this.pkFill.style.width = `${total ? (100 * score1) / total : 50}%`;
  },

  tickPk() {
    if (!this.battle || this.battle.ended) return;
    const ends = Date.parse(this.battle.endsAt);
    if (Number.isNaN(ends)) return;
    const left = Math.max(0, Math.round((ends - Date.now()) / 1000));
    this.pkCountdown.textContent = `${Math.floor(left / 60)}:${String(left % 60).padStart(2, "0")}`;
  },

  /** A battle already under way when the page opened (the stream document names it). */
  async loadBattle(battleId) {
    if (!battleId) return;
    const result = await api("GET", `/v1/pk-battles/${encodeURIComponent(battleId)}`);
    if (!result.ok || !result.data) return;
    const b = result.data;
    if (b.status && b.status !== "active") return;
    this.pkStart({ battleId: b.battleId || battleId, stream1Id: b.stream1Id || b.streamId, stream2Id: b.stream2Id || b.opponentStreamId, endsAt: b.endsAt });
    this.pkScore({ battleId: b.battleId || battleId, score1: b.score1 ?? 0, score2: b.score2 ?? 0 });
  },
};
