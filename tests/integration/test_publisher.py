"""The worker's publisher (processors/publisher.py, librdkafka) against the real broker: every record
acknowledged, on the partition aiokafka and the API would pick for its key (murmur2), in order."""

from __future__ import annotations

import asyncio
import uuid

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from spaktok.infra.bundles import partition_for
from spaktok.processors.publisher import Publisher
from spaktok.settings import Settings

PARTITIONS = 4


def test_every_record_is_acknowledged_on_its_keys_murmur2_partition_in_order(settings: Settings) -> None:
    topic = f"spaktok.test.publisher-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": settings.broker})
    admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)])[topic].result(15)
    keys = [f"st_{n:04d}" for n in range(40)]
    publisher = Publisher(settings)

    async def publish() -> None:
        acks = [
            await publisher.send(topic, keys[n % len(keys)], str(n).encode(), [("n", str(n).encode())])
            for n in range(2_000)
        ]
        acks.append(await publisher.send(topic, "placed", b"placed", [], partition=3))
        await asyncio.wait_for(asyncio.gather(*acks), timeout=30)
        assert all(ack.done() and ack.exception() is None for ack in acks)

    asyncio.run(publish())
    publisher.close()

    consumer = Consumer({"bootstrap.servers": settings.broker, "group.id": f"t-{uuid.uuid4().hex}"})
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
    seen: dict[str, list[int]] = {}
    while (msg := consumer.poll(3.0)) is not None:
        assert msg.error() is None
        key = msg.key().decode()
        if key == "placed":
            assert msg.partition() == 3 and msg.value() == b"placed"
            continue
        assert msg.partition() == partition_for(key, PARTITIONS), key
        assert dict(msg.headers())["n"] == msg.value()
        seen.setdefault(key, []).append(int(msg.value()))
    consumer.close()
    assert sum(map(len, seen.values())) == 2_000
    assert all(values == sorted(values) for values in seen.values())  # each key's records in order
