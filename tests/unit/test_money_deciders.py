"""Wallet, gift delivery and earnings deciders in given/when/then form (issue #4's rules)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from gwt import Aggregate, at
from pydantic import ValidationError
from test_stream_decider import HOST, banned, ended, started

from spaktok.commands.earnings import CompletePayout, Credit, CreditEarnings, FailPayout, RequestPayout
from spaktok.commands.earnings_decide import EarningsState
from spaktok.commands.earnings_decide import decide as decide_earnings
from spaktok.commands.earnings_decide import evolve as evolve_earnings
from spaktok.commands.earnings_decide import thaw as thaw_earnings
from spaktok.commands.gifts import REVENUE_RULE, CatalogGift, coins_for_usd, load_catalog, split_revenue, usd
from spaktok.commands.stream_decide import decide as decide_stream
from spaktok.commands.stream_state import StreamState, evolve, thaw
from spaktok.commands.streams import DeliverGift, UpdateStream
from spaktok.commands.wallet_decide import IDEMPOTENCY_WINDOW_MS, INLINE_SENDS, SEND_BUCKET_MS, WalletState
from spaktok.commands.wallet_decide import decide as decide_wallet
from spaktok.commands.wallet_decide import evolve as evolve_wallet
from spaktok.commands.wallet_decide import join as join_wallet
from spaktok.commands.wallet_decide import split as split_wallet
from spaktok.commands.wallet_decide import thaw as thaw_wallet
from spaktok.commands.wallets import PurchaseCoins, RefundGift, SendGift, gift_transaction_id
from spaktok.events.earnings import EarningsCredited, PayoutCompleted, PayoutFailed, PayoutRequested
from spaktok.events.streams import GiftReceived, GiftRefused, StreamUpdated
from spaktok.events.wallets import CoinsPurchased, GiftDebited, GiftRefunded

WALLET = Aggregate(WalletState, decide_wallet, evolve_wallet, thaw_wallet)
STREAM = Aggregate(StreamState, decide_stream, evolve, thaw)
EARNINGS = Aggregate(EarningsState, decide_earnings, evolve_earnings, thaw_earnings)

FAN = "fan"
ROSE = CatalogGift(gift_id="rose", name="Rose", image_url="i", animation_url="a", coin_cost=1, comboable=True)
LION = CatalogGift(gift_id="lion", name="Lion", image_url="i", animation_url="a", coin_cost=29999)
DONUT = CatalogGift(
    gift_id="doughnut", name="Doughnut", image_url="i", animation_url="a", coin_cost=30, comboable=True
)


def purchased(coins: int, balance: int, ref: str = "pay-1") -> CoinsPurchased:
    return CoinsPurchased(payment_ref=ref, coins=coins, balance=balance, purchased_at=at(0))


def purchase(coins: int, ref: str = "pay-1") -> PurchaseCoins:
    return PurchaseCoins(
        command_id=f"buy-{ref}", issued_at=at(0), actor_id="admin", user_id=FAN, coins=coins, payment_ref=ref
    )


def send(
    gift: CatalogGift = ROSE, count: int = 1, seconds: float = 1, command_id: str = "send-1"
) -> SendGift:
    return SendGift(
        command_id=command_id,
        issued_at=at(seconds),
        actor_id=FAN,
        user_id=FAN,
        stream_id="s-1",
        sender_name="Fan",
        gift=gift,
        count=count,
        coin_value_usd="0.01",
        combo_window_ms=5000,
    )


def debited(seq: int, coins: int, balance: int, seconds: float = 1, send_id: str = "send-1") -> GiftDebited:
    return GiftDebited(
        gift_tx=gift_transaction_id(send_id),
        seq=seq,
        send_id=send_id,
        stream_id="s-1",
        gift_id="rose",
        count=coins,
        coins=coins,
        balance=balance,
        debited_at=at(seconds),
    )


# --- wallet -------------------------------------------------------------------------------------


def test_a_purchase_credits_the_wallet() -> None:
    WALLET.given().when(purchase(500)).then(purchased(500, 500))


def test_the_same_payment_twice_credits_once() -> None:
    WALLET.given(purchased(500, 500)).when(purchase(500)).then()


def test_the_same_payment_ref_with_another_amount_is_a_conflict() -> None:
    WALLET.given(purchased(500, 500)).when(purchase(900)).then_rejected("payment-ref-conflict")


def test_a_gift_debits_the_sender_and_numbers_the_gift() -> None:
    WALLET.given(purchased(10, 10)).when(send(count=3)).then(debited(1, 3, 7))


def test_coins_never_go_negative() -> None:
    refused = WALLET.given(purchased(10, 10)).when(send(LION)).then_rejected("insufficient-coins")
    assert "29999" in refused.detail


def test_a_retried_send_is_recognised_within_the_window() -> None:
    WALLET.given(purchased(10, 10), debited(1, 1, 9)).when(send(seconds=3600)).then()


def test_a_retried_send_is_recognised_until_the_end_of_the_window() -> None:
    almost = IDEMPOTENCY_WINDOW_MS / 1000 - 1
    WALLET.given(
        purchased(10, 10), debited(1, 1, 9), debited(2, 1, 8, seconds=almost, send_id="send-2")
    ).when(send(seconds=almost)).then()


def test_the_send_memory_forgets_a_bucket_once_all_of_it_is_past_the_window() -> None:
    later = (IDEMPOTENCY_WINDOW_MS + SEND_BUCKET_MS) / 1000
    state = WALLET.given(
        purchased(10, 10), debited(1, 1, 9), debited(2, 1, 8, seconds=later, send_id="send-2")
    ).state
    assert state.sent("send-2") and not state.sent("send-1")
    assert len(state.recent_sends) == 1


def test_sends_are_kept_in_buckets_of_debit_time() -> None:
    bucket_s = SEND_BUCKET_MS / 1000
    state = WALLET.given(
        purchased(10, 10),
        debited(1, 1, 9),
        debited(2, 1, 8, seconds=2, send_id="send-2"),
        debited(3, 1, 7, seconds=bucket_s + 1, send_id="send-3"),
    ).state
    assert [sorted(b) for b in state.recent_sends.values()] == [["send-1", "send-2"], ["send-3"]]


def test_a_debit_stamped_before_the_newest_bucket_leaves_the_shared_buckets_alone() -> None:
    """Two API instances' clocks may disagree: an earlier stamp lands in its own (older) bucket,
    copied first, since a thawed state shares every bucket but the newest with the stored one."""
    bucket_s = SEND_BUCKET_MS / 1000
    stored = WALLET.given(
        purchased(10, 10), debited(1, 1, 9, seconds=1), debited(2, 1, 8, seconds=2 * bucket_s, send_id="late")
    ).state
    before = {bucket: dict(sends) for bucket, sends in stored.recent_sends.items()}
    state = evolve_wallet(thaw_wallet(stored), debited(3, 1, 7, seconds=2, send_id="skewed"))
    assert stored.recent_sends == before  # the stored state is untouched
    assert list(state.recent_sends) == sorted(state.recent_sends)  # buckets stay oldest first
    assert state.sent("skewed") and state.sent("send-1") and state.sent("late")


def test_a_wallet_keeps_its_newest_sends_in_its_record_and_older_buckets_as_parts() -> None:
    crowd = {f"old-{i}": 1 for i in range(INLINE_SENDS)}
    state = WalletState(recent_sends={7: {"oldest": 0}, 8: crowd, 9: {"new": 2}})
    main, parts = split_wallet(state)
    assert main["recent_sends"] == {"9": {"new": 2}}  # 8 would make it 1 + INLINE_SENDS ids
    assert parts == {"sends-7": {"oldest": 0}, "sends-8": crowd}
    assert join_wallet(orjson.loads(orjson.dumps(main)), parts) == state


def test_a_heavy_gifters_wallet_record_stays_bounded() -> None:
    """20,000 sends in 20 hours (a tap every 3.6 s): before buckets, the wallet's one record held
    every id of the day (~1 MB, the size a broker refuses), rewritten with every gift."""
    state = WalletState(balance=10**9)
    for seq in range(1, 20_001):
        state = evolve_wallet(state, debited(seq, 1, 10**9 - seq, seconds=seq * 3.6, send_id=f"send-{seq}"))
    main, parts = split_wallet(state)
    assert len(orjson.dumps(main)) < 30_000
    assert max(len(orjson.dumps(part)) for part in parts.values()) < 30_000
    assert state.sent("send-1") and state.sent("send-20000")


def test_a_wallet_with_few_sends_is_one_record() -> None:
    state = WalletState(recent_sends={7: {"a": 0}, 9: {"b": 2}})
    main, parts = split_wallet(state)
    assert (main["recent_sends"], parts) == ({"7": {"a": 0}, "9": {"b": 2}}, {})


def test_a_wallet_stored_before_buckets_loads_its_sends_into_buckets() -> None:
    flat = {**WalletState().to_dict(), "recent_sends": {"send-1": 5 * SEND_BUCKET_MS + 7}}
    assert WalletState.from_dict(flat).recent_sends == {5: {"send-1": 5 * SEND_BUCKET_MS + 7}}


def refund(seq: int, coins: int) -> RefundGift:
    return RefundGift(
        command_id=f"refund-{seq}",
        issued_at=at(9),
        actor_id=FAN,
        user_id=FAN,
        gift_tx=f"{FAN}:{seq}",
        seq=seq,
        stream_id="s-1",
        coins=coins,
        reason="stream-not-live",
    )


def refunded(seq: int, coins: int, balance: int) -> GiftRefunded:
    return GiftRefunded(
        gift_tx=f"{FAN}:{seq}",
        seq=seq,
        stream_id="s-1",
        coins=coins,
        reason="stream-not-live",
        balance=balance,
        refunded_at=at(9),
    )


def test_a_refused_gift_is_refunded_once() -> None:
    given = (purchased(10, 10), debited(1, 4, 6))
    WALLET.given(*given).when(refund(1, 4)).then(refunded(1, 4, 10))
    WALLET.given(*given, refunded(1, 4, 10)).when(refund(1, 4)).then()


def test_the_transaction_id_is_the_intents_across_retries_whatever_the_wallet_holds() -> None:
    """Issue #16: were a retried send ever debited again (its id forgotten, a state rolled back), the
    second debit must carry the first one's transaction id, so the ledger audit sees one intent
    debited twice; the old "{sender}:{seq}" id changed with the wallet's counter and hid it."""
    first = WALLET.given(purchased(10, 10)).when(send(seconds=1, command_id="key-a")).events()
    # the same intent decided again on a wallet that has moved on (another gift debited since)
    later = WALLET.given(purchased(10, 10), debited(1, 1, 9, send_id="other"))
    again = later.when(send(seconds=7, command_id="key-a")).events()
    assert isinstance(first[0], GiftDebited) and isinstance(again[0], GiftDebited)
    assert (first[0].seq, again[0].seq) == (1, 2)
    assert first[0].gift_tx == again[0].gift_tx == gift_transaction_id("key-a")
    assert first[0].gift_tx.startswith("tx_") and len(first[0].gift_tx) == 27


