"""A librdkafka producer (the API's and the projectors' `EventProducer`) against the real broker: every
record on the partition that aiokafka (the worker) and `bundles.partition_for` pick for its key
(murmur2), in order per key. The worker refuses a command on any other partition (WrongPartition)."""

from __future__ import annotations

import uuid

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from spaktok.infra.bundles import partition_for
from spaktok.infra.kafka import EventProducer
from spaktok.settings import Settings

PARTITIONS = 4


def test_every_record_lands_on_its_keys_murmur2_partition_in_order(settings: Settings) -> None:
    topic = f"spaktok.test.publisher-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": settings.broker})
    admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)])[topic].result(15)
    keys = [f"st_{n:04d}" for n in range(40)]
    producer = EventProducer(settings)
    for n in range(2_000):
        producer.send(topic, keys[n % len(keys)], str(n).encode(), [("n", str(n).encode())])
    producer.send(topic, "placed", b"placed", partition=3)
    assert producer.flush(30) == 0 and producer.take_errors() == []
    producer.close()

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
