"""What the system's event log says happened to each intent, folded as a consumer reads it.

Records are read once each (the fold is incremental: the state machine looks after every step) and
deduplicated by aggregate sequence, as every consumer does; two different events at one sequence,
or a second effect of one intent (one send id debited twice, one payment ref credited twice, one
wallet gift decided or refunded twice, one payout requested or settled twice), are recorded as
problems rather than silently dropped.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from spaktok.events.envelope import decode_envelope
from spaktok.infra import topics

EVENT_TOPICS = (topics.EVENTS_WALLETS.name, topics.EVENTS_STREAMS.name, topics.EVENTS_EARNINGS.name)


@dataclass
class LogView:
    """The money facts of the log so far."""

    read: int = 0  # records of the log folded so far
    seen: dict[tuple[str, str, int], str] = field(default_factory=dict)  # (type, id, seq) -> event id
    problems: list[str] = field(default_factory=list)
    purchased: int = 0
    debits: dict[str, dict[str, Any]] = field(default_factory=dict)  # send id -> GiftDebited payload
    send_of: dict[tuple[str, int], str] = field(default_factory=dict)  # (user, wallet seq) -> send id
    received: dict[str, int] = field(default_factory=dict)  # send id -> coins taken by the stream
    refused: dict[str, int] = field(default_factory=dict)  # send id -> coins refused by the stream
    refunded: dict[str, int] = field(default_factory=dict)  # send id -> coins back in the wallet
    platform: int = 0
    shares: int = 0  # broadcaster shares decided by streams
    credited: int = 0  # broadcaster shares credited to earnings
    effects: Counter[tuple[str, ...]] = field(default_factory=Counter)

    def fold(self, log: list[tuple[str, str, bytes]]) -> None:
        """Fold the records appended since the last call."""
        for topic, _, value in log[self.read :]:
            if topic in EVENT_TOPICS:
                self._event(decode_envelope(value))
        self.read = len(log)

    def _event(self, env: Any) -> None:
        if env.sequence == 0:
            return  # refusals of commands: facts about a command, not about money
        at = (env.aggregate_type, env.aggregate_id, env.sequence)
        if at in self.seen:
            if self.seen[at] != env.event_id:
                self.problems.append(f"two different events at {at}")
            return
        self.seen[at] = env.event_id
        self._money(env.type, env.aggregate_id, env.payload)

    def _once(self, *effect: str) -> None:
        self.effects[effect] += 1
        if self.effects[effect] > 1:
            self.problems.append(f"second effect of one intent: {effect}")

    def _money(self, kind: str, aggregate_id: str, p: dict[str, Any]) -> None:
        match kind:
            case "wallets.CoinsPurchased":
                self._once("purchase", aggregate_id, p["payment_ref"])
                self.purchased += p["coins"]
            case "wallets.GiftDebited":
                self._once("debit", p["send_id"])
                self.debits[p["send_id"]] = p
                self.send_of[(aggregate_id, p["seq"])] = p["send_id"]
            case "wallets.GiftRefunded":
                send = self.send_of.get((aggregate_id, p["seq"]), f"?{p['seq']}")
                self._once("refund", send)
                self.refunded[send] = p["coins"]
            case "streams.GiftReceived" | "streams.GiftRefused":
                send = self.send_of.get((p["sender_id"], p["wallet_seq"]), f"?{p['wallet_seq']}")
                self._once("decision", send)
                if kind == "streams.GiftRefused":
                    self.refused[send] = p["coin_cost"]
                    return
                self.received[send] = p["coin_cost"]
                self.platform += p["platform_share"]
                self.shares += p["broadcaster_share"]
            case "earnings.EarningsCredited":
                self._once("credit", p["stream_id"], str(p["stream_sequence"]))
                self.credited += p["coins"]
            case "earnings.PayoutRequested":
                self._once("payout", aggregate_id, p["payout_id"])
            case "earnings.PayoutCompleted" | "earnings.PayoutFailed":
                self._once("settled", aggregate_id, p["payout_id"])

    def gifts_in_flight(self) -> int:
        """Coins debited that are neither taken by a stream nor back in a wallet."""
        debited = sum(p["coins"] for p in self.debits.values())
        return debited - sum(self.received.values()) - sum(self.refunded.values())
