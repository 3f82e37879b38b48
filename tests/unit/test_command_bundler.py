"""The API's command bundler: alone when quiet, together when busy, in order per partition."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from test_stream_decider import join

from spaktok.api.bus import CommandBundler
from spaktok.infra import bundles

TOPIC = "spaktok.commands.streams"
PARTITIONS = 4


class Producer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str, bytes, Any, int | None, float]] = []

    def send(
        self, topic: str, key: str, value: bytes, headers: Any = (), partition: int | None = None
    ) -> None:
        self.sent.append((topic, key, value, headers, partition, asyncio.get_running_loop().time()))


def members(value: bytes) -> list[dict[str, Any]]:
    decoded = orjson.loads(value)
    return decoded if isinstance(decoded, list) else [decoded]


def test_a_quiet_partition_sends_at_once_and_a_busy_one_once_per_window() -> None:
    async def scenario() -> Producer:
        producer = Producer()
        bundler = CommandBundler(producer, {TOPIC: PARTITIONS}, window_ms=50, max_members=500)
        bundler.send(TOPIC, join("ann", 1))  # quiet: goes at once
        assert len(producer.sent) == 1
        for n, user in enumerate(["bob", "cy", "dee"]):  # within the window: they wait
            bundler.send(TOPIC, join(user, 2 + n))
        assert len(producer.sent) == 1
        await asyncio.sleep(0.1)
        return producer

    producer = asyncio.run(scenario())
    (topic, key, first, _, partition, t0), (_, _, second, headers, partition2, t1) = producer.sent
    home = bundles.partition_for("s-1", PARTITIONS)
    assert (topic, key, partition, partition2) == (TOPIC, "s-1", home, home)
    assert [m["actor_id"] for m in members(first)] == ["ann"]
    assert [m["actor_id"] for m in members(second)] == ["bob", "cy", "dee"]  # in order, one record
    assert ("command-type", bundles.BUNDLE_TYPE) in headers
    assert t1 - t0 >= 0.045  # the second record left when the window after the first ended


def test_a_full_bundle_leaves_before_its_window_ends() -> None:
    async def scenario() -> Producer:
        producer = Producer()
        bundler = CommandBundler(producer, {TOPIC: PARTITIONS}, window_ms=10_000, max_members=3)
        for n in range(7):
            bundler.send(TOPIC, join(f"u{n}", n))
        bundler.flush_all()
        return producer

    producer = asyncio.run(scenario())
    assert [len(members(value)) for _, _, value, *_ in producer.sent] == [1, 3, 3]
    assert [m["actor_id"] for _, _, value, *_ in producer.sent for m in members(value)] == [
        f"u{n}" for n in range(7)
    ]


def test_without_a_window_or_partition_counts_every_command_travels_alone() -> None:
    async def scenario(bundler: CommandBundler) -> None:
        for n in range(3):
            bundler.send(TOPIC, join(f"u{n}", n))

    for window, partitions in ((0, {TOPIC: PARTITIONS}), (50, {})):
        producer = Producer()
        asyncio.run(scenario(CommandBundler(producer, partitions, window_ms=window, max_members=500)))
        assert [len(members(value)) for _, _, value, *_ in producer.sent] == [1, 1, 1]
        assert all(partition is None for *_, partition, _ in producer.sent)  # placed by their keys
