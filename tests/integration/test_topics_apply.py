"""`spaktok topics apply` against a real broker: the dev broker (Tansu) always, and Apache Kafka from
testcontainers when `SPAKTOK_TEST_STACK=containers` (docs/deploy.md). No mocks of Kafka.

Tansu 0.6 has no CreatePartitions: there, growing a topic must be refused in words (exit 2) while
everything else is still applied; on Apache Kafka the topic must grow.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic, ResourceType
from rich.console import Console
from typer.testing import CliRunner

from spaktok.cli import app as cli_app
from spaktok.infra import topics
from spaktok.infra.devstack import DevStack, free_port
from spaktok.infra.topics_apply import EXIT_FAILED, EXIT_OK, EXIT_UNSUPPORTED, run
from spaktok.settings import Settings


@dataclass
class Broker:
    kind: str  # "tansu" or "kafka"
    address: str

    @property
    def can_grow(self) -> bool:
        return self.kind == "kafka"


@pytest.fixture(params=["tansu", "kafka"])
def broker(request: pytest.FixtureRequest) -> Iterator[Broker]:
    """A fresh, empty broker per test: apply is judged on what it finds."""
    if request.param == "kafka":
        if os.environ.get("SPAKTOK_TEST_STACK") != "containers":
            pytest.skip("Apache Kafka runs with SPAKTOK_TEST_STACK=containers (needs a Docker engine)")
        from testcontainers.kafka import KafkaContainer

        kafka = KafkaContainer().with_kraft().start()
        try:
            yield Broker("kafka", kafka.get_bootstrap_server())
        finally:
            kafka.stop()
        return
    stack = DevStack(data_dir=Path(tempfile.mkdtemp(prefix="spaktok-topics-")))
    stack.start_broker()
    try:
        yield Broker("tansu", stack.broker)
    finally:
        stack.stop()
        shutil.rmtree(stack.data_dir, ignore_errors=True)


def settings_for(broker: Broker) -> Settings:
    # one broker in both cases: replication 1; min.insync.replicas 1 so that config is applied too
    return Settings(broker=broker.address, partitions=3, topic_replication=1, min_insync_replicas=1)


def apply(settings: Settings, **options: bool) -> tuple[int, str]:
    text = io.StringIO()
    code = run(settings, out=Console(file=text, width=400), dry_run=options.pop("dry_run", False), **options)
    return code, text.getvalue()


def described(admin: AdminClient, name: str) -> dict[str, str]:
    resource = ConfigResource(ResourceType.TOPIC, name)
    entries = admin.describe_configs([resource])[resource].result(15)
    return {key: entry.value for key, entry in entries.items()}


def partition_count(admin: AdminClient, name: str) -> int:
    return len(admin.list_topics(name, timeout=15).topics[name].partitions)


def test_apply_creates_every_topic_and_a_second_run_has_nothing_to_do(broker: Broker) -> None:
    settings = settings_for(broker)
    code, first = apply(settings)
    assert code == EXIT_OK, first
    admin = AdminClient({"bootstrap.servers": broker.address})
    for spec in topics.APPLIED_TOPICS:
        assert partition_count(admin, spec.name) == (spec.partitions or 3), spec.name
        config = described(admin, spec.name)
        assert config["retention.ms"] == str(spec.retention_ms), spec.name
        assert config["cleanup.policy"] == spec.cleanup, spec.name
        assert config["max.message.bytes"] == str(topics.MAX_RECORD_BYTES), spec.name
        assert config["min.insync.replicas"] == "1", spec.name
    code, second = apply(settings)
    assert code == EXIT_OK, second
    count = len(topics.APPLIED_TOPICS)
    assert f"nothing to do: the broker's {count} topics match the registry" in second
    assert "create" not in second and "set " not in second


def test_a_dry_run_prints_the_plan_and_changes_nothing(broker: Broker) -> None:
    result = CliRunner().invoke(
        cli_app, ["topics", "apply", "--dry-run", "--broker", broker.address], env={"COLUMNS": "300"}
    )
    assert result.exit_code == 0, result.output
    assert "spaktok.events.streams" in result.output and "forever" in result.output
    assert "compact" in result.output and "7 d" in result.output
    count = len(topics.APPLIED_TOPICS)
    assert f"{count} of {count} topics would change; nothing was changed" in result.output
    admin = AdminClient({"bootstrap.servers": broker.address})
    assert not {spec.name for spec in topics.APPLIED_TOPICS} & set(admin.list_topics(timeout=15).topics)


def test_a_topic_with_too_few_partitions_is_grown_where_the_broker_can(broker: Broker) -> None:
    settings = settings_for(broker)
    name = topics.EVENTS_STREAMS.name
    admin = AdminClient({"bootstrap.servers": broker.address})
    created = admin.create_topics([NewTopic(name, 2, 1, config={"retention.ms": "1000"})])
    created[name].result(15)

    code, held = apply(settings)  # without --grow-partitions: configs fixed, partitions kept, said so
    assert code == EXIT_FAILED, held
    assert "adding partitions moves keys" in held and partition_count(admin, name) == 2
    assert f"partition counts differ from SPAKTOK_PARTITIONS=3 on {name}" in held
    assert described(admin, name)["retention.ms"] == "-1"

    code, grown = apply(settings, grow_partitions=True)
    if broker.can_grow:
        assert code == EXIT_OK, grown
        assert partition_count(admin, name) == 3
        assert "nothing to do" in apply(settings)[1]
    else:  # Tansu: no CreatePartitions; said in words, the topic kept, no traceback
        assert code == EXIT_UNSUPPORTED, grown
        assert f"not supported by this broker {name}: grow partitions to 3" in grown
        assert "CreatePartitions" in grown and partition_count(admin, name) == 2


def test_partitions_are_never_removed(broker: Broker) -> None:
    settings = settings_for(broker)
    name = topics.EVENTS_BROADCASTERS.name
    admin = AdminClient({"bootstrap.servers": broker.address})
    admin.create_topics([NewTopic(name, 5, 1)])[name].result(15)
    code, text = apply(settings, grow_partitions=True)
    assert code == EXIT_FAILED, text
    assert "partitions are never removed; set SPAKTOK_PARTITIONS=5 to match" in text
    assert partition_count(admin, name) == 5


def test_an_unreachable_broker_is_said_in_words() -> None:
    settings = Settings(broker=f"127.0.0.1:{free_port()}")
    text = io.StringIO()
    code = run(settings, dry_run=True, out=Console(file=text, width=300), timeout=2)
    assert code == EXIT_FAILED
    assert "cannot read the topics of the broker" in text.getvalue()
    assert "SPAKTOK_BROKER" in text.getvalue()