def test_two_intents_have_two_transaction_ids() -> None:
    given = WALLET.given(purchased(10, 10))
    a = given.when(send(command_id="key-a")).events()[0]
    b = given.when(send(command_id="key-b")).events()[0]
    assert isinstance(a, GiftDebited) and isinstance(b, GiftDebited)
    assert a.gift_tx != b.gift_tx


def test_a_refund_of_a_gift_never_debited_changes_nothing() -> None:
    WALLET.given(purchased(10, 10)).when(refund(1, 4)).then()


# --- delivery on the stream ------------------------------------------------------------------------


def deliver(
    seq: int, gift: CatalogGift = ROSE, count: int = 1, seconds: float = 1, sender: str = FAN
) -> DeliverGift:
    return DeliverGift(
        command_id=f"deliver-{sender}-{seq}",
        issued_at=at(seconds),
        actor_id=sender,
        stream_id="s-1",
        sender_id=sender,
        sender_name=sender.title(),
        gift_tx=f"{sender}:{seq}",
        wallet_seq=seq,
        gift=gift,
        count=count,
        coins=gift.coin_cost * count,
        coin_value_usd="0.01",
        combo_window_ms=5000,
    )


def received(command: DeliverGift, **fields: Any) -> GiftReceived:
    return GiftReceived(
        **{
            "gift_tx": command.gift_tx,
            "wallet_seq": command.wallet_seq,
            "sender_id": command.sender_id,
            "sender_username": command.sender_name,
            "receiver_id": HOST,
            "receiver_username": "Hostess",
            "gift_id": command.gift.gift_id,
            "gift_name": command.gift.name,
            "gift_image_url": "i",
            "gift_animation_url": "a",
            "count": command.count,
            "coin_cost": command.coins,
            "real_value_usd": usd(command.coins, "0.01"),
            "broadcaster_share": split_revenue(command.coins, False)[0],
            "platform_share": split_revenue(command.coins, False)[1],
            "is_premium_broadcaster": False,
            "revenue_rule": REVENUE_RULE,
            "is_combo": False,
            "combo_id": command.gift_tx,
            "combo_count": command.count,
            "sender_total_coins": command.coins,
            "gifts": command.count,
            "gift_revenue": command.coins,
            "sent_at": command.issued_at,
            **fields,
        }
    )


