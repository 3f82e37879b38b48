"""One harmless command per aggregate, and how to make it semantically invalid, for the poison tests.

Keyed by aggregate type, like `topics.COMMAND_TOPIC_BY_AGGREGATE`: a new command topic without an
entry here fails `test_poison.py` until one is added, so every topic the worker reads is covered.
Each sample is decided by a fresh aggregate (accepted or refused, either way an event with the
command's id as its cause), and moves no money that a ledger check could miss.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any


@dataclass(frozen=True)
class Sample:
    build: Callable[[str], dict[str, Any]]  # a fresh id -> the command's fields (without the envelope)
    invalid: dict[str, Any] = field(default_factory=lambda: {"actor_id": ""})  # what breaks it


def _in_a_day() -> str:
    return (datetime.now(UTC) + timedelta(days=1)).isoformat()


SAMPLES: dict[str, Sample] = {
    "stream": Sample(lambda i: {"type": "streams.EndStream", "stream_id": f"st_{i}"}),  # refused: unknown
    "broadcaster": Sample(
        lambda i: {"type": "broadcasters.FollowUser", "user_id": f"u_{i}", "followee_id": f"f_{i}"},
        {"followee_id": ""},
    ),
    "audience": Sample(
        lambda i: {"type": "audiences.AddFollower", "channel_id": f"c_{i}", "shard": 3, "follower_id": i},
        {"shard": 16},  # shards are 0..15
    ),
    "schedule": Sample(
        lambda i: {
            "type": "schedules.CreateSchedule",
            "schedule_id": f"sc_{i}",
            "username": "poison",
            "title": "poison test",
            "category": "chat",
            "tags": [],
            "scheduled_for": _in_a_day(),
        },
        {"title": ""},
    ),
    "wallet": Sample(
        lambda i: {"type": "wallets.PurchaseCoins", "user_id": f"u_{i}", "coins": 100, "payment_ref": i},
        {"coins": -5},
    ),
    "earnings": Sample(  # refused: nothing earned
        lambda i: {
            "type": "earnings.RequestPayout",
            "broadcaster_id": f"b_{i}",
            "payout_id": f"p_{i}",
            "method": "paypal",
            "amount_usd": "10.00",
            "coins": 100,
            "minimum_usd": "10.00",
        },
        {"coins": -100},
    ),
    "battle": Sample(lambda i: {"type": "battles.AcceptBattle", "battle_id": f"pk_{i}"}),  # refused
    "stream_shard": Sample(  # refused: the shard was never opened
        lambda i: {
            "type": "stream_shards.RecordShardLikes",
            "stream_id": f"st_{i}",
            "shard": 1,
            "likes": [[f"a_{i}", f"u_{i}", 1]],
        },
        {"shard": 64},  # shards are 0..63
    ),
}


def command(aggregate: str, ident: str, **overrides: Any) -> dict[str, Any]:
    """The sample command of `aggregate` for the fresh id `ident`, as JSON-able fields."""
    return {
        **SAMPLES[aggregate].build(ident),
        "command_id": str(uuid.uuid4()),
        "issued_at": datetime.now(UTC).isoformat(),
        "actor_id": f"poison-{ident}",
        **overrides,
    }
