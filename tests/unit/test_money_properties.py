"""Property: whatever the interleaving, duplicates and crashes, no coin is created or lost.

Random sequences of purchases, gift sends (taken or refused: gifts off, bans, ended streams),
client retries, payouts and their settlement are run through the real aggregate runners (wallet,
stream, earnings) on an in-memory log. Commands are delivered per key in order, like a Kafka
partition, but interleaved at random across keys; records are redelivered (duplicates), and workers
"crash" after publishing a batch but before storing it (the batch is then decided again). The runners
remember a single command id, so the aggregates' own idempotency is what is tested.
The second property runs the same plans with bundles (infra/bundles.py): commands are consumed per
partition, the runners bundle their follow-ups per partition, and the client's commands reach the
log bundled per partition too, as the API sends them.
Afterwards the log must pass `spaktok ledger check`'s audit, and balances must match a model.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict, deque
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spaktok.commands.base import Command
from spaktok.commands.earnings import CompletePayout, FailPayout, RequestPayout
from spaktok.commands.gifts import load_catalog
from spaktok.commands.streams import BanUser, EndStream, OpenStream, UpdateStream
from spaktok.commands.wallets import PurchaseCoins, SendGift
from spaktok.events.envelope import decode_envelope, derive_id
from spaktok.infra import bundles, topics
from spaktok.processors.aggregate import AggregateRunner, Incoming
from spaktok.processors.earnings import EARNINGS
from spaktok.processors.streams import STREAMS
from spaktok.processors.wallets import WALLETS
from spaktok.projections.ledger import audit

T0 = datetime(2026, 1, 1, tzinfo=UTC)
USERS = ("ann", "bob", "cy")
STREAMS_BY_HOST = {"h1": "s1", "h2": "s2"}
CATALOG = load_catalog()
GIFTS = ("rose", "doughnut", "galaxy", "galaxy")
EXAMPLES = max(500, settings.default.max_examples)  # the floor; HYPOTHESIS_PROFILE=soak raises it
COMMAND_TOPICS = {
    topics.COMMANDS_WALLETS.name: WALLETS,
    topics.COMMANDS_STREAMS.name: STREAMS,
    topics.COMMANDS_EARNINGS.name: EARNINGS,
}


class Table:
    def __init__(self) -> None:
        self.values: dict[str, bytes] = {}

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    def items(self) -> list[tuple[str, bytes]]:
        return list(self.values.items())

    def delete(self, key: str, partition: int) -> None:
        self.values.pop(key, None)

    def put(self, key: str, value: bytes, partition: int) -> None:
        self.values[key] = value


class World:
    """The runners, their tables, and a log whose command topics are consumed per key in order
    (or, with `partitions`, per partition in order, with bundles)."""

    def __init__(
        self, command_topics: dict[str, Any] = COMMAND_TOPICS, partitions: int | None = None
    ) -> None:
        self.command_topics = command_topics
        self.partitions = partitions
        self.outbox: dict[tuple[str, str], list[Command]] = defaultdict(list)  # the client's, not yet sent
        self.log: list[tuple[str, str, bytes]] = []
        self.queues: dict[tuple[str, str], deque[bytes]] = defaultdict(deque)
        self.consumed: dict[tuple[str, str], list[bytes]] = defaultdict(list)
        self.tables = {topic: Table() for topic in command_topics}
        self.runners = {
            topic: AggregateRunner(
                spec,
                states=self.tables[topic],
                send=self.send,
                outcomes_topic="o",
                deadletter_topic="d",
                memory=1,
                partitions=None if partitions is None else dict.fromkeys(command_topics, partitions),
            )
            for topic, spec in command_topics.items()
        }
        self.clock = 0
        self.sent_by_client: list[Command] = []

    def _queue(self, topic: str, key: str, partition: int | None) -> tuple[str, str]:
        if self.partitions is None:
            return (topic, key)
        return (topic, str(bundles.partition_for(key, self.partitions) if partition is None else partition))

    async def send(
        self, topic: str, key: str, value: bytes, headers: Any, partition: int | None = None
    ) -> Any:
        self.log.append((topic, key, value))
        if topic in self.command_topics:
            self.queues[self._queue(topic, key, partition)].append(value)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    def now(self) -> datetime:
        self.clock += 1
        return T0 + timedelta(seconds=self.clock)

    def client(self, command: Command) -> None:
        self.sent_by_client.append(command)
        topic = topics.COMMAND_TOPIC_BY_AGGREGATE[command.aggregate_type].name
        if self.partitions is not None:  # bundled per partition until the log is next read
            self.outbox[self._queue(topic, command.aggregate_id, None)].append(command)
            return
        asyncio.run(self.send(topic, command.aggregate_id, command.to_bytes(), []))

    def _flush_client(self) -> None:
        for (topic, partition), commands in self.outbox.items():
            value = bundles.encode([c.to_bytes() for c in commands])
            asyncio.run(self.send(topic, commands[0].aggregate_id, value, [], int(partition)))
        self.outbox.clear()

    def pending(self) -> list[tuple[str, str]]:
        self._flush_client()
        return sorted(key for key, queue in self.queues.items() if queue)

    def deliver(self, pick: int, size: int, crash: bool) -> None:
        keys = self.pending()
        if not keys:
            return
        key = keys[pick % len(keys)]
        queue = self.queues[key]
        batch = [queue.popleft() for _ in range(min(size, len(queue)))]
        topic = key[0]
        table = self.tables[topic]
        before = dict(table.values)
        partition = 0 if self.partitions is None else int(key[1])
        incoming = [Incoming(key[1].encode(), value, topic, partition, i) for i, value in enumerate(batch)]
        asyncio.run(self.runners[topic].handle_batch(incoming))
        if crash:  # published, never stored: the records come again and are decided again
            table.values = before
            self.runners[topic].store.forget()
            queue.extendleft(reversed(batch))
        else:
            self.consumed[key].extend(batch)

    def redeliver(self, pick: int) -> None:
        self._flush_client()
        keys = sorted(k for k, done in self.consumed.items() if done)
        if keys:
            key = keys[pick % len(keys)]
            done = self.consumed[key]
            self.queues[key].append(done[pick % len(done)])

    def drain(self) -> None:
        while self.pending():
            self.deliver(0, 3, crash=False)

    def envelopes(self) -> list[Any]:
        event_topics = {spec.events_topic for spec in self.command_topics.values()}
        return [decode_envelope(value) for topic, _, value in self.log if topic in event_topics]


def base(world: World, actor: str, purpose: str) -> dict[str, Any]:
    return {"command_id": derive_id(purpose, world.clock, actor), "issued_at": world.now(), "actor_id": actor}


gift_steps = st.tuples(
    st.just("gift"),
    st.sampled_from(USERS),
    st.sampled_from(sorted(STREAMS_BY_HOST.values())),
    st.sampled_from(GIFTS),
    st.integers(1, 5),
)
steps = st.lists(
    st.one_of(
        st.tuples(st.just("buy"), st.sampled_from(USERS), st.integers(1, 4000), st.integers(0, 3)),
        gift_steps,
        gift_steps,
        gift_steps,
        st.tuples(st.just("retry"), st.integers(0, 1000)),
        st.tuples(st.just("toggle"), st.sampled_from(sorted(STREAMS_BY_HOST)), st.integers(0, 4)),
        st.tuples(
            st.just("ban"),
            st.sampled_from(sorted(STREAMS_BY_HOST)),
            st.sampled_from(USERS),
            st.integers(0, 4),
        ),
        st.tuples(st.just("end"), st.sampled_from(sorted(STREAMS_BY_HOST)), st.integers(0, 9)),
        st.tuples(
            st.just("payout"),
            st.sampled_from(sorted(STREAMS_BY_HOST)),
            st.integers(1000, 1500),
            st.booleans(),
        ),
        st.tuples(st.just("settle"), st.sampled_from(sorted(STREAMS_BY_HOST)), st.booleans()),
        st.tuples(st.just("step"), st.integers(0, 1000), st.integers(1, 4), st.booleans()),
        st.tuples(st.just("dup"), st.integers(0, 1000)),
        st.tuples(st.just("dup"), st.integers(0, 1000)),
    ),
    min_size=20,
    max_size=120,
)
opening_balances = st.lists(st.integers(0, 30000), min_size=len(USERS), max_size=len(USERS))


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(opening_balances, steps)
def test_no_coin_is_created_or_lost(opening: list[int], plan: list[tuple[Any, ...]]) -> None:
    _run(World(), opening, plan)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(opening_balances, steps)
def test_no_coin_is_created_or_lost_with_bundles(opening: list[int], plan: list[tuple[Any, ...]]) -> None:
    _run(World(partitions=2), opening, plan)


def _run(world: World, opening: list[int], plan: list[tuple[Any, ...]]) -> None:
    plan = [("buy", user, coins, 9) for user, coins in zip(USERS, opening, strict=True) if coins] + plan
    gifts_on = dict.fromkeys(STREAMS_BY_HOST, True)
    for host, stream in STREAMS_BY_HOST.items():
        world.client(_open(world, host, stream))
    payouts: dict[str, list[str]] = defaultdict(list)
    for step in plan:
        kind = step[0]
        if kind == "buy":
            _, user, coins, ref = step
            # the API derives the id from (user, ref, coins): a reused ref with another amount conflicts
            world.client(
                PurchaseCoins(
                    command_id=derive_id("purchase", user, ref, coins),
                    issued_at=world.now(),
                    actor_id="admin",
                    user_id=user,
                    coins=coins,
                    payment_ref=f"{user}-{ref}",
                )
            )
        elif kind == "gift":
            _, user, stream, gift, count = step
            world.client(
                SendGift(
                    **base(world, user, "gift"),
                    user_id=user,
                    stream_id=stream,
                    sender_name=user,
                    gift=CATALOG[gift],
                    count=count,
                    coin_value_usd="0.01",
                    combo_window_ms=3000,
                )
            )
        elif kind == "retry" and world.sent_by_client:
            original = world.sent_by_client[step[1] % len(world.sent_by_client)]
            retried = original.model_copy(update={"issued_at": world.now()})  # same id, later: a client retry
            world.client(retried)
        elif kind == "toggle" and step[2] == 0:
            host = step[1]
            gifts_on[host] = not gifts_on[host]
            world.client(
                UpdateStream(
                    **base(world, host, "toggle"), stream_id=STREAMS_BY_HOST[host], allow_gifts=gifts_on[host]
                )
            )
        elif kind == "ban" and step[3] == 0:
            _, host, user, _ = step
            world.client(
                BanUser(**base(world, host, "ban"), stream_id=STREAMS_BY_HOST[host], target_user_id=user)
            )
        elif kind == "end" and step[2] == 0:  # rare: an ended stream refuses every later gift
            world.client(EndStream(**base(world, step[1], "end"), stream_id=STREAMS_BY_HOST[step[1]]))
        elif kind == "payout":
            _, host, coins, settle_first = step
            if settle_first:  # let the credits arrive first (otherwise most requests overdraw)
                world.drain()
            # payout ids are global (the API's derive from the command id; Postgres keys payouts by
            # id), and the ledger names an id reserved twice, by any broadcasters
            payout_id = f"po-{host}-{len(payouts[host])}"
            payouts[host].append(payout_id)
            world.client(
                RequestPayout(
                    **base(world, host, "payout"),
                    broadcaster_id=host,
                    payout_id=payout_id,
                    method="bank",
                    amount_usd=f"{coins / 100:.2f}",
                    coins=coins,
                    minimum_usd="10.00",
                )
            )
        elif kind == "settle" and payouts[step[1]]:
            _, host, ok = step
            make = CompletePayout if ok else FailPayout
            extra = {} if ok else {"reason": "bounced"}
            world.client(
                make(
                    **base(world, "admin", "settle"),
                    broadcaster_id=host,
                    payout_id=payouts[host][-1],
                    **extra,
                )
            )
        elif kind == "step":
            world.deliver(step[1], step[2], crash=step[3])
        elif kind == "dup":
            world.redeliver(step[1])
    world.drain()

    report = audit(world.envelopes())
    assert report.problems == []
    assert report.settled, (report.in_flight, report.awaiting_refund, report.awaiting_credit)
    totals = report.totals()
    assert (
        totals["purchased"] == totals["in wallets"] + totals["broadcaster shares"] + totals["platform shares"]
    )
    assert totals["earnings credited"] == totals["broadcaster shares"]
    # the stored wallets agree with the log's replay
    for user, wallet in report.wallets.items():
        stored = orjson.loads(world.tables[topics.COMMANDS_WALLETS.name].values[user])["state"]
        assert stored["balance"] == wallet.balance >= 0
    for host, account in report.earnings.items():
        stored = orjson.loads(world.tables[topics.COMMANDS_EARNINGS.name].values[host])["state"]
        assert (stored["balance"], stored["reserved"], stored["paid_out"]) == (
            account.balance,
            account.reserved,
            account.paid_out,
        )


def _open(world: World, host: str, stream: str) -> OpenStream:
    return OpenStream(
        **base(world, host, "open"),
        stream_id=stream,
        username=host,
        title="t",
        category="c",
        language="en",
        privacy="public",
        is_recorded=False,
        allow_comments=True,
        allow_gifts=True,
        is_age_restricted=False,
        is_premium=host == "h2",
        quality="auto",
        ingest_url="rtmp://x",
        playback_url="https://x",
    )