def test_a_live_stream_takes_a_gift_with_the_standard_split() -> None:
    command = deliver(1, DONUT, count=3)
    gift = STREAM.given(started()).when(command).events()[0]
    assert gift == received(command, broadcaster_share=45, platform_share=45, is_combo=True)  # x3 is a combo
    assert gift.real_value_usd == "0.90"


def test_a_premium_broadcaster_keeps_ninety_percent() -> None:
    command = deliver(1, LION)
    gift = STREAM.given(started(is_premium=True)).when(command).events()[0]
    assert isinstance(gift, GiftReceived)
    assert (gift.broadcaster_share, gift.platform_share, gift.is_premium_broadcaster) == (26999, 3000, True)


@pytest.mark.parametrize(
    ("reason", "past"),
    [
        ("stream-not-found", ()),
        ("stream-not-live", (started(), ended(5))),
        ("gifts-disabled", (started(allow_gifts=False),)),
        ("user-banned", (started(), banned(FAN, 0.5))),
    ],
)
def test_a_gift_the_stream_cannot_take_is_refused_for_a_refund(reason: str, past: tuple[Any, ...]) -> None:
    STREAM.given(*past).when(deliver(1, count=2, seconds=9)).then(
        GiftRefused(
            gift_tx=f"{FAN}:1",
            wallet_seq=1,
            sender_id=FAN,
            gift_id="rose",
            count=2,
            coin_cost=2,
            reason=reason,
            refused_at=at(9),
        )
    )


