"""The batched aggregate runner: what it sends, when it stores, and how a bad command is isolated.

The runner is exercised with the real stream decider, an in-memory table and a sender whose
acknowledgements the test resolves itself, so the ordering rules (DESIGN §3) can be observed:
nothing is stored before the broker acknowledged everything the batch produced.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import orjson
import pytest
from test_stream_decider import comment, end, join, likes, open_stream

from spaktok.commands import stream_state
from spaktok.commands.base import Command
from spaktok.events.base import Event
from spaktok.events.streams import ViewerJoined
from spaktok.infra import bundles
from spaktok.processors import aggregate
from spaktok.processors.aggregate import AggregateRunner, Incoming, part_key
from spaktok.processors.streams import STREAMS

EVENTS, OUTCOMES, DEADLETTER = STREAMS.events_topic, "outcomes", "deadletter"


class Table:
    """Stands in for the Faust table: values by key, and the changelog partition of each write."""

    def __init__(self) -> None:
        self.values: dict[str, bytes] = {}
        self.partitions: dict[str, int] = {}
        self.writes = 0
        self.deletes = 0
        self.keys_written: list[str] = []

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    def items(self) -> list[tuple[str, bytes]]:
        return list(self.values.items())

    def delete(self, key: str, partition: int) -> None:
        self.values.pop(key, None)
        self.deletes += 1

    def put(self, key: str, value: bytes, partition: int) -> None:
        self.values[key] = value
        self.partitions[key] = partition
        self.writes += 1
        if "\x00memory-" not in key:  # the command memory's segments: see test_command_memory.py
            self.keys_written.append(key)


class Broker:
    """Records what was sent; acknowledgements resolve when the test says so (or at once)."""

    def __init__(self, *, ack_at_once: bool = True) -> None:
        self.sent: list[tuple[str, str, bytes, list[tuple[str, bytes]]]] = []
        self.partitions: list[int | None] = []  # the partition each record was sent to (None: its key's)
        self.pending: list[asyncio.Future[None]] = []
        self.ack_at_once = ack_at_once

    async def send(
        self,
        topic: str,
        key: str,
        value: bytes,
        headers: list[tuple[str, bytes]],
        partition: int | None = None,
    ) -> Any:
        self.sent.append((topic, key, value, headers))
        self.partitions.append(partition)
        ack: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.ack_at_once:
            ack.set_result(None)
        else:
            self.pending.append(ack)
        return ack

    def ack_all(self) -> None:
        for ack in self.pending:
            ack.set_result(None)
        self.pending.clear()

    def on(self, topic: str) -> list[dict[str, Any]]:
        """What was sent to `topic`, one item per command, event or outcome (bundles unpacked)."""
        items: list[dict[str, Any]] = []
        for t, _, value, _ in self.sent:
            if t == topic:
                decoded = orjson.loads(value)
                items.extend(decoded if isinstance(decoded, list) else [decoded])
        return items


def runner(table: Table, broker: Broker, spec: Any = STREAMS) -> AggregateRunner:
    return AggregateRunner(
        spec, states=table, send=broker.send, outcomes_topic=OUTCOMES, deadletter_topic=DEADLETTER, memory=256
    )


def records(*commands: Command | bytes, partition: int = 2) -> list[Incoming]:
    return [
        Incoming(b"s-1", c if isinstance(c, bytes) else c.to_bytes(), "commands", partition, offset)
        for offset, c in enumerate(commands)
    ]


def stored_state(table: Table, aggregate_id: str = "s-1") -> dict[str, Any]:
    """The stream as stored: the main record joined with the parts it names."""
    data = orjson.loads(table.values[aggregate_id])
    contents = {
        name: orjson.loads(table.values[part_key(aggregate_id, name, version)])
        for name, version in data.get("parts", {}).items()
    }
    return stream_state.join(data["state"], contents).to_dict()


def test_a_batch_is_decided_in_order_and_each_aggregate_stored_once() -> None:
    table, broker = Table(), Broker()
    batch = records(open_stream(), join("ann", 1), join("bob", 2), comment("ann", 3))
    asyncio.run(runner(table, broker).handle_batch(batch))

    events = broker.on(EVENTS)
    assert [e["type"] for e in events] == [
        "streams.StreamStarted",
        "streams.ViewerJoined",
        "streams.ViewerJoined",
        "streams.CommentPosted",
    ]
    assert [e["sequence"] for e in events] == [1, 2, 3, 4]
    assert len(broker.on(OUTCOMES)) == 4
    assert table.keys_written.count("s-1") == 1 and table.partitions["s-1"] == 2
    state = stored_state(table)
    assert (state["version"], sorted(state["viewers"]), state["comments"]) == (4, ["ann", "bob"], 1)


def test_nothing_is_stored_until_the_broker_acknowledged_the_whole_batch() -> None:
    async def scenario() -> None:
        table, broker = Table(), Broker(ack_at_once=False)
        handling = asyncio.create_task(
            runner(table, broker).handle_batch(records(open_stream(), join("ann", 1)))
        )
        await asyncio.sleep(0.01)
        assert broker.pending and not handling.done()
        assert table.values == {}  # a crash now leaves the old state: the commands are decided again
        broker.ack_all()
        await handling
        assert stored_state(table)["version"] == 2

    asyncio.run(scenario())


def test_a_command_repeated_in_the_same_batch_is_decided_once_and_answered_twice() -> None:
    table, broker = Table(), Broker()
    asyncio.run(runner(table, broker).handle_batch(records(open_stream(), join("ann", 1), join("ann", 1))))
    assert [e["type"] for e in broker.on(EVENTS)] == ["streams.StreamStarted", "streams.ViewerJoined"]
    answers = [o for o in broker.on(OUTCOMES) if o["command_type"] == "streams.JoinStream"]
    assert [o["status"] for o in answers] == ["accepted", "accepted"]


def test_a_command_seen_in_an_earlier_batch_is_not_decided_again() -> None:
    table, broker = Table(), Broker()
    aggregate = runner(table, broker)
    asyncio.run(aggregate.handle_batch(records(open_stream(), likes(1, ("k1", "ann", 3)))))
    asyncio.run(aggregate.handle_batch(records(likes(1, ("k1", "ann", 3)))))
    assert [e["type"] for e in broker.on(EVENTS)] == ["streams.StreamStarted", "streams.LikesRecorded"]
    assert stored_state(table)["likes"] == 3


def test_undecodable_records_are_dead_lettered_and_the_rest_decided() -> None:
    table, broker = Table(), Broker()
    asyncio.run(runner(table, broker).handle_batch(records(b"{not json", open_stream(), b'{"type": "nope"}')))
    assert [e["type"] for e in broker.on(EVENTS)] == ["streams.StreamStarted"]
    parked = [(value, dict(headers)) for topic, _, value, headers in broker.sent if topic == DEADLETTER]
    assert [value for value, _ in parked] == [b"{not json", b'{"type": "nope"}']
    assert all(h["dlq-stage"] == b"decode" for _, h in parked)
    assert [h["dlq-source-offset"] for _, h in parked] == [b"0", b"2"]


def test_a_command_failing_half_way_is_dead_lettered_and_leaves_no_trace_in_the_state() -> None:
    def evolve_failing_on_bob(state: Any, event: Event) -> Any:
        state = STREAMS.evolve(state, event)  # changes the held state first, then fails
        if isinstance(event, ViewerJoined) and event.user_id == "bob":
            raise RuntimeError("bug while applying bob's join")
        return state

    table, broker = Table(), Broker()
    asyncio.run(runner(table, broker).handle_batch(records(open_stream(), join("ann", 1))))
    stored_before = table.values["s-1"]
    faulty = runner(table, broker, dataclasses.replace(STREAMS, evolve=evolve_failing_on_bob))
    asyncio.run(faulty.handle_batch(records(join("cid", 2), join("bob", 3), join("dan", 4))))

    joined = [e["payload"]["user_id"] for e in broker.on(EVENTS) if e["type"] == "streams.ViewerJoined"]
    assert joined == ["ann", "cid", "dan"]  # bob's half-applied join was never published
    state = stored_state(table)
    assert sorted(state["viewers"]) == ["ann", "cid", "dan"]
    assert state["version"] == 4  # sequences stay gapless: bob's failed join took none
    parked = [dict(h) for topic, _, _, h in broker.sent if topic == DEADLETTER]
    assert len(parked) == 1 and b"bug while applying" in parked[0]["dlq-error"]
    assert stored_before is not table.values["s-1"]  # stored again, after the retried batch


@pytest.mark.parametrize("cached", [True, False])
def test_the_stored_state_is_the_same_whether_decoded_or_taken_from_the_cache(cached: bool) -> None:
    table, broker = Table(), Broker()
    aggregate = runner(table, broker)
    asyncio.run(aggregate.handle_batch(records(open_stream(), join("ann", 1))))
    if not cached:  # as after a recovery: equal bytes, another object
        table.values["s-1"] = bytes(bytearray(table.values["s-1"]))
    asyncio.run(aggregate.handle_batch(records(join("bob", 2), comment("ann", 3))))
    state = stored_state(table)
    assert (sorted(state["viewers"]), state["comments"], state["version"]) == (["ann", "bob"], 1, 4)


def test_timers_see_the_live_streams_including_those_restored_by_a_recovery() -> None:
    table, broker = Table(), Broker()
    aggregate = runner(table, broker)
    asyncio.run(aggregate.handle_batch(records(open_stream())))
    table.values["\x00position:commands:2"] = b"0"  # bookkeeping keys are not aggregates
    assert aggregate.active_ids() == ["s-1"]

    restarted = runner(table, broker)  # a new process: nothing decoded yet, values as recovered
    table.values["s-1"] = bytes(bytearray(table.values["s-1"]))
    assert restarted.active_ids() == ["s-1"]
    asyncio.run(restarted.handle_batch(records(end(5))))
    assert restarted.active_ids() == []


def test_notices_go_to_their_own_topic_without_a_sequence_and_leave_the_state_alone() -> None:
    from test_audience_decider import add, notify

    from spaktok.processors.audiences import AUDIENCES

    table, broker = Table(), Broker()
    audience = runner(table, broker, AUDIENCES)
    asyncio.run(audience.handle_batch(records(add("ann"), add("bob"), notify(), notify())))
    [notice] = broker.on(AUDIENCES.notice_topic or "")
    assert (notice["type"], notice["sequence"], notice["payload"]["recipients"]) == (
        "audiences.FollowersNotified",
        0,
        ["ann", "bob"],
    )
    assert [e["sequence"] for e in broker.on(AUDIENCES.events_topic)] == [1, 2]
    assert orjson.loads(table.values["star:0"])["state"]["version"] == 2
    assert broker.on(OUTCOMES) == []  # processors' own commands: nobody waits for an answer


def test_a_big_stream_is_stored_in_parts_and_a_batch_rewrites_only_the_parts_it_touched() -> None:
    table, broker = Table(), Broker()
    aggregate = runner(table, broker)
    crowd = [f"fan-{i:05d}" for i in range(5_000)]  # more than one part's worth of viewers
    asyncio.run(aggregate.handle_batch(records(open_stream(), *(join(u, 1) for u in crowd))))
    main = orjson.loads(table.values["s-1"])
    assert len(main["parts"]) > 2 and "viewers" not in main["state"]
    assert all(len(table.values[k]) < 200_000 for k in table.values if "\x00" in k)

    before = table.writes
    asyncio.run(aggregate.handle_batch(records(comment("fan-00007", 2))))
    assert table.writes - before == 1  # a comment changes no viewer: only the main record

    asyncio.run(aggregate.handle_batch(records(join("late-comer", 3))))
    parts_now = set(orjson.loads(table.values["s-1"])["parts"].items())
    stored_parts = {tuple(k.split("\x00")[1:]) for k in table.values if k.startswith("s-1\x00")}
    assert {(name, str(version)) for name, version in parts_now} == stored_parts  # old versions deleted
    assert table.deletes >= 2  # the viewer part and the watch-time part the newcomer landed in

    restarted = runner(table, broker)  # nothing cached: the state is joined from its parts
    state = stored_state(table)
    assert len(state["viewers"]) == 5_001 and state["comments"] == 1
    asyncio.run(restarted.handle_batch(records(comment("late-comer", 10))))
    assert stored_state(table)["comments"] == 2


def test_a_map_a_batch_did_not_touch_is_named_again_whole_and_a_touched_one_is_stored() -> None:
    """A stream's per-user maps reach the store as groups (`PartGroup`): a group that is the very
    object stored last is named again without a look at its parts (a like fold on a 1 M-viewer
    stream costs nothing for 256 viewer parts), before and after a restart; a touched or re-cut
    one is stored as it is, and the parts no main record names any more are deleted."""

    def named_equals_stored() -> None:
        named = set(orjson.loads(table.values["s-1"])["parts"].items())
        held = {tuple(k.split("\x00")[1:]) for k in table.values if k.startswith("s-1\x00")}
        assert {(name, str(version)) for name, version in named} == held

    table, broker = Table(), Broker()
    crowd = [f"fan-{i:05d}" for i in range(3_900)]  # two parts of viewers
    asyncio.run(runner(table, broker).handle_batch(records(open_stream(), *(join(u, 1) for u in crowd))))
    aggregate = runner(table, broker)  # restarted: the groups are loaded as plain parts
    for second in (2, 3):
        before = table.writes
        asyncio.run(aggregate.handle_batch(records(comment(f"fan-0000{second}", second))))
        assert table.writes - before == 1  # a comment changes no viewer: only the main record
    viewers = aggregate.store._decoded["s-1"].groups["viewers"]  # noqa: SLF001 - what the store kept
    asyncio.run(aggregate.handle_batch(records(comment("fan-00008", 4))))
    assert aggregate.store._decoded["s-1"].groups["viewers"] is viewers  # noqa: SLF001
    named_equals_stored()

    newcomers = [f"new-{i:03d}" for i in range(200)]  # 4,100 viewers: re-cut into four parts
    asyncio.run(aggregate.handle_batch(records(*(join(u, 5) for u in newcomers))))
    named = orjson.loads(table.values["s-1"])["parts"]
    assert sorted(n for n in named if n.startswith("viewers-")) == [f"viewers-4-{i}" for i in range(4)]
    named_equals_stored()
    asyncio.run(aggregate.handle_batch(records(comment("new-007", 6))))
    state = stored_state(table)
    assert len(state["viewers"]) == 4_100 and state["comments"] == 4
    named_equals_stored()


def test_a_follow_rewrites_one_part_of_a_big_audience_shard() -> None:
    from test_audience_decider import add

    from spaktok.processors.audiences import AUDIENCES

    table, broker = Table(), Broker()
    audience = runner(table, broker, AUDIENCES)
    asyncio.run(audience.handle_batch(records(add("first-fan"))))
    assert table.keys_written == ["star:0"]  # a small shard is one record
    asyncio.run(audience.handle_batch(records(*(add(f"fan-{i:05d}") for i in range(5_000)))))
    assert len([k for k in table.values if k.startswith("star:0\x00followers-")]) == 4

    table.keys_written.clear()
    asyncio.run(audience.handle_batch(records(add("late-fan"))))
    assert len(table.keys_written) == 2 and table.keys_written[-1] == "star:0"  # one part, the record
    restarted = runner(table, broker, AUDIENCES).store.decoded("star:0", table.values["star:0"]).state
    assert len(restarted.followers) == 5_002


def test_a_streams_gifters_are_stored_in_parts_and_a_gift_rewrites_its_senders_part_only() -> None:
    """Every sender of a stream is kept for its whole life (the leaderboard and each wallet's high
    water mark): in one part, 100,000 gifters would be ~5 MB, more than a producer request holds."""
    from test_money_deciders import deliver

    table, broker = Table(), Broker()
    stream = runner(table, broker)
    fans = [deliver(1, sender=f"fan-{i:05d}", seconds=1) for i in range(5_000)]
    asyncio.run(stream.handle_batch(records(open_stream(), *fans)))
    gifter_parts = [k for k in table.values if "\x00gifters-" in k]
    assert len(gifter_parts) == 4 and all(len(table.values[k]) < 200_000 for k in gifter_parts)

    table.keys_written.clear()
    asyncio.run(stream.handle_batch(records(deliver(2, sender="fan-00007", seconds=2))))
    assert len([k for k in table.keys_written if "\x00gifters-" in k]) == 1
    assert stored_state(table)["gifters"]["fan-00007"] == [2, 2, 2]  # coins, last seq, gifts


def test_a_wallets_older_send_buckets_are_written_once_even_across_a_restart() -> None:
    """A heavy gifter's day of send ids is not rewritten with every gift: the newest bucket travels
    in the wallet's record, an older one is written once as a part when the next bucket begins,
    recognised as unchanged by identity after that (no serialisation), and deleted when it expires."""
    from gwt import at
    from test_money_deciders import purchase, send

    from spaktok.commands.stream_state import millis
    from spaktok.commands.wallet_decide import INLINE_SENDS, SEND_BUCKET_MS
    from spaktok.processors.wallets import WALLETS

    bucket_s = SEND_BUCKET_MS / 1000
    table, broker = Table(), Broker()
    wallet = runner(table, broker, WALLETS)
    sends = [send(seconds=1 + i / 10, command_id=f"old-{i}") for i in range(INLINE_SENDS)]
    asyncio.run(wallet.handle_batch(records(purchase(1000), *sends)))
    assert table.keys_written == ["fan"]  # one bucket so far: it is in the wallet's record

    table.keys_written.clear()
    asyncio.run(wallet.handle_batch(records(send(seconds=bucket_s + 1, command_id="new-0"))))
    old_part = part_key("fan", f"sends-{millis(at(1)) // SEND_BUCKET_MS}", INLINE_SENDS + 2)
    assert table.keys_written == [old_part, "fan"]  # the first bucket became a part, once

    for n, restarted in enumerate((False, True), start=1):
        if restarted:
            wallet = runner(table, broker, WALLETS)  # nothing cached: the part is loaded from the table
        table.keys_written.clear()
        asyncio.run(wallet.handle_batch(records(send(seconds=bucket_s + 1 + n, command_id=f"new-{n}"))))
        assert table.keys_written == ["fan"]
        assert old_part in table.values

    main = orjson.loads(table.values["fan"])
    assert main["state"]["gift_seq"] == INLINE_SENDS + 3
    assert [p for p in main["parts"] if not p.startswith("memory-")] == [old_part.split("\x00")[1]]
    loaded = runner(table, broker, WALLETS).store.decoded("fan", table.values["fan"]).state
    assert loaded.sent("old-7") and loaded.sent("new-2") and loaded.balance == 1000 - INLINE_SENDS - 3


def test_parts_written_before_a_crash_are_ignored_until_the_main_record_names_them() -> None:
    table, broker = Table(), Broker()
    asyncio.run(runner(table, broker).handle_batch(records(open_stream(), join("ann", 1))))
    main_before = table.values["s-1"]
    # a crash right after a batch wrote a new part but before its main record
    table.values[part_key("s-1", "viewers-1-0", 99)] = orjson.dumps({"ghost": [0, 0]})
    assert table.values["s-1"] is main_before
    assert sorted(stored_state(table)["viewers"]) == ["ann"]


def test_a_command_on_another_partition_than_its_aggregate_is_dead_lettered() -> None:
    """One writer per aggregate: a producer hashing keys differently must not fork a state."""
    table, broker = Table(), Broker()
    worker = runner(table, broker)
    asyncio.run(worker.handle_batch(records(open_stream(), partition=2)))
    before = table.values["s-1"]
    asyncio.run(worker.handle_batch(records(join("ann", 1), partition=1)))
    assert table.values["s-1"] is before
    [dead] = [headers for topic, _, _, headers in broker.sent if topic == DEADLETTER]
    assert any(b"lives on partition 2" in value for _, value in dead)
    assert [e["type"] for e in broker.on(EVENTS)] == ["streams.StreamStarted"]


def test_a_batchs_credits_for_one_broadcaster_travel_as_one_command() -> None:
    from test_money_deciders import deliver

    table, broker = Table(), Broker()
    batch = records(
        open_stream(), deliver(1, seconds=1), deliver(2, seconds=2), deliver(1, seconds=3, sender="bo")
    )
    asyncio.run(runner(table, broker).handle_batch(batch))
    [credit] = broker.on("spaktok.commands.earnings")
    assert [(c["gift_tx"], c["stream_sequence"]) for c in credit["credits"]] == [
        ("fan:1", 2),
        ("fan:2", 3),
        ("bo:1", 4),
    ]
    again = Broker()
    asyncio.run(runner(Table(), again).handle_batch(batch))
    assert (
        again.on("spaktok.commands.earnings")[0]["command_id"] == credit["command_id"]
    )  # same batch, same id


# -- bundles (infra/bundles.py): many commands in one record ----------------------------------------

PARTITIONS = 4


def bundled(*commands: Command, partition: int, offset: int = 0) -> Incoming:
    return Incoming(b"s-1", bundles.encode([c.to_bytes() for c in commands]), "commands", partition, offset)


def bundling_runner(table: Table, broker: Broker, spec: Any = STREAMS) -> AggregateRunner:
    topics = dict.fromkeys(["commands", "spaktok.commands.streams", "spaktok.commands.wallets"], PARTITIONS)
    return AggregateRunner(
        spec,
        states=table,
        send=broker.send,
        outcomes_topic=OUTCOMES,
        deadletter_topic=DEADLETTER,
        memory=256,
        partitions=topics,
    )


def other_stream(partition: int, avoid: int | None = None) -> str:
    """A stream id that hashes to `partition` (or, with `avoid`, to any other)."""
    for n in range(1000):
        home = bundles.partition_for(f"s-{n}", PARTITIONS)
        if (avoid is None and home == partition) or (avoid is not None and home != avoid):
            return f"s-{n}"
    raise AssertionError("no such stream id")


def test_a_bundle_is_decided_member_by_member_and_answered_in_one_record() -> None:
    table, broker = Table(), Broker()
    home = bundles.partition_for("s-1", PARTITIONS)
    worker = bundling_runner(table, broker)
    asyncio.run(worker.handle_batch([bundled(open_stream(), join("ann", 1), join("bob", 2), partition=home)]))

    assert [e["type"] for e in broker.on(EVENTS)] == [
        "streams.StreamStarted",
        "streams.ViewerJoined",
        "streams.ViewerJoined",
    ]
    assert [t for t, *_ in broker.sent].count(OUTCOMES) == 1  # three answers, one record
    assert [o["command_type"] for o in broker.on(OUTCOMES)] == [
        "streams.OpenStream",
        "streams.JoinStream",
        "streams.JoinStream",
    ]
    assert sorted(stored_state(table)["viewers"]) == ["ann", "bob"]

    # the same bundle again (a redelivery, an injected copy): answered, nothing decided twice
    asyncio.run(worker.handle_batch([bundled(open_stream(), join("ann", 1), join("bob", 2), partition=home)]))
    assert len(broker.on(EVENTS)) == 3


def test_a_bundled_command_for_another_partition_is_dead_lettered_and_the_rest_decided() -> None:
    table, broker = Table(), Broker()
    home = bundles.partition_for("s-1", PARTITIONS)
    stray = open_stream(stream_id=other_stream(0, avoid=home), command_id="open-stray")
    asyncio.run(bundling_runner(table, broker).handle_batch([bundled(open_stream(), stray, partition=home)]))

    assert [e["aggregate_id"] for e in broker.on(EVENTS)] == ["s-1"]
    [(_, _, value, headers)] = [sent for sent in broker.sent if sent[0] == DEADLETTER]
    assert orjson.loads(value)["command_id"] == "open-stray"
    assert ("bundle-member", b"1") in headers
    assert any(b"hashes to partition" in v for _, v in headers)
    assert stray.stream_id not in table.values


def test_a_bundle_that_is_not_a_list_of_commands_is_dead_lettered_whole() -> None:
    table, broker = Table(), Broker()
    broken = Incoming(b"s-1", b"[1, 2]", "commands", 0, 0)
    asyncio.run(bundling_runner(table, broker).handle_batch([broken, *records(open_stream(), partition=0)]))
    [dead] = [value for topic, _, value, _ in broker.sent if topic == DEADLETTER]
    assert dead == b"[1, 2]"
    assert [e["type"] for e in broker.on(EVENTS)] == ["streams.StreamStarted"]


def test_a_batchs_follow_ups_for_one_partition_leave_as_one_bundle_in_order() -> None:
    from test_money_deciders import FAN, purchase, send

    from spaktok.processors.wallets import WALLETS

    first = "s-1"
    home = bundles.partition_for(first, PARTITIONS)
    same, elsewhere = other_stream(home), other_stream(0, avoid=home)
    sends = [
        send(command_id="send-a").model_copy(update={"stream_id": first}),
        send(command_id="send-b", seconds=2).model_copy(update={"stream_id": elsewhere}),
        send(command_id="send-c", seconds=3).model_copy(update={"stream_id": same}),
    ]
    table, broker = Table(), Broker()
    wallet_home = bundles.partition_for(FAN, PARTITIONS)
    batch = [
        Incoming(FAN.encode(), c.to_bytes(), "spaktok.commands.wallets", wallet_home, n)
        for n, c in enumerate([purchase(10_000), *sends])
    ]
    asyncio.run(bundling_runner(table, broker, WALLETS).handle_batch(batch))

    to_streams = [
        (value, partition)
        for (topic, _, value, _), partition in zip(broker.sent, broker.partitions, strict=True)
        if topic == "spaktok.commands.streams"
    ]
    assert [partition for _, partition in to_streams] == [home, bundles.partition_for(elsewhere, PARTITIONS)]
    together, alone = (orjson.loads(value) for value, _ in to_streams)
    assert [d["stream_id"] for d in together] == [first, same]  # the wallet's order, one record
    assert [d["wallet_seq"] for d in together] == [1, 3]
    assert alone["stream_id"] == elsewhere


def test_a_refused_gift_stays_refused_under_its_key_after_a_top_up() -> None:
    """The same SendGift again (a client's retry, a redelivered or duplicated record) gets its first
    answer, `insufficient-coins`, even once the wallet could pay: one intent, one outcome. Before
    `remember_refusals` the second copy was debited (bench/chaos.py found it)."""
    from test_money_deciders import purchase, send

    from spaktok.processors.wallets import WALLETS

    table, broker = Table(), Broker()
    wallet = runner(table, broker, WALLETS)
    asyncio.run(wallet.handle_batch(records(send(command_id="k-1"))))
    asyncio.run(wallet.handle_batch(records(purchase(1000), send(command_id="k-1"))))
    answers = [(o["status"], o["reason"]) for o in broker.on(OUTCOMES) if o["command_id"] == "k-1"]
    assert answers == [("rejected", "insufficient-coins")] * 2
    assert "wallets.GiftDebited" not in [e["type"] for e in broker.on("spaktok.events.wallets")]
    restarted = runner(table, broker, WALLETS)  # the refusal is in the stored memory, not only cached
    asyncio.run(restarted.handle_batch(records(send(command_id="k-1"))))
    assert [o["status"] for o in broker.on(OUTCOMES) if o["command_id"] == "k-1"] == ["rejected"] * 3
    assert "wallets.GiftDebited" not in [e["type"] for e in broker.on("spaktok.events.wallets")]


def test_a_stream_refusal_is_decided_anew_when_asked_again() -> None:
    """Only the money aggregates remember refusals: a join refused before the stream started is
    decided again (a stream's refusals depend on facts that are meant to change)."""
    table, broker = Table(), Broker()
    aggregate = runner(table, broker)
    asyncio.run(aggregate.handle_batch(records(join("ann", 1))))
    asyncio.run(aggregate.handle_batch(records(open_stream(), join("ann", 1))))
    answers = [o["status"] for o in broker.on(OUTCOMES) if o["command_type"] == "streams.JoinStream"]
    assert answers == ["rejected", "accepted"]


def test_a_gift_on_a_stream_of_hundreds_of_senders_writes_the_gift_not_its_senders() -> None:
    """300 senders fit one part of gifters and one of combos: a gift logs its sender's entries and a
    part is folded now and then, as paid for by what was logged (commands.parts). Before, both
    parts were rewritten for every gift: ~19 KB a gift here, ~27 KB in bench/gifts.py's streams."""
    from test_money_deciders import deliver

    table, broker = Table(), Broker()
    stream = runner(table, broker)
    fans = [deliver(1, sender=f"fan-{i:03d}") for i in range(300)]
    asyncio.run(stream.handle_batch(records(open_stream(), *fans)))
    whole = sum(len(v) for k, v in table.values.items() if "\x00gifters-" in k or "\x00combos-" in k)
    assert whole > 15_000
    written = 0
    for n in range(30):
        table.keys_written.clear()
        asyncio.run(stream.handle_batch(records(deliver(2, sender=f"fan-{n:03d}", seconds=2 + n / 10))))
        written += sum(len(table.values[k]) for k in table.keys_written if "\x00" in k)
    assert written / 30 < whole / 5
    restarted = runner(table, broker).store.decoded("s-1", table.values["s-1"]).state
    assert len(restarted.gifters) == len(restarted.combos) == 300
    # the second rose within the combo window continued the first one's combo
    assert restarted.gifters["fan-007"][1:] == [2, 2] and restarted.combos["fan-007"][2] == 2


def test_a_batch_that_held_the_event_loop_long_is_logged_with_its_aggregates(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    table, broker = Table(), Broker()
    worker = runner(table, broker)
    with caplog.at_level("WARNING", logger="spaktok.processors.aggregate"):
        asyncio.run(worker.handle_batch(records(open_stream(), join("ann", 1))))
        assert "held the event loop" not in caplog.text  # a small batch, far below LONG_BATCH_S
        monkeypatch.setattr(aggregate, "LONG_BATCH_S", 0.0)
        asyncio.run(worker.handle_batch(records(comment("ann", 2))))
    [line] = [r.getMessage() for r in caplog.records if "held the event loop" in r.getMessage()]
    assert line.startswith("a batch of 1 records held the event loop") and line.endswith(": s-1")
