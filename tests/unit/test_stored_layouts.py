"""Records the worker stored before issue #17 still load (tests/fixtures/stored_v1.json, written by
that code with tests/fixtures/make_stored_v1.py): the same states, the same remembered answers, and
the next store moves them to today's layout without losing either."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
import pytest
from test_aggregate_runner import Broker, Table
from test_stream_decider import comment

from spaktok.commands.base import decode_command
from spaktok.processors.aggregate import AggregateRunner, Incoming
from spaktok.processors.earnings import EARNINGS
from spaktok.processors.streams import STREAMS
from spaktok.processors.wallets import WALLETS

FIXTURE = orjson.loads((Path(__file__).parents[1] / "fixtures" / "stored_v1.json").read_bytes())


def old_table() -> Table:
    table = Table()
    for key, value in FIXTURE["table"].items():
        table.values[key] = value.encode()
        table.partitions[key] = FIXTURE["partitions"][key]
    return table


def make(spec: Any, table: Table, broker: Broker) -> AggregateRunner:
    return AggregateRunner(
        spec, states=table, send=broker.send, outcomes_topic="outcomes", deadletter_topic="dl", memory=256
    )


def old_state(key: str) -> dict[str, Any]:
    return orjson.loads(FIXTURE["table"][key])


def test_an_old_stream_record_loads_with_its_parts() -> None:
    table = old_table()
    state = make(STREAMS, table, Broker()).store.decoded("s-1", table.values["s-1"]).state
    main = old_state("s-1")["state"]
    assert (state.version, state.comments, state.likes, state.gifts) == (
        main["version"],
        main["comments"],
        main["likes"],
        main["gifts"],
    )
    assert len(state.viewers) == len(state.watch_time) == 2_100
    assert len(state.gifters) == 30 and state.gifters["fan-0007"][0] > 0


def test_an_old_wallet_and_earnings_record_load() -> None:
    table = old_table()
    wallet = make(WALLETS, table, Broker()).store.decoded("fan", table.values["fan"]).state
    assert wallet.balance == 1000 - 5 and all(wallet.sent(f"send-{i}") for i in range(5))
    earnings = make(EARNINGS, table, Broker()).store.decoded("host", table.values["host"]).state
    assert earnings.to_dict() == old_state("host")["state"]


@pytest.mark.parametrize("after_a_store", [False, True])
def test_a_retry_gets_the_answer_remembered_in_the_old_layout(after_a_store: bool) -> None:
    """The last gift deliveries' answers were in the old main record; a retry gets them again, also
    after a store has moved the memory to today's layout (and after a restart that reloads it)."""
    table, broker = old_table(), Broker()
    stream = make(STREAMS, table, broker)
    if after_a_store:
        fresh = comment("viewer-00003", 500, text="new layout")
        asyncio.run(stream.handle_batch([Incoming(b"s-1", fresh.to_bytes(), "commands", 2, 0)]))
        assert "memory" in orjson.loads(table.values["s-1"]) and table.writes >= 1
        stream = make(STREAMS, table, broker)  # a restart: nothing cached
    first = FIXTURE["outcomes"][-1]
    retried = [
        c for c in map(decode_command, _delivered(first["command_id"])) if c.command_id == first["command_id"]
    ]
    asyncio.run(stream.handle_batch([Incoming(b"s-1", retried[0].to_bytes(), "commands", 2, 1)]))
    answers = [o for o in broker.on("outcomes") if o["command_id"] == first["command_id"]]
    assert answers == [first]
    assert not [e for e in broker.on(STREAMS.events_topic) if e["causation_id"] == first["command_id"]]


def _delivered(command_id: str) -> list[bytes]:
    """The DeliverGift the fixture's generator sent with this id, rebuilt from its outcome."""
    from test_money_deciders import deliver

    sender = command_id.removeprefix("deliver-").rsplit("-", 1)[0]
    return [deliver(1, sender=sender, seconds=70).to_bytes()]