def test_the_broadcaster_cannot_gift_their_own_stream() -> None:
    refused = STREAM.given(started()).when(deliver(1, sender=HOST)).events()[0]
    assert isinstance(refused, GiftRefused) and refused.reason == "cannot-gift-self"


def test_turning_gifts_off_and_on_again_is_honoured() -> None:
    off = StreamUpdated(changes={"allow_gifts": False}, updated_at=at(1))
    on = StreamUpdated(changes={"allow_gifts": True}, updated_at=at(2))
    assert isinstance(STREAM.given(started(), off).when(deliver(1, seconds=3)).events()[0], GiftRefused)
    assert isinstance(STREAM.given(started(), off, on).when(deliver(1, seconds=3)).events()[0], GiftReceived)


def test_a_redelivered_gift_is_decided_once_whether_taken_or_refused() -> None:
    first = deliver(1)
    taken = STREAM.given(started()).when(first).events()
    STREAM.given(started(), *taken).when(first).then()
    STREAM.given(started(), *taken).when(deliver(1, LION)).then()  # same wallet seq: the same gift
    off = StreamUpdated(changes={"allow_gifts": False}, updated_at=at(0.5))
    refused = STREAM.given(started(), off).when(first).events()
    on = StreamUpdated(changes={"allow_gifts": True}, updated_at=at(2))
    STREAM.given(started(), off, *refused, on).when(first).then()  # refunded already: never also taken


