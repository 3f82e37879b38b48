"""`spaktok ledger check --receipts FILE`: a client's receipts reconciled against the log (issue #16).

A receipt is what the API answered one intent, kept by the client, one JSON object a line
(docs/money.md "Receipts"):

    {"transactionId": "tx_…", "kind": "gift", "coins": 30, "status": "accepted", "userId": "ann"}

`kind` is gift | purchase | payout; `transactionId` the answer's `transactionId` (a gift's id, a
purchase's payment ref, a payout's id); `coins` what it moves (a send's cost, the coins bought, the
coins reserved); `status` accepted | rejected | pending; `userId` the sender, buyer or broadcaster.

Both sides come from different places — the client's answers, the events — so a doubled or lost
effect shows, whatever the sums say:

- accepted: the log holds exactly one effect under the id, with those coins and that user; an
  accepted gift is not refunded (delivered, or still in flight);
- rejected: no effect under the id stays in the log (a refused gift may be debited if it was
  refunded and never credited; a rejected purchase's coins were never credited under the ref);
- pending (the client never learnt the outcome): at most one effect; counted as taken or not;
- two receipts of one intent (a retry's answer) must agree once decided;
- with `complete=True` (`--receipts-complete`: the client kept every receipt, as bench/chaos.py
  does), every transaction in the log is named by an accepted or pending receipt.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import orjson

from spaktok.projections.ledger_invariants import Kind, Transaction

Status = Literal["accepted", "rejected", "pending"]


@dataclass(frozen=True)
class Receipt:
    transaction_id: str
    kind: Kind
    coins: int
    status: Status
    user_id: str

    @classmethod
    def parse(cls, data: dict[str, Any]) -> Receipt:
        receipt = cls(
            transaction_id=str(data["transactionId"]),
            kind=data["kind"],
            coins=int(data["coins"]),
            status=data["status"],
            user_id=str(data["userId"]),
        )
        if receipt.kind not in get_args(Kind) or receipt.status not in get_args(Status):
            raise ValueError(f"kind must be one of {get_args(Kind)}, status one of {get_args(Status)}")
        return receipt


@dataclass
class ReceiptReport:
    """Counts by outcome and, per failure, the offending transaction ids."""

    receipts: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    missing: list[str] = field(default_factory=list)  # accepted, no effect in the log (lost)
    doubled: list[str] = field(default_factory=list)  # more than one effect under one id
    mismatched: list[str] = field(default_factory=list)  # coins, user or final state differ
    unexpected: list[str] = field(default_factory=list)  # rejected, yet an effect stayed in the log
    disagreeing: list[str] = field(default_factory=list)  # two answers to one intent differ
    unreceipted: list[str] = field(default_factory=list)  # in the log, named by no receipt

    @property
    def ok(self) -> bool:
        return not (
            self.missing
            or self.doubled
            or self.mismatched
            or self.unexpected
            or self.disagreeing
            or self.unreceipted
        )

    def problems(self) -> list[str]:
        return [
            f"{what}: {len(ids)} ({', '.join(sorted(ids)[:20])}{' …' if len(ids) > 20 else ''})"
            for what, ids in (
                ("accepted receipts missing from the log", self.missing),
                ("transactions with more than one effect", self.doubled),
                ("receipts whose coins, user or outcome differ from the log", self.mismatched),
                ("rejected receipts with an effect in the log", self.unexpected),
                ("intents answered differently on retry", self.disagreeing),
                ("transactions in the log that no receipt names", self.unreceipted),
            )
            if ids
        ]


def read_receipts(lines: Iterable[str | bytes]) -> list[Receipt]:
    """Parse JSON lines (blank lines skipped); a bad line names its number."""
    receipts = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            receipts.append(Receipt.parse(orjson.loads(line)))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"receipt line {number} is not a receipt ({exc}); see docs/money.md") from exc
    return receipts


def reconcile(
    receipts: list[Receipt], txs: dict[tuple[Kind, str], Transaction], *, complete: bool = False
) -> ReceiptReport:
    """Each receipt against the log's transaction index (LedgerReport.transactions)."""
    report = ReceiptReport(receipts=len(receipts))
    _disagreements(report, receipts)
    for receipt in receipts:
        key = (receipt.kind, receipt.transaction_id)
        outcome = _judge(receipt, txs.get(key))
        report.counts[f"{receipt.status}: {outcome}"] += 1
        if outcome in ("missing", "doubled", "mismatched", "unexpected"):
            getattr(report, outcome).append(f"{receipt.kind} {receipt.transaction_id}")
    if complete:
        # a rejected receipt names its transaction too: a gift refused after its debit (the stream
        # ended meanwhile) is in the log as a debit and its refund, and `_judge` already says
        # whether that rejection left an effect
        named = {(r.kind, r.transaction_id) for r in receipts}
        for (kind, tx), t in sorted(txs.items()):
            if t.effects and (kind, tx) not in named:
                report.unreceipted.append(f"{kind} {tx}")
    for ids in (report.missing, report.doubled, report.mismatched, report.unexpected):
        ids[:] = sorted(set(ids))
    return report


def _judge(receipt: Receipt, t: Transaction | None) -> str:
    """One receipt's outcome: matched / missing / doubled / mismatched / unexpected, or for a pending
    one: taken / not taken / in flight."""
    effects = t.effects if t is not None else []
    if len(effects) > 1:
        return "doubled"
    if receipt.status == "rejected":
        return "unexpected" if t is not None and _stayed(t, receipt) else "matched"
    if not effects:
        return "missing" if receipt.status == "accepted" else "not taken"
    assert t is not None
    same = (t.owners[0], effects[0]) == (receipt.user_id, receipt.coins)
    if receipt.status == "pending":
        if not same:
            return "mismatched"
        return {"refunded": "not taken", "in flight": "in flight"}.get(t.final, "taken")
    if not same or t.final in ("refunded", "conflicting"):
        return "mismatched"
    return "matched"


def _stayed(t: Transaction, receipt: Receipt) -> bool:
    """Does the rejected intent's effect remain in the log? A gift refunded (and never credited) does
    not; a purchase refused as `payment-ref-conflict` leaves the ref's first credit, of other coins."""
    if t.kind == "purchase":
        return (receipt.user_id, receipt.coins) in zip(t.owners, t.effects, strict=True)
    if not t.effects:
        return t.credited > 0 or t.received > 0
    return not (t.kind == "gift" and t.final == "refunded")


def _disagreements(report: ReceiptReport, receipts: list[Receipt]) -> None:
    """Receipts of one intent (a retry's answer next to the first) must tell the same story."""
    decided: dict[tuple[str, str], set[tuple[str, int, str]]] = {}
    for r in receipts:
        if r.status != "pending":
            decided.setdefault((r.kind, r.transaction_id), set()).add((r.status, r.coins, r.user_id))
    for (kind, tx), answers in sorted(decided.items()):
        accepted = {a for a in answers if a[0] == "accepted"}
        # a purchase rejected for another amount under a ref that was credited is a second intent
        if len(accepted) > 1 or (accepted and kind != "purchase" and len(answers) > 1):
            report.disagreeing.append(f"{kind} {tx}")
