"""Poison everywhere (issue 16): on every command topic, the outcomes topic and the event topics, a
record that cannot be handled is parked on the dead-letter topic with its stage, origin, error and
original bytes; the next good record on the same key is processed, and nothing stops."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import orjson
import poison_cases
import pytest
from confluent_kafka import Consumer, Message, Producer, TopicPartition
from harness import Api, eventually
from sqlalchemy import Engine, text

import spaktok.commands.catalog  # noqa: F401 - every command type must be decodable here
from spaktok.api.auth import mint_token
from spaktok.commands.base import command_from
from spaktok.infra import topics
from spaktok.infra.devstack import DevStack
from spaktok.infra.kafka import producer_config
from spaktok.settings import Settings

# every consumer of the event topics parks what it cannot read, under its own stage (the webhook
# outbox, hosted by the worker, too: docs/webhooks.md)
PROJECTORS = ("project:postgres-streams", "project:clickhouse-events", "project:webhooks-outbox")


class Tail:
    """Everything that arrives on some topics from now on (positions taken before anything is sent)."""

    def __init__(self, broker: str, names: list[str]) -> None:
        self.consumer = Consumer(
            {
                "bootstrap.servers": broker,
                "group.id": f"poison-{uuid.uuid4().hex}",
                "enable.auto.commit": False,
            }
        )
        assignment = []
        for name in names:
            for partition in self.consumer.list_topics(name, timeout=10).topics[name].partitions:
                _, high = self.consumer.get_watermark_offsets(TopicPartition(name, partition), timeout=10)
                assignment.append(TopicPartition(name, partition, high))
        self.consumer.assign(assignment)
        self.seen: list[Message] = []

    def read(self) -> list[Message]:
        self.seen += [m for m in self.consumer.consume(1000, timeout=0.2) if m.error() is None]
        return self.seen

    def close(self) -> None:
        self.consumer.close()


def dead_letters(tail: Tail, source: str, key: bytes) -> list[dict[str, Any]]:
    """The dead letters parked from `source` for records keyed `key`: value and headers."""
    found = []
    for msg in tail.read():
        if msg.topic() != topics.DEADLETTER.name:
            continue
        headers = dict(msg.headers() or [])
        if headers.get("dlq-source-topic") == source.encode() and headers.get("dlq-source-key") == key:
            found.append({"key": msg.key(), "value": msg.value(), **headers})
    return found


def check_parked(parked: list[dict[str, Any]], key: bytes) -> None:
    """What every dead letter must carry: error, stage, the source position and the original key."""
    for letter in parked:
        assert letter["dlq-error"] and letter["dlq-stage"]
        assert int(letter["dlq-source-partition"]) >= 0 and int(letter["dlq-source-offset"]) >= 0
        assert letter["key"] == key  # the dead letter's own key: the original, as text


@pytest.fixture
def producer(stack: DevStack) -> Iterator[Producer]:
    producer = Producer(producer_config(Settings(broker=stack.broker)))
    yield producer
    producer.flush(10)


def send(producer: Producer, topic: str, key: bytes, values: list[bytes]) -> None:
    for value in values:
        producer.produce(topic, key=key, value=value)
    producer.flush(10)


@pytest.mark.parametrize("aggregate", sorted(topics.COMMAND_TOPIC_BY_AGGREGATE))
def test_poison_on_a_command_topic_is_parked_and_the_next_command_decided(
    stack: DevStack, producer: Producer, aggregate: str
) -> None:
    assert aggregate in poison_cases.SAMPLES, f"no sample command for {aggregate!r} in poison_cases.py"
    source = topics.COMMAND_TOPIC_BY_AGGREGATE[aggregate].name
    ident = uuid.uuid4().hex[:10]
    good = poison_cases.command(aggregate, ident)
    key = command_from(good).aggregate_id.encode()  # a real aggregate's key (and the sample is valid)
    stranger = next(a for a in sorted(poison_cases.SAMPLES) if a != aggregate)
    invalid = {**good, **poison_cases.SAMPLES[aggregate].invalid, "command_id": str(uuid.uuid4())}
    poison = {
        b"\xff\xfe not even text " + ident.encode(): "decode",
        json.dumps({"hello": ident}).encode(): "decode",  # JSON, but not a command
        orjson.dumps(poison_cases.command(stranger, ident)): "validate",  # another aggregate's command
        orjson.dumps(invalid): "validate",  # the right command, semantically invalid
    }
    with pytest.raises(ValueError):
        command_from(invalid)  # the invalid one really is refused by its model
    events = topics.EVENT_TOPICS[
        [spec.name for spec in topics.EVENT_TOPICS].index(f"spaktok.events.{source.rsplit('.', 1)[1]}")
    ].name
    tail = Tail(stack.broker, [topics.DEADLETTER.name, events])
    try:
        send(producer, source, key, [*poison, orjson.dumps(good)])

        def decided() -> None:
            causes = [orjson.loads(m.value())["causation_id"] for m in tail.read() if m.topic() == events]
            assert good["command_id"] in causes, "the good command after the poison was not decided"

        eventually(decided, timeout=30)

        def parked() -> list[dict[str, Any]]:
            found = dead_letters(tail, source, key)
            assert sorted(d["value"] for d in found) == sorted(poison), found
            return found

        found = eventually(parked, timeout=30)
        check_parked(found, key)
        assert {d["value"]: d["dlq-stage"].decode() for d in found} == poison
        assert len({d["dlq-source-partition"] for d in found}) == 1  # one key, one partition
        offsets = [
            int(d["dlq-source-offset"]) for d in sorted(found, key=lambda d: list(poison).index(d["value"]))
        ]
        assert offsets == sorted(set(offsets)), "each poison record parked once, in order"
    finally:
        tail.close()


def test_poison_on_the_outcomes_topic_is_parked_and_the_api_still_answers(
    stack: DevStack, producer: Producer, user: Callable[..., Api]
) -> None:
    ident = uuid.uuid4().hex[:10]
    key = f"corr-{ident}".encode()
    whole = [b"\xffnot an outcome " + ident.encode(), json.dumps({"hello": ident}).encode()]
    member = {"not": "an outcome", "id": ident}
    bundle = orjson.dumps([member])  # a bundle of outcomes whose one member is not one
    tail = Tail(stack.broker, [topics.DEADLETTER.name])
    try:
        send(producer, topics.OUTCOMES.name, key, [*whole, bundle])

        def parked() -> list[dict[str, Any]]:
            found = dead_letters(tail, topics.OUTCOMES.name, key)
            assert sorted({d["value"] for d in found}) == sorted([*whole, orjson.dumps(member)]), found
            return found

        found = eventually(parked, timeout=30)
        check_parked(found, key)
        assert {d["dlq-stage"] for d in found} == {b"outcomes"}
        assert [d.get("bundle-member") for d in found if d["value"] == orjson.dumps(member)][0] == b"0"
    finally:
        tail.close()
    # the listener is alive: a command sent now is answered with its outcome, not a 202
    created = user(f"after-outcome-poison-{ident[:6]}").post(
        "/v1/streams", json={"title": "after poison", "category": "chat"}
    )
    assert created.status_code == 201, created.text


def envelope(stream_id: str, event_type: str, payload: dict[str, Any], sequence: int) -> bytes:
    """An event record as a worker would write it, except for what is wrong with it; spaced JSON, so a
    dead letter that re-encodes it instead of keeping its bytes is caught."""
    body = {
        "event_id": str(uuid.uuid4()),
        "type": event_type,
        "schema_version": 1,
        "aggregate_type": "stream",
        "aggregate_id": stream_id,
        "sequence": sequence,
        "occurred_at": datetime.now(UTC).isoformat(),
        "causation_id": str(uuid.uuid4()),
        "correlation_id": str(uuid.uuid4()),
        "actor_id": "poison",
        "payload": payload,
    }
    return json.dumps(body, indent=1).encode()


def test_an_event_that_cannot_be_projected_is_parked_and_the_next_one_projected(
    stack: DevStack, producer: Producer, user: Callable[..., Api], pg: Engine
) -> None:
    ident = uuid.uuid4().hex[:8]
    owner = user(f"poison-owner-{ident}")
    started = owner.post("/v1/streams", json={"title": "poisoned events", "category": "chat"})
    assert started.status_code == 201, started.text
    stream_id = started.json()["streamId"]
    source, key = topics.EVENTS_STREAMS.name, stream_id.encode()

    def projected(sql: str, **params: Any) -> Any:
        with pg.connect() as conn:
            value = conn.execute(text(sql), params).scalar()
        assert value, sql
        return value

    eventually(lambda: projected("SELECT 1 FROM live_streams WHERE stream_id = :s", s=stream_id))
    # each claims the stream's next sequence (2), which the viewer's real join below then takes
    poison = [
        envelope(stream_id, "streams.ViewerJoined", {"user_id": f"ghost-{ident}", "viewer_count": 999}, 2),
        envelope(stream_id, "streams.NoSuchEvent", {"user_id": f"ghost-{ident}"}, 2),
        b"\x00\xff not an envelope " + ident.encode(),
    ]
    tail = Tail(stack.broker, [topics.DEADLETTER.name])
    try:
        send(producer, source, key, poison)
        viewer = f"poison-viewer-{ident}"
        joined = user(viewer).post(f"/v1/streams/{stream_id}/viewers")
        assert joined.status_code in (200, 201), joined.text

        sql = "SELECT 1 FROM stream_viewers WHERE stream_id = :s AND user_id = :u"
        eventually(lambda: projected(sql, s=stream_id, u=viewer), timeout=30)

        def parked() -> list[dict[str, Any]]:
            found = dead_letters(tail, source, key)
            assert sorted((d["value"], d["dlq-stage"].decode()) for d in found) == sorted(
                (value, stage) for value in poison for stage in PROJECTORS
            ), [(d["value"][:40], d["dlq-stage"]) for d in found]
            return found

        found = eventually(parked, timeout=30)
        check_parked(found, key)
    finally:
        tail.close()
    partition = int(found[0]["dlq-source-partition"])
    last_poison = max(int(d["dlq-source-offset"]) for d in found)
    checkpoint = "SELECT \"offset\" FROM projection_checkpoints WHERE projection = 'postgres-streams' "
    checkpoint += "AND topic = :t AND partition = :p"
    assert projected(checkpoint, t=source, p=partition) > last_poison  # the checkpoint moved past them

    def counted() -> None:  # ClickHouse kept the real join, not the poison that claimed its sequence
        analytics = owner.get(f"/v1/streams/{stream_id}/analytics")
        assert analytics.status_code == 200, analytics.text
        body = analytics.json()
        assert body["uniqueViewers"] == 1 and body["peakViewers"] < 999, body

    eventually(counted, timeout=30)


def test_poison_keys_and_values_on_the_stream_events_do_not_stop_the_live_feed(
    stack: DevStack, producer: Producer, user: Callable[..., Api]
) -> None:
    """The feed consumer decoded keys strictly: one key that is not UTF-8 stopped it for everyone."""
    from test_live_feed import Feed, start, wait_for_document, ws_url
    from websockets.sync.client import connect

    ident = uuid.uuid4().hex[:8]
    owner, fan = user(f"poison-host-{ident}"), user(f"poison-fan-{ident}", name="Fan")
    stream_id = start(owner)
    wait_for_document(owner, stream_id)
    token = mint_token(Settings(), f"poison-watcher-{ident}")
    with connect(ws_url(stack, stream_id, token), open_timeout=10) as conn:
        feed = Feed(conn)
        feed.until(lambda items: len(items) > 0)  # the snapshot: the feed follows the stream
        send(producer, topics.EVENTS_STREAMS.name, b"\xff\xfe" + ident.encode(), [b"\xff not an event"])
        send(producer, topics.EVENTS_STREAMS.name, stream_id.encode(), [b"{not an event either"])
        assert fan.post(f"/v1/streams/{stream_id}/viewers").status_code == 200
        posted = fan.post(f"/v1/streams/{stream_id}/comments", json={"text": "after the poison"})
        assert posted.status_code == 201, posted.text
        feed.until(lambda items: any(i.get("text") == "after the poison" for i in items))