def test_sends_of_a_comboable_gift_in_the_window_form_one_combo() -> None:
    first, second, third = (
        deliver(1, count=5, seconds=1),
        deliver(2, count=3, seconds=4),
        deliver(3, seconds=8.5),
    )
    e1 = STREAM.given(started()).when(first).events()
    e2 = STREAM.given(started(), *e1).when(second).events()
    e3 = STREAM.given(started(), *e1, *e2).when(third).events()
    assert [(e.combo_id, e.combo_count, e.is_combo) for e in (*e1, *e2, *e3)] == [
        (first.gift_tx, 5, True),
        (first.gift_tx, 8, True),
        (first.gift_tx, 9, True),
    ]
    # revenue counts each send once: 9 roses are 9 coins, however long the combo
    assert (e3[0].gifts, e3[0].gift_revenue, e3[0].sender_total_coins) == (9, 9, 9)


def test_a_combo_breaks_after_the_window_or_with_another_gift() -> None:
    e1 = STREAM.given(started()).when(deliver(1, seconds=1)).events()
    late = STREAM.given(started(), *e1).when(deliver(2, seconds=7)).events()[0]
    other = STREAM.given(started(), *e1).when(deliver(2, DONUT, seconds=2)).events()[0]
    assert (late.combo_id, late.combo_count, late.is_combo) == (f"{FAN}:2", 1, False)
    assert (other.combo_id, other.combo_count) == (f"{FAN}:2", 1)


def test_non_comboable_gifts_never_combo() -> None:
    e1 = STREAM.given(started()).when(deliver(1, LION, seconds=1)).events()
    again = STREAM.given(started(), *e1).when(deliver(2, LION, seconds=2)).events()[0]
    assert (again.combo_count, again.is_combo) == (1, False)


def test_gifts_keep_the_stream_totals_and_the_leaderboard() -> None:
    e1 = STREAM.given(started()).when(deliver(1, DONUT)).events()
    e2 = STREAM.given(started(), *e1).when(deliver(1, LION, sender="whale")).events()
    state = STREAM.given(started(), *e1, *e2).state
    assert (state.gifts, state.gift_revenue) == (2, 30029)
    assert state.gifters == {FAN: [30, 1, 1], "whale": [29999, 1, 1]}


def test_the_revenue_split_always_adds_up() -> None:
    for coins in range(1, 2000):
        for premium in (False, True):
            broadcaster, platform = split_revenue(coins, premium)
            assert broadcaster + platform == coins and broadcaster >= 0 and platform >= 0


def test_usd_conversions_are_exact() -> None:
    assert usd(1001, "0.01") == "10.01"
    assert coins_for_usd("10.01", "0.01") == 1001
    assert coins_for_usd("10.005", "0.01") is None


def test_the_shipped_catalog_loads() -> None:
    catalog = load_catalog()
    assert catalog["rose"].coin_cost == 1 and catalog["rose"].comboable
    assert all(g.coin_cost > 0 for g in catalog.values())


def test_a_send_is_bounded() -> None:
    with pytest.raises(ValidationError):
        send(count=100)


# --- earnings and payouts -----------------------------------------------------------------------


def share(sequence: int, coins: int, stream: str = "s-1") -> Credit:
    return Credit(
        stream_id=stream, stream_sequence=sequence, gift_tx=f"{FAN}:{sequence}", sender_id=FAN, coins=coins
    )


def credit(sequence: int, coins: int, stream: str = "s-1") -> CreditEarnings:
    return credits(share(sequence, coins, stream))


def credits(*shares: Credit) -> CreditEarnings:
    return CreditEarnings(
        command_id="credit-" + "-".join(f"{c.stream_id}:{c.stream_sequence}" for c in shares),
        issued_at=at(1),
        actor_id=FAN,
        broadcaster_id=HOST,
        credits=list(shares),
    )


def credited(sequence: int, coins: int, balance: int, stream: str = "s-1") -> EarningsCredited:
    return EarningsCredited(
        stream_id=stream,
        stream_sequence=sequence,
        gift_tx=f"{FAN}:{sequence}",
        sender_id=FAN,
        coins=coins,
        balance=balance,
        credited_at=at(1),
    )


