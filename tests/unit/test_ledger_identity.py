"""Issue #16: the ledger's per-transaction invariants and receipt reconciliation on hand-made logs.

Each violation is built by hand and must be named with its ids; the same log without it must pass.
The double debit of one send and the double credit of one payment ref kept every sum conserved, so
the audit before issue #16 passed both.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from spaktok.commands.wallets import gift_transaction_id
from spaktok.events.base import Event
from spaktok.events.earnings import EarningsCredited, PayoutCompleted, PayoutFailed, PayoutRequested
from spaktok.events.envelope import Envelope, seal
from spaktok.events.streams import GiftReceived, GiftRefused
from spaktok.events.wallets import CoinsPurchased, GiftDebited, GiftRefunded
from spaktok.projections.ledger import LedgerReport, audit
from spaktok.projections.receipts import Receipt, read_receipts, reconcile

AT = datetime(2026, 1, 1, tzinfo=UTC)
FAN, HOST, STREAM = "ann", "host", "s1"
TX = gift_transaction_id("send-1")


class Log:
    """Events appended per aggregate with gap-free sequences, as the worker writes them."""

    def __init__(self) -> None:
        self.envelopes: list[Envelope] = []
        self.sequences: dict[str, int] = {}

    def add(self, event: Event, aggregate_id: str) -> Log:
        sequence = self.sequences.get(aggregate_id, 0) + 1
        self.sequences[aggregate_id] = sequence
        command = f"c-{aggregate_id}-{sequence}"
        self.envelopes.append(
            seal(
                event,
                aggregate_id=aggregate_id,
                sequence=sequence,
                command_id=command,
                index=0,
                correlation_id=command,
                actor_id=aggregate_id,
                occurred_at=AT,
            )
        )
        return self

    def audit(self) -> LedgerReport:
        return audit(self.envelopes)


def bought(coins: int, balance: int, ref: str = "pay-1") -> CoinsPurchased:
    return CoinsPurchased(payment_ref=ref, coins=coins, balance=balance, purchased_at=AT)


def debit(seq: int, coins: int, balance: int, send_id: str = "send-1", tx: str | None = None) -> GiftDebited:
    return GiftDebited(
        gift_tx=tx or gift_transaction_id(send_id),
        seq=seq,
        send_id=send_id,
        stream_id=STREAM,
        gift_id="rose",
        count=1,
        coins=coins,
        balance=balance,
        debited_at=AT,
    )


def received(tx: str, seq: int, coins: int, gifts: int, revenue: int) -> GiftReceived:
    share = coins // 2
    return GiftReceived(
        gift_tx=tx,
        wallet_seq=seq,
        sender_id=FAN,
        sender_username=FAN,
        receiver_id=HOST,
        receiver_username=HOST,
        gift_id="rose",
        gift_name="Rose",
        gift_image_url="i",
        gift_animation_url="a",
        count=1,
        coin_cost=coins,
        real_value_usd="0.01",
        broadcaster_share=share,
        platform_share=coins - share,
        is_premium_broadcaster=False,
        revenue_rule="spec-6.1-v1",
        is_combo=False,
        combo_id=tx,
        combo_count=1,
        sender_total_coins=revenue,
        gifts=gifts,
        gift_revenue=revenue,
        sent_at=AT,
    )


def credited(tx: str, stream_sequence: int, coins: int, balance: int) -> EarningsCredited:
    return EarningsCredited(
        stream_id=STREAM,
        stream_sequence=stream_sequence,
        gift_tx=tx,
        sender_id=FAN,
        coins=coins,
        balance=balance,
        credited_at=AT,
    )


def delivered_gift(coins: int = 100) -> Log:
    """A purchase and one gift, taken and credited: a settled, consistent log."""
    return (
        Log()
        .add(bought(coins, coins), FAN)
        .add(debit(1, coins, 0), FAN)
        .add(received(TX, 1, coins, 1, coins), STREAM)
        .add(credited(TX, 1, coins // 2, coins // 2), HOST)
    )


def requested(coins: int, balance: int, reserved: int, payout: str = "po_1") -> PayoutRequested:
    return PayoutRequested(
        payout_id=payout,
        method="paypal",
        coins=coins,
        amount_usd="0.40",
        balance=balance,
        reserved=reserved,
        requested_at=AT,
    )


def completed(coins: int, reserved: int, payout: str = "po_1") -> PayoutCompleted:
    return PayoutCompleted(payout_id=payout, coins=coins, reserved=reserved, completed_at=AT)


def failed(coins: int, balance: int, reserved: int, payout: str = "po_1") -> PayoutFailed:
    return PayoutFailed(
        payout_id=payout, coins=coins, reason="bank", balance=balance, reserved=reserved, failed_at=AT
    )


def named(report: LedgerReport, text: str) -> bool:
    return any(text in problem for problem in report.problems)


# --- the ledger's invariants ------------------------------------------------------------------------


def test_a_settled_log_with_intent_ids_passes() -> None:
    report = delivered_gift().audit()
    assert report.problems == [] and report.settled
    assert report.transactions[("gift", TX)].final == "delivered"
    assert report.transactions[("purchase", "pay-1")].effects == [100]


def test_one_send_debited_twice_is_named_although_every_sum_holds() -> None:
    """Two debits of one send id, as a wallet that lost its memory of the send would write them under
    the old "{sender}:{seq}" ids: both look legitimate, coins stay conserved (both in flight)."""
    old_shape = Log().add(bought(10, 10), FAN)
    old_shape.add(debit(1, 4, 6, tx=f"{FAN}:1"), FAN).add(debit(2, 4, 2, tx=f"{FAN}:2"), FAN)
    report = old_shape.audit()
    assert named(report, f"send send-1 was debited 2 times (transactions {FAN}:1, {FAN}:2)")
    # with intent ids the same double debit carries one id twice
    new_shape = Log().add(bought(10, 10), FAN).add(debit(1, 4, 6), FAN).add(debit(2, 4, 2), FAN)
    assert named(new_shape.audit(), f"send send-1 was debited 2 times (transactions {TX}, {TX})")
    # two sends, one debit each: nothing to name
    two = Log().add(bought(10, 10), FAN).add(debit(1, 4, 6), FAN).add(debit(2, 4, 2, send_id="send-2"), FAN)
    assert two.audit().problems == []


def test_a_transaction_id_that_does_not_derive_from_its_send_is_named() -> None:
    forged = Log().add(bought(10, 10), FAN).add(debit(1, 4, 6, tx=gift_transaction_id("another")), FAN)
    assert named(forged.audit(), "does not derive from its send send-1")
    odd = Log().add(bought(10, 10), FAN).add(debit(1, 4, 6, tx="bob:1"), FAN)
    assert named(odd.audit(), f"gift bob:1 is neither a send's id nor the old {FAN}:1")
    legacy = Log().add(bought(10, 10), FAN).add(debit(1, 4, 6, tx=f"{FAN}:1"), FAN)
    assert legacy.audit().problems == []  # debits logged before issue #16 stay valid


def test_one_payment_ref_credited_twice_is_named() -> None:
    twice = Log().add(bought(10, 10), FAN).add(bought(10, 20), FAN)
    assert named(twice.audit(), f"payment ref pay-1 was credited 2 times (10 to {FAN}, 10 to {FAN})")
    two_wallets = Log().add(bought(10, 10), FAN).add(bought(10, 10), "bob")
    assert named(two_wallets.audit(), f"payment ref pay-1 was credited 2 times (10 to {FAN}, 10 to bob)")
    distinct = Log().add(bought(10, 10), FAN).add(bought(10, 20, ref="pay-2"), FAN)
    assert distinct.audit().problems == []


def test_a_saga_both_credited_and_refunded_is_named() -> None:
    log = delivered_gift()
    refund = GiftRefunded(
        gift_tx=TX, seq=1, stream_id=STREAM, coins=100, reason="stream-not-live", balance=100, refunded_at=AT
    )
    report = log.add(refund, FAN).audit()
    assert named(report, f"gift {TX} ends in two final states, delivered and refunded")
    assert report.transactions[("gift", TX)].final == "conflicting"


def test_a_refused_and_refunded_gift_ends_refunded() -> None:
    refused = GiftRefused(
        gift_tx=TX, wallet_seq=1, sender_id=FAN, gift_id="rose", count=1, coin_cost=4,
        reason="stream-not-live", refused_at=AT,
    )  # fmt: skip
    refund = GiftRefunded(
        gift_tx=TX, seq=1, stream_id=STREAM, coins=4, reason="stream-not-live", balance=10, refunded_at=AT
    )
    log = Log().add(bought(10, 10), FAN).add(debit(1, 4, 6), FAN).add(refused, STREAM).add(refund, FAN)
    report = log.audit()
    assert report.problems == [] and report.transactions[("gift", TX)].final == "refunded"


def test_a_payout_reserved_once_and_settled_once_passes() -> None:
    report = delivered_gift().add(requested(40, 10, 40), HOST).add(completed(40, 0), HOST).audit()
    assert report.problems == [] and report.transactions[("payout", "po_1")].final == "completed"


def test_a_payout_settled_twice_is_named() -> None:
    log = delivered_gift().add(requested(40, 10, 40), HOST).add(completed(40, 0), HOST)
    report = log.add(failed(40, 50, -40), HOST).audit()
    assert named(report, "payout po_1 was settled 2 times (1 completed, 1 failed)")
    again = delivered_gift().add(requested(40, 10, 40), HOST).add(completed(40, 0), HOST)
    assert named(again.add(completed(40, -40), HOST).audit(), "payout po_1 was settled 2 times (2 completed")


def test_a_payout_reserved_twice_or_settled_unreserved_is_named() -> None:
    twice = delivered_gift().add(requested(20, 30, 20), HOST).add(requested(20, 10, 40), HOST)
    assert named(twice.audit(), "payout po_1 was reserved 2 times")
    unreserved = delivered_gift().add(completed(40, -40, payout="po_9"), HOST)
    assert named(unreserved.audit(), "payout po_9 was settled but never reserved")


# --- receipts ---------------------------------------------------------------------------------------


def receipt(
    tx: str = TX, kind: Any = "gift", coins: int = 100, status: Any = "accepted", user: str = FAN
) -> Receipt:
    return Receipt(transaction_id=tx, kind=kind, coins=coins, status=status, user_id=user)


def test_receipts_that_match_the_log_pass_even_when_complete() -> None:
    kept = [receipt(), receipt("pay-1", "purchase"), receipt(), receipt("tx_never", status="rejected")]
    result = reconcile(kept, delivered_gift().audit().transactions, complete=True)
    assert result.ok, result.problems()
    assert result.counts == {"accepted: matched": 3, "rejected: matched": 1}


def test_an_accepted_receipt_missing_from_the_log_is_named() -> None:
    lost = gift_transaction_id("send-lost")
    result = reconcile([receipt(), receipt(lost, coins=7)], delivered_gift().audit().transactions)
    assert result.missing == [f"gift {lost}"] and not result.ok
    assert any(lost in p for p in result.problems())


def test_a_transaction_no_receipt_names_is_named_when_the_receipts_are_complete() -> None:
    txs = delivered_gift().audit().transactions
    assert reconcile([receipt()], txs).ok  # a partial set of receipts claims nothing more
    result = reconcile([receipt()], txs, complete=True)
    assert result.unreceipted == ["purchase pay-1"]


def test_a_rejected_receipt_with_an_effect_and_a_doubled_effect_are_named() -> None:
    txs = delivered_gift().audit().transactions
    assert reconcile([receipt(status="rejected")], txs).unexpected == [f"gift {TX}"]
    doubled = Log().add(bought(10, 10), FAN).add(debit(1, 4, 6), FAN).add(debit(2, 4, 2), FAN)
    assert reconcile([receipt(coins=4, status="pending")], doubled.audit().transactions).doubled == [
        f"gift {TX}"
    ]
    wrong_coins = reconcile([receipt(coins=99)], txs)
    assert wrong_coins.mismatched == [f"gift {TX}"]


def test_a_refunded_gift_is_no_effect_for_a_rejected_receipt_and_pending_ones_are_counted() -> None:
    refused = GiftRefused(
        gift_tx=TX, wallet_seq=1, sender_id=FAN, gift_id="rose", count=1, coin_cost=4,
        reason="gifts-disabled", refused_at=AT,
    )  # fmt: skip
    refund = GiftRefunded(
        gift_tx=TX, seq=1, stream_id=STREAM, coins=4, reason="gifts-disabled", balance=10, refunded_at=AT
    )
    txs = Log().add(bought(10, 10), FAN).add(debit(1, 4, 6), FAN).add(refused, STREAM).add(refund, FAN)
    result = reconcile(
        [receipt(coins=4, status="rejected"), receipt(coins=4, status="pending")], txs.audit().transactions
    )
    assert result.ok and result.counts == {"rejected: matched": 1, "pending: not taken": 1}
    # a complete set names the refunded gift by its rejected receipt (bench/chaos.py: a gift refused
    # because the stream ended meanwhile, debited and refunded, answered as a problem)
    complete = [receipt("pay-1", "purchase", coins=10), receipt(coins=4, status="rejected")]
    assert reconcile(complete, txs.audit().transactions, complete=True).ok
    # told it was taken, yet it was refunded
    assert reconcile([receipt(coins=4)], txs.audit().transactions).mismatched == [f"gift {TX}"]


def test_a_conflicting_purchase_is_another_intent_and_answers_that_disagree_are_named() -> None:
    txs = delivered_gift().audit().transactions
    conflict = [receipt("pay-1", "purchase"), receipt("pay-1", "purchase", coins=5, status="rejected")]
    assert reconcile(conflict, txs).ok
    told_twice = [receipt(), receipt(status="rejected")]
    assert reconcile(told_twice, txs).disagreeing == [f"gift {TX}"]


def test_a_receipt_line_that_is_not_a_receipt_names_its_line() -> None:
    good = b'{"transactionId": "tx_1", "kind": "gift", "coins": 3, "status": "accepted", "userId": "ann"}'
    assert read_receipts([good, b"", good]) == [receipt("tx_1", coins=3)] * 2
    with pytest.raises(ValueError, match="line 2"):
        read_receipts(
            [
                good,
                b'{"transactionId": "tx_1", "kind": "tip", "coins": 3, "status": "accepted", "userId": "a"}',
            ]
        )
    with pytest.raises(ValueError, match="line 1"):
        read_receipts([b"{not json"])
