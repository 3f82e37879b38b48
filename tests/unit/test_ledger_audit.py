"""The ledger audit on hand-made logs: it must name what is wrong, not only pass good logs."""

from __future__ import annotations

from datetime import UTC, datetime

from spaktok.events.envelope import seal
from spaktok.events.wallets import CoinsPurchased, GiftDebited
from spaktok.projections.ledger import _claims_money, audit

AT = datetime(2026, 1, 1, tzinfo=UTC)


def wallet_event(event: object, sequence: int, user: str = "ann", command: str = "") -> object:
    return seal(
        event,  # type: ignore[arg-type]
        aggregate_id=user,
        sequence=sequence,
        command_id=command or f"c{sequence}",
        index=0,
        correlation_id=f"c{sequence}",
        actor_id=user,
        occurred_at=AT,
    )


def bought(coins: int, balance: int) -> CoinsPurchased:
    return CoinsPurchased(payment_ref=f"p{coins}", coins=coins, balance=balance, purchased_at=AT)


def debit(seq: int, coins: int, balance: int) -> GiftDebited:
    return GiftDebited(
        gift_tx=f"ann:{seq}",
        seq=seq,
        send_id=f"s{seq}",
        stream_id="s1",
        gift_id="rose",
        count=coins,
        coins=coins,
        balance=balance,
        debited_at=AT,
    )


def test_a_consistent_log_passes_and_a_debit_without_decision_is_in_flight() -> None:
    report = audit([wallet_event(bought(10, 10), 1), wallet_event(debit(1, 4, 6), 2)])
    assert report.problems == []
    assert report.in_flight == {"ann:1": 4} and not report.settled


def test_a_wrong_balance_a_lost_event_and_a_rewritten_sequence_are_named() -> None:
    wrong_balance = audit([wallet_event(bought(10, 11), 1)])
    assert any("says balance 11, replayed 10" in p for p in wrong_balance.problems)
    lost = audit([wallet_event(bought(10, 10), 1), wallet_event(bought(5, 15), 3)])
    assert any("missing event sequence(s) [2]" in p for p in lost.problems)
    # another command decided at a sequence already in the log: the state had been rolled back
    forked = audit([wallet_event(bought(10, 10), 1), wallet_event(bought(7, 7), 1, command="other")])
    assert any("two events at sequence 1" in p for p in forked.problems)


def test_a_duplicate_of_the_same_event_is_dropped_silently() -> None:
    event = wallet_event(bought(10, 10), 1)
    report = audit([event, event])
    assert (report.problems, report.duplicates, report.wallets["ann"].balance) == ([], 1, 10)


def test_unreadable_records_fail_the_check_only_when_they_claim_to_be_money() -> None:
    assert not _claims_money(b"not-an-event")
    assert not _claims_money(b'{"type": "streams.CommentPosted"}')
    assert _claims_money(b'{"type": "wallets.GiftDebited", "payload": {}}')
    assert _claims_money(b'{"type": "streams.GiftReceived"}')
