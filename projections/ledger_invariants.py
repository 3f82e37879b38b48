"""The ledger's per-transaction invariants (issue #16, DESIGN §3b): one intent, one effect, by its id.

`projections/ledger.py` replays balances and sagas; conserved sums cannot see a send that was wrongly
debited twice (both debits are "legitimate" coins). So this module indexes the same deduplicated
events by transaction id and reports every id that moved money more than once or ended in more than
one final state:

- a gift: its `gift_tx` — "tx_…" derived from the SendGift id (commands/wallets.py
  `gift_transaction_id`), or "{sender}:{seq}" on debits logged before issue #16 (both valid). Each
  send id is debited at most once, a new-shape id derives from its send id, and each saga ends in
  one final state: *delivered* (taken by the stream and credited) or *refunded* (refused and
  refunded), never parts of both. A saga still on its way is *in flight* — not a failure, the
  ledger's exit code 2 (and `--wait`) covers it;
- a purchase: its payment ref, credited at most once (in any wallet);
- a payout: its id, reserved once and settled at most once (completed or failed, not both, not twice),
  for the coins it reserved.

The index (`Transaction` per id) is also what client receipts are reconciled against
(projections/receipts.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from spaktok.commands.wallets import GIFT_TX_PREFIX, gift_transaction_id
from spaktok.events.envelope import Envelope

Kind = Literal["gift", "purchase", "payout"]


@dataclass
class Transaction:
    """Everything the log holds under one transaction id."""

    kind: Kind
    tx: str
    owners: list[str] = field(default_factory=list)  # per effect: the sender, buyer or broadcaster
    effects: list[int] = field(default_factory=list)  # coins of each debit, purchase or reservation
    received: int = 0  # gift: taken by the stream
    refused: int = 0
    refunded: int = 0
    credited: int = 0  # gift: the broadcaster's share credited
    completed: int = 0  # payout
    failed: int = 0
    settled_coins: list[int] = field(default_factory=list)

    @property
    def final(self) -> str:
        """delivered / refunded / in flight (gifts); pending / completed / failed (payouts);
        credited (purchases); `conflicting` when the log holds parts of two final states."""
        if self.kind == "gift":
            taken, given_back = self.received + self.credited, self.refused + self.refunded
            if taken and given_back:
                return "conflicting"
            if self.received and self.credited:
                return "delivered"
            if self.refused and self.refunded:
                return "refunded"
            return "in flight"
        if self.kind == "payout":
            if self.completed and self.failed:
                return "conflicting"
            return "completed" if self.completed else "failed" if self.failed else "pending"
        return "credited"


def index(envelopes: Iterable[Envelope]) -> dict[tuple[Kind, str], Transaction]:
    """Money events (deduplicated, any order) by (kind, transaction id)."""
    txs: dict[tuple[Kind, str], Transaction] = {}

    def get(kind: Kind, tx: str) -> Transaction:
        return txs.setdefault((kind, tx), Transaction(kind, tx))

    for env in envelopes:
        p, owner = env.payload, env.aggregate_id
        match env.type:
            case "wallets.GiftDebited":
                gift = get("gift", p["gift_tx"])
                gift.owners.append(owner)
                gift.effects.append(p["coins"])
            case "wallets.GiftRefunded":
                get("gift", p["gift_tx"]).refunded += 1
            case "streams.GiftReceived":
                get("gift", p["gift_tx"]).received += 1
            case "streams.GiftRefused":
                get("gift", p["gift_tx"]).refused += 1
            case "earnings.EarningsCredited" if p.get("source", "gift") == "gift":
                get("gift", p["gift_tx"]).credited += 1
            case "wallets.CoinsPurchased":
                purchase = get("purchase", p["payment_ref"])
                purchase.owners.append(owner)
                purchase.effects.append(p["coins"])
            case "earnings.PayoutRequested":
                payout = get("payout", p["payout_id"])
                payout.owners.append(owner)
                payout.effects.append(p["coins"])
            case "earnings.PayoutCompleted" | "earnings.PayoutFailed":
                payout = get("payout", p["payout_id"])
                payout.completed += env.type == "earnings.PayoutCompleted"
                payout.failed += env.type == "earnings.PayoutFailed"
                payout.settled_coins.append(p["coins"])
    return txs


def check(envelopes: list[Envelope], txs: dict[tuple[Kind, str], Transaction]) -> list[str]:
    """Every way the log breaks "one intent, one effect", each naming the offending ids."""
    problems = _send_ids(envelopes)
    for (kind, tx), t in sorted(txs.items()):
        if kind == "purchase" and len(t.effects) > 1:
            credits = ", ".join(
                f"{coins} to {owner}" for owner, coins in zip(t.owners, t.effects, strict=True)
            )
            problems.append(f"payment ref {tx} was credited {len(t.effects)} times ({credits})")
        elif kind == "gift":
            problems += _gift(t)
        elif kind == "payout":
            problems += _payout(t)
    return problems


def _send_ids(envelopes: list[Envelope]) -> list[str]:
    """Each send id debited at most once, under the id its intent names."""
    problems: list[str] = []
    debits: dict[str, list[str]] = {}
    for env in envelopes:
        if env.type != "wallets.GiftDebited":
            continue
        p = env.payload
        debits.setdefault(p["send_id"], []).append(p["gift_tx"])
        legacy = f"{env.aggregate_id}:{p['seq']}"
        if p["gift_tx"].startswith(GIFT_TX_PREFIX):
            if p["gift_tx"] != gift_transaction_id(p["send_id"]):
                problems.append(f"gift {p['gift_tx']} does not derive from its send {p['send_id']}")
        elif p["gift_tx"] != legacy:
            problems.append(f"gift {p['gift_tx']} is neither a send's id nor the old {legacy}")
    for send_id, txs in debits.items():
        if len(txs) > 1:
            problems.append(f"send {send_id} was debited {len(txs)} times (transactions {', '.join(txs)})")
    return problems


def _gift(t: Transaction) -> list[str]:
    if t.final != "conflicting":
        return []
    parts = [
        f"{n} {what}"
        for n, what in (
            (t.received, "taken"),
            (t.credited, "credited"),
            (t.refused, "refused"),
            (t.refunded, "refunded"),
        )
        if n
    ]
    return [f"gift {t.tx} ends in two final states, delivered and refunded ({', '.join(parts)})"]


def _payout(t: Transaction) -> list[str]:
    problems: list[str] = []
    settled = t.completed + t.failed
    if len(t.effects) > 1:
        problems.append(f"payout {t.tx} was reserved {len(t.effects)} times")
    if not t.effects and settled:
        problems.append(f"payout {t.tx} was settled but never reserved")
    if settled > 1:
        problems.append(
            f"payout {t.tx} was settled {settled} times ({t.completed} completed, {t.failed} failed)"
        )
    if t.effects and any(coins != t.effects[0] for coins in t.settled_coins):
        problems.append(f"payout {t.tx} reserved {t.effects[0]} coins, settled {t.settled_coins}")
    return problems
