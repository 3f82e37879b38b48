"""The money path against an independent model (tests/unit/money_model.py), after every step.

A hypothesis state machine drives the real runners (wallet, stream, earnings: AggregateRunner on the
in-memory log of test_money_properties.World, each remembering one command id, so the aggregates'
own idempotency is what is tested) with purchases (and the provider calling back again with the same
payment ref), gift sends (new; retried with the same Idempotency-Key; the key reused with another
body), bans, stream ends, payouts (request, retry, complete, fail) and faults: an aggregate's queue
is delivered in random batches that may crash between publishing and storing, the last records
delivered to an aggregate come again, and a runner restarts from its stored table.

After each step, every figure the system holds (stored wallet balances and earnings; the log's
debits, decisions, refunds, platform revenue) must equal the model's, per intent: the set of sends
debited is the set the model debited, each with the coins of the body that took effect. Coins are
conserved, nothing is negative, and no intent has a second effect. `HYPOTHESIS_PROFILE=soak` runs
≥ 10,000 examples (tests/unit/conftest.py).
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    MultipleResults,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
)
from money_harness import (
    COIN_VALUE,
    EARNINGS_TOPIC,
    NOTHING_AGAIN,
    PAYOUT_MINIMUM,
    WALLETS_TOPIC,
    StoredWorld,
    intent_of,
    model_queue,
    usd,
)
from money_log import LogView
from money_model import MoneyModel, Stream
from test_money_properties import CATALOG, STREAMS_BY_HOST, USERS, _open, base
from test_money_properties import COMMAND_TOPICS as RUNNER_SPECS

from spaktok.commands.base import Command, decode_command
from spaktok.commands.earnings import CompletePayout, FailPayout, RequestPayout
from spaktok.commands.streams import BanUser, EndStream
from spaktok.commands.wallets import PurchaseCoins, SendGift
from spaktok.events.envelope import derive_id
from spaktok.infra import topics

# The runners remember one command id and no refusals, so what is tested is the aggregates' own,
# durable duplicate checks (the wallet's 24 h of send ids, payment refs, payout ids). A refusal is
# remembered by the runner's bounded memory only (`AggregateSpec.remember_refusals`, tested in
# test_aggregate_runner.py and end to end by bench/chaos.py), so here refusals do not bind a key.
COMMAND_TOPICS = {topic: replace(spec, remember_refusals=False) for topic, spec in RUNNER_SPECS.items()}

# odd costs, so the rounding shows; galaxies thrice, so that payouts find earnings to take
GIFTS = ("rose", "finger-heart", "doughnut", "corgi", "galaxy", "galaxy", "galaxy")
PREMIUM_HOSTS = {"h2"}  # test_money_properties._open starts h2's stream as premium
GIFT_SENDS = st.tuples(
    st.sampled_from(USERS),
    st.sampled_from(sorted(STREAMS_BY_HOST)),
    st.sampled_from(GIFTS),
    st.integers(1, 5),
)
BATCH_SIZES = st.lists(st.integers(1, 4), min_size=1, max_size=3)  # cycled through one delivery
EXAMPLES = max(500, settings.default.max_examples)  # the soak profile raises it


class MoneyMachine(RuleBasedStateMachine):
    """Random intents and faults; the system and the model must agree after every step."""

    command_topics: dict[str, Any] = COMMAND_TOPICS  # a test swaps in a broken spec here
    refusals_bind = False  # see MoneyModel.refusals_bind

    sends = Bundle("sends")
    purchases = Bundle("purchases")
    payouts = Bundle("payouts")

    def __init__(self) -> None:
        super().__init__()
        self.world = StoredWorld(self.command_topics)
        self.model = MoneyModel(Decimal(COIN_VALUE), Decimal(PAYOUT_MINIMUM), self.refusals_bind)
        self.log = LogView()
        for host, stream in STREAMS_BY_HOST.items():
            self.world.client(_open(self.world, host, stream))
            self.model.streams[stream] = Stream(host, premium=host in PREMIUM_HOSTS)
        for stream in STREAMS_BY_HOST.values():
            self.world.deliver_all_of((topics.COMMANDS_STREAMS.name, stream), [3], 0)

    @initialize(opening=st.lists(st.integers(2_000, 30_000), min_size=len(USERS), max_size=len(USERS)))
    def open_wallets(self, opening: list[int]) -> None:
        """Coins to start with, so that gifts, credits and payouts happen in most examples."""
        for user, coins in zip(USERS, opening, strict=True):
            if coins:
                self.buy(user, coins, 9)
        self.deliver_everything(0)

    # -- intents -------------------------------------------------------------------------------

    def _client(self, command: Command) -> None:
        """The client's command reaches the log, and the model is asked the same."""
        self.world.client(command)
        self.model.ask(*intent_of(command))

    @rule(target=purchases, user=st.sampled_from(USERS), coins=st.integers(1, 3000), ref=st.integers(0, 3))
    def buy(self, user: str, coins: int, ref: int) -> PurchaseCoins:
        """A provider callback; a reused ref with another amount is another command (it conflicts)."""
        purchase = PurchaseCoins(
            command_id=derive_id("purchase", user, ref, coins),
            issued_at=self.world.now(),
            actor_id="payments",
            user_id=user,
            coins=coins,
            payment_ref=f"{user}-{ref}",
        )
        self._client(purchase)
        return purchase

    @rule(purchase=purchases)
    def callback_again(self, purchase: PurchaseCoins) -> None:
        self._client(purchase.model_copy(update={"issued_at": self.world.now()}))

    @rule(target=sends, gifts=st.lists(GIFT_SENDS, min_size=1, max_size=4))
    def send_gifts(self, gifts: list[tuple[str, str, str, int]]) -> MultipleResults[SendGift]:
        """A few viewers tap at once (gifts are most of the traffic, so a step sends several)."""
        sends = []
        for user, host, gift, count in gifts:
            send = SendGift(
                **base(self.world, user, "gift"),
                user_id=user,
                stream_id=STREAMS_BY_HOST[host],
                sender_name=user,
                gift=CATALOG[gift],
                count=count,
                coin_value_usd=COIN_VALUE,
                combo_window_ms=3000,
            )
            self._client(send)
            sends.append(send)
        return multiple(*sends)

    @rule(send=sends)
    def retry_gift(self, send: SendGift) -> None:
        """The client retries with the same Idempotency-Key and body."""
        self._client(send.model_copy(update={"issued_at": self.world.now()}))

    @rule(send=sends, host=st.sampled_from(sorted(STREAMS_BY_HOST)), gift=st.sampled_from(GIFTS))
    def reuse_key(self, send: SendGift, host: str, gift: str) -> None:
        """The same key (command id) with another body: at most one effect, the first that took."""
        other = {"issued_at": self.world.now(), "stream_id": STREAMS_BY_HOST[host], "gift": CATALOG[gift]}
        self._client(send.model_copy(update=other))

    @rule(host=st.sampled_from(sorted(STREAMS_BY_HOST)), user=st.sampled_from(USERS), dice=st.integers(0, 2))
    def ban(self, host: str, user: str, dice: int) -> None:
        """Rarer than gifts: a banned sender's later gifts to that stream are all refunded."""
        if dice == 0:
            stream = STREAMS_BY_HOST[host]
            self._client(BanUser(**base(self.world, host, "ban"), stream_id=stream, target_user_id=user))

    @rule(host=st.sampled_from(sorted(STREAMS_BY_HOST)), dice=st.integers(0, 3))
    def end_stream(self, host: str, dice: int) -> None:
        """Rarer than the rest: an ended stream refuses (and refunds) every later gift."""
        if dice == 0:
            self._client(EndStream(**base(self.world, host, "end"), stream_id=STREAMS_BY_HOST[host]))

    @rule(
        target=payouts,
        host=st.sampled_from(sorted(STREAMS_BY_HOST)),
        coins=st.integers(900, 1600),
        credits_first=st.booleans(),
    )
    def request_payout(self, host: str, coins: int, credits_first: bool) -> RequestPayout:
        """Some below the $10 minimum; many above what is available, unless the gifts in flight are
        credited first (then most can be paid)."""
        if credits_first:
            self.deliver_everything(0)
        request = RequestPayout(
            **base(self.world, host, "payout"),
            broadcaster_id=host,
            payout_id=f"po-{self.world.clock}",
            method="bank",
            amount_usd=usd(coins),
            coins=coins,
            minimum_usd=PAYOUT_MINIMUM,
        )
        self._client(request)
        return request

    @rule(request=payouts, coins=st.none() | st.integers(900, 1600))
    def retry_payout(self, request: RequestPayout, coins: int | None) -> None:
        """The same request again, or the same key with another amount."""
        change: dict[str, Any] = {"issued_at": self.world.now()}
        if coins is not None:
            change |= {"coins": coins, "amount_usd": usd(coins)}
        self._client(request.model_copy(update=change))

    @rule(request=payouts, completed=st.booleans())
    def settle(self, request: RequestPayout, completed: bool) -> None:
        make = CompletePayout if completed else FailPayout
        extra = {} if completed else {"reason": "bounced"}
        who = base(self.world, "payments", "settle")
        self._client(make(**who, broadcaster_id=request.broadcaster_id, payout_id=request.payout_id, **extra))

    # -- delivery and faults -------------------------------------------------------------------

    @precondition(lambda self: self.world.pending())
    @rule(pick=st.integers(0, 20), sizes=BATCH_SIZES, crashes=st.integers(0, 15))
    def deliver(self, pick: int, sizes: list[int], crashes: int) -> None:
        """One aggregate handles its queue, in the system and in the model at the same moment."""
        self._deliver(pick, sizes, crashes)

    @precondition(lambda self: self.world.pending())
    @rule(pick=st.integers(0, 20), sizes=BATCH_SIZES, crashes=st.integers(0, 15))
    def deliver_more(self, pick: int, sizes: list[int], crashes: int) -> None:
        """The same again: delivery is most of what happens on a log, so it gets more of the steps."""
        self._deliver(pick, sizes, crashes)

    def _deliver(self, pick: int, sizes: list[int], crashes: int) -> None:
        queues = self.world.pending()
        queue = queues[pick % len(queues)]
        self.world.deliver_all_of(queue, sizes, crashes)
        self.model.deliver(model_queue(queue))

    @rule(crashes=st.integers(0, 15))
    def deliver_everything(self, crashes: int) -> None:
        while queues := self.world.pending():
            self.world.deliver_all_of(queues[0], [3], crashes)
            self.model.deliver(model_queue(queues[0]))

    @precondition(lambda self: any(self.world.consumed.values()))
    @rule(pick=st.integers(0, 20), count=st.integers(1, 4))
    def redeliver(self, pick: int, count: int) -> None:
        """The last records an aggregate consumed come again (a lost offset commit)."""
        done = sorted(queue for queue, records in self.world.consumed.items() if records)
        queue = done[pick % len(done)]
        self.world.redeliver_last(queue, count)
        for value in self.world.consumed[queue][-count:]:
            # a client's command again is, to the model, the same intent again
            command = decode_command(value)
            if not isinstance(command, NOTHING_AGAIN):
                self.model.ask(*intent_of(command))

    @rule(topic=st.sampled_from(sorted(COMMAND_TOPICS)))
    def restart(self, topic: str) -> None:
        self.world.restart(topic)

    def teardown(self) -> None:
        self.world.loop.close()

    # -- invariants ----------------------------------------------------------------------------

    def _folded(self) -> LogView:
        self.log.fold(self.world.log)
        return self.log

    @invariant()
    def balances_equal_the_model(self) -> None:
        for user in USERS:
            stored = self.world.stored(WALLETS_TOPIC, user).get("balance", 0)
            assert stored == self.model.wallets[user] >= 0, (user, stored, self.model.wallets[user])
        for host in STREAMS_BY_HOST:
            stored = self.world.stored(EARNINGS_TOPIC, host)
            figures = tuple(stored.get(name, 0) for name in ("balance", "reserved", "paid_out"))
            account = self.model.earnings[host]
            assert figures == (account.available, account.reserved, account.paid_out), (
                host,
                figures,
                account,
            )
            assert min(figures) >= 0

    @invariant()
    def each_intent_has_the_models_effect_once(self) -> None:
        log = self._folded()
        assert log.problems == []
        assert set(log.debits) == set(self.model.debited)
        for key, debit in log.debits.items():
            wanted = self.model.debited[key]
            assert (debit["coins"], debit["stream_id"]) == (wanted.coins, wanted.stream), key
        assert log.received == self.model.taken
        assert log.refunded == self.model.refunded
        assert log.platform == self.model.platform
        assert log.purchased == self.model.purchased

    @invariant()
    def coins_are_conserved(self) -> None:
        model = self.model
        assert (
            model.purchased == sum(model.wallets.values()) + model.in_flight() + model.shares + model.platform
        )
        assert model.shares >= sum(a.earned for a in model.earnings.values())
        # the system's own figures: wallets and earnings as stored, the rest from the log
        log, world = self._folded(), self.world
        wallets = sum(world.stored(WALLETS_TOPIC, user).get("balance", 0) for user in USERS)
        earnings = sum(
            sum(
                world.stored(EARNINGS_TOPIC, host).get(name, 0)
                for name in ("balance", "reserved", "paid_out")
            )
            for host in STREAMS_BY_HOST
        )
        credits_in_flight = log.shares - log.credited
        assert log.gifts_in_flight() == model.in_flight()
        assert log.shares == model.shares
        assert log.purchased == wallets + log.gifts_in_flight() + earnings + credits_in_flight + log.platform


MoneyMachine.TestCase.settings = settings(
    max_examples=EXAMPLES,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestMoneyModel = MoneyMachine.TestCase
