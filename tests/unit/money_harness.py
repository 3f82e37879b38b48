"""The harness of the model state machine (test_money_model.py): the in-memory world delivered one
aggregate at a time, and the model's message for each client command."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import orjson
from money_model import PayoutRequest, Purchase, Send, Settlement, StreamAction
from test_money_properties import World

from spaktok.commands.base import Command
from spaktok.commands.earnings import CompletePayout, CreditEarnings, FailPayout, RequestPayout
from spaktok.commands.streams import BanUser, DeliverGift, EndStream, OpenStream
from spaktok.commands.wallets import PurchaseCoins, RefundGift, SendGift
from spaktok.infra import topics
from spaktok.processors.aggregate import AggregateRunner, Incoming
from spaktok.settings import Settings

WALLETS_TOPIC = topics.COMMANDS_WALLETS.name
EARNINGS_TOPIC = topics.COMMANDS_EARNINGS.name
COIN_VALUE = Settings.model_fields["coin_value_usd"].default
PAYOUT_MINIMUM = Settings.model_fields["payout_minimum_usd"].default


class StoredWorld(World):
    """The in-memory log and runners, delivered one aggregate at a time, on one event loop (a new
    loop per call, as World does, was most of the run time)."""

    def __init__(self, command_topics: dict[str, Any]) -> None:
        super().__init__(command_topics)
        self.loop = asyncio.new_event_loop()

    def client(self, command: Command) -> None:
        self.sent_by_client.append(command)
        topic = topics.COMMAND_TOPIC_BY_AGGREGATE[command.aggregate_type].name
        self.loop.run_until_complete(self.send(topic, command.aggregate_id, command.to_bytes(), []))

    def deliver_all_of(self, queue: tuple[str, str], sizes: list[int], crashes: int) -> None:
        """Everything queued for one aggregate, in batches of `sizes` (cycled); batch i crashes
        after publishing when bit i of `crashes` is set (then the batch is decided again)."""
        attempt = 0
        while self.queues[queue]:
            self._batch(queue, sizes[attempt % len(sizes)], crash=bool(crashes >> attempt & 1))
            attempt += 1

    def _batch(self, queue: tuple[str, str], size: int, crash: bool) -> None:
        """World.deliver for one known queue."""
        topic, key = queue
        records = self.queues[queue]
        batch = [records.popleft() for _ in range(min(size, len(records)))]
        table = self.tables[topic]
        before = dict(table.values)
        incoming = [Incoming(key.encode(), value, topic, 0, i) for i, value in enumerate(batch)]
        self.loop.run_until_complete(self.runners[topic].handle_batch(incoming))
        if crash:  # published, never stored: the records come again and are decided again
            table.values = before
            self.runners[topic].store.forget()
            records.extendleft(reversed(batch))
        else:
            self.consumed[queue].extend(batch)

    def redeliver_last(self, queue: tuple[str, str], count: int) -> None:
        self.queues[queue].extend(self.consumed[queue][-count:])

    def restart(self, topic: str) -> None:
        """A new worker on the same table: nothing survives but what was stored."""
        old = self.runners[topic]
        self.runners[topic] = AggregateRunner(
            old.spec,
            states=self.tables[topic],
            send=self.send,
            outcomes_topic="o",
            deadletter_topic="d",
            memory=1,
        )

    def stored(self, topic: str, key: str) -> dict[str, Any]:
        value = self.tables[topic].values.get(key)
        return {} if value is None else orjson.loads(value)["state"]


def usd(coins: int) -> str:
    return f"{Decimal(coins) * Decimal(COIN_VALUE):.2f}"


# forwards of the saga, and the streams' opening: again, each must be nothing at all
NOTHING_AGAIN = (DeliverGift, RefundGift, CreditEarnings, OpenStream)


def intent_of(command: Command) -> tuple[str, object]:
    """The model's queue and message for a client's command."""
    match command:
        case PurchaseCoins():
            return f"wallet:{command.user_id}", Purchase(command.user_id, command.payment_ref, command.coins)
        case SendGift():
            coins = command.gift.coin_cost * command.count
            return f"wallet:{command.user_id}", Send(
                command.command_id, command.user_id, command.stream_id, coins
            )
        case BanUser():
            return command.stream_id, StreamAction(command.stream_id, "ban", command.target_user_id)
        case EndStream():
            return command.stream_id, StreamAction(command.stream_id, "end")
        case RequestPayout():
            host = command.broadcaster_id
            return f"earnings:{host}", PayoutRequest(host, command.payout_id, command.coins)
        case CompletePayout() | FailPayout():
            host = command.broadcaster_id
            return f"earnings:{host}", Settlement(
                host, command.payout_id, isinstance(command, CompletePayout)
            )
    raise AssertionError(f"no intent of {command.type} in the model")


def model_queue(queue: tuple[str, str]) -> str:
    topic, key = queue
    return {WALLETS_TOPIC: f"wallet:{key}", EARNINGS_TOPIC: f"earnings:{key}"}.get(topic, key)
