"""Session-scoped real stack: Tansu broker, embedded Postgres, chDB, Faust worker, projector, API.

`SPAKTOK_TEST_STACK=containers` (with a Docker engine) runs the same processes against
testcontainers Kafka, Postgres and ClickHouse instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from confluent_kafka import Producer
from harness import Api, start_stack
from sqlalchemy import Engine, create_engine

from spaktok.api.auth import mint_token
from spaktok.commands.base import Command
from spaktok.infra import topics
from spaktok.infra.devstack import DevStack
from spaktok.infra.kafka import producer_config
from spaktok.settings import Settings


@pytest.fixture(scope="session")
def stack() -> Iterator[DevStack]:
    stack, cleanup = start_stack("session")
    try:
        yield stack
    finally:
        cleanup()


@pytest.fixture(scope="session")
def settings(stack: DevStack) -> Settings:
    return Settings(broker=stack.broker, postgres_dsn=stack.postgres_dsn)


@pytest.fixture(scope="session")
def pg(stack: DevStack) -> Iterator[Engine]:
    engine = create_engine(stack.postgres_dsn)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def user(stack: DevStack) -> Callable[..., Api]:
    settings = Settings()

    def make(user_id: str, **claims: Any) -> Api:
        return Api(stack.api_url, mint_token(settings, user_id, **claims))

    return make


@pytest.fixture
def edge(stack: DevStack) -> Iterator[Callable[..., None]]:
    """Sends commands straight onto their aggregate's command topic, as the API's edge batcher does
    (a test's own producer: what the API would have sent, without the API)."""
    producer = Producer(producer_config(Settings(broker=stack.broker)))

    def send(*commands: Command) -> None:
        for command in commands:
            producer.produce(
                topics.COMMAND_TOPIC_BY_AGGREGATE[command.aggregate_type].name,
                key=command.aggregate_id.encode(),
                value=command.model_dump_json().encode(),
                headers=[("command-type", command.type.encode())],
            )
        producer.flush(10)

    yield send
    producer.flush(10)
