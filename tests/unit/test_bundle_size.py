"""A worker batch's follow-ups for one partition travel as bundles that a Kafka record can hold."""

from __future__ import annotations

import orjson

from spaktok.infra import bundles
from spaktok.processors.bundling import bundled, forward

TOPIC = "spaktok.commands.streams"


def big_forwards(count: int, size: int) -> list:
    return [
        forward(TOPIC, "st-1", {"type": "streams.TimeOutViewers", "command_id": f"c{n}", "pad": "x" * size})
        for n in range(count)
    ]


def members(records: list) -> list[str]:
    ids = []
    for record in records:
        decoded = orjson.loads(record.value)
        ids += [m["command_id"] for m in (decoded if isinstance(decoded, list) else [decoded])]
    return ids


def test_big_follow_ups_are_cut_into_bundles_a_record_can_hold() -> None:
    """100 time-outs of ~60 KB for one stream (a hot stream's shards after a mass time-out) made one
    5.8 MB record before, over the producer's request limit: the batch would never be published."""
    records = bundled(big_forwards(100, 60_000), {TOPIC: 8})
    assert len(records) > 1
    assert max(len(r.value) for r in records) <= bundles.MAX_BUNDLE_BYTES + 1024
    assert members(records) == [f"c{n}" for n in range(100)]  # every one, in order


def test_small_follow_ups_still_share_one_bundle() -> None:
    records = bundled(big_forwards(300, 100), {TOPIC: 8})
    assert len(records) == 1 and members(records) == [f"c{n}" for n in range(300)]