def test_a_delivered_gift_credits_the_broadcaster_once() -> None:
    EARNINGS.given().when(credit(3, 15)).then(credited(3, 15, 15))
    EARNINGS.given(credited(3, 15, 15)).when(credit(3, 15)).then()
    EARNINGS.given(credited(3, 15, 15)).when(credit(2, 15)).then()  # an older one redelivered
    EARNINGS.given(credited(3, 15, 15)).when(credit(1, 5, stream="s-2")).then(
        credited(1, 5, 20, stream="s-2")
    )


def test_a_batch_of_credits_applies_each_new_one_once_in_order() -> None:
    batch = credits(share(3, 15), share(2, 9), share(4, 5), share(1, 7, stream="s-2"), share(4, 5))
    EARNINGS.given(credited(2, 9, 9)).when(batch).then(
        credited(3, 15, 24), credited(4, 5, 29), credited(1, 7, 36, stream="s-2")
    )


def payout(amount: str, coins: int, payout_id: str = "po-1") -> RequestPayout:
    return RequestPayout(
        command_id=f"payout-{payout_id}",
        issued_at=at(2),
        actor_id=HOST,
        broadcaster_id=HOST,
        payout_id=payout_id,
        method="paypal",
        amount_usd=amount,
        coins=coins,
        minimum_usd="10.00",
    )


def requested(coins: int, balance: int, reserved: int, payout_id: str = "po-1") -> PayoutRequested:
    return PayoutRequested(
        payout_id=payout_id,
        method="paypal",
        coins=coins,
        amount_usd=usd(coins, "0.01"),
        balance=balance,
        reserved=reserved,
        requested_at=at(2),
    )


def test_a_payout_reserves_the_balance() -> None:
    EARNINGS.given(credited(1, 1500, 1500)).when(payout("12.00", 1200)).then(requested(1200, 300, 1200))


def test_a_payout_under_ten_dollars_is_refused() -> None:
    EARNINGS.given(credited(1, 1500, 1500)).when(payout("9.99", 999)).then_rejected("payout-below-minimum")


def test_no_payout_can_overdraw() -> None:
    given = (credited(1, 1500, 1500), requested(1200, 300, 1200))
    EARNINGS.given(*given).when(payout("10.00", 1000, "po-2")).then_rejected("insufficient-earnings")


def settle(kind: type, payout_id: str = "po-1") -> Any:
    extra = {"reason": "bank said no"} if kind is FailPayout else {"provider_ref": "pp-77"}
    return kind(
        command_id=f"{kind.__name__}-{payout_id}",
        issued_at=at(3),
        actor_id="admin",
        broadcaster_id=HOST,
        payout_id=payout_id,
        **extra,
    )


def test_a_completed_payout_spends_the_reservation() -> None:
    given = (credited(1, 1500, 1500), requested(1200, 300, 1200))
    completed = PayoutCompleted(
        payout_id="po-1", coins=1200, provider_ref="pp-77", reserved=0, completed_at=at(3)
    )
    EARNINGS.given(*given).when(settle(CompletePayout)).then(completed)
    state = EARNINGS.given(*given, completed).state
    assert (state.balance, state.reserved, state.paid_out, state.total_earned) == (300, 0, 1200, 1500)
    EARNINGS.given(*given, completed).when(settle(CompletePayout)).then()  # the callback came twice
    EARNINGS.given(*given, completed).when(settle(FailPayout)).then_rejected("payout-not-pending")


def test_a_failed_payout_releases_the_reservation() -> None:
    given = (credited(1, 1500, 1500), requested(1200, 300, 1200))
    failed = PayoutFailed(
        payout_id="po-1", coins=1200, reason="bank said no", balance=1500, reserved=0, failed_at=at(3)
    )
    EARNINGS.given(*given).when(settle(FailPayout)).then(failed)
    EARNINGS.given(*given, failed).when(settle(CompletePayout)).then_rejected("payout-not-pending")


def test_settling_an_unknown_payout_is_refused() -> None:
    EARNINGS.given().when(settle(CompletePayout, "po-x")).then_rejected("payout-not-found")


def test_update_stream_can_turn_gifts_off() -> None:
    command = UpdateStream(command_id="u", issued_at=at(1), actor_id=HOST, stream_id="s-1", allow_gifts=False)
    STREAM.given(started()).when(command).then(
        StreamUpdated(changes={"allow_gifts": False}, updated_at=at(1))
    )
