"""A seek from the wrong thread: aiokafka's fetcher read by its consumer's thread, moved by another.

Faust runs aiokafka's consumer in a thread of its own; `Consumer.seek` (faust/transport/consumer.py)
calls aiokafka's `seek` from the agent's thread, which deletes the partition's buffered records
while the consumer's thread may be between listing them and reading one (`Fetcher.fetched_records`).
A 1 M-viewer run lost a worker's fetcher to that `KeyError` (docs/decisions.md "A seek from the
wrong thread"). This bench builds the race on the dev broker, both ways, for the same time:

- `other thread`: the seek called from the main thread, as Faust's `seek` does;
- `its own thread`: the seek handed to the consumer's loop, as Faust's `seek_wait` does (ours now).

Python switches threads every 5 ms by default, which makes the window rare; the bench sets the
switch interval to 1 µs so that a few seconds show it. Last line: one JSON object.

    .venv/bin/python bench/seek_race.py [--seconds 10] [--partitions 16]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
from rich.console import Console
from rich.table import Table

from spaktok.infra.devstack import DevStack

TOPIC = "bench.seek-race"


def fill(broker: str, partitions: int, per_partition: int) -> None:
    admin = AdminClient({"bootstrap.servers": broker})
    for future in admin.create_topics([NewTopic(TOPIC, partitions, 1)]).values():
        future.result(30)
    producer = Producer({"bootstrap.servers": broker, "linger.ms": 20})
    for partition in range(partitions):
        for i in range(per_partition):
            producer.produce(TOPIC, value=b"x" * 100, key=str(i).encode(), partition=partition)
        producer.poll(0)
    producer.flush(60)


class ConsumerThread(threading.Thread):
    """Reads every partition over and over (back to 0 at the end) until told to stop; records the
    first exception its loop raised."""

    def __init__(self, broker: str, partitions: int) -> None:
        super().__init__(daemon=True)
        self.broker, self.tps = broker, [TopicPartition(TOPIC, p) for p in range(partitions)]
        self.loop = asyncio.new_event_loop()
        self.ready, self.stop = threading.Event(), threading.Event()
        self.consumer: AIOKafkaConsumer | None = None
        self.error: BaseException | None = None
        self.records = 0

    def run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._consume())
        except BaseException as exc:  # the race's KeyError, or anything else: reported, not hidden
            self.error = exc
        finally:
            self.ready.set()

    async def _consume(self) -> None:
        self.consumer = AIOKafkaConsumer(bootstrap_servers=self.broker, enable_auto_commit=False)
        await self.consumer.start()
        try:
            self.consumer.assign(self.tps)
            await self.consumer.seek_to_beginning(*self.tps)
            self.ready.set()
            while not self.stop.is_set():
                batch = await self.consumer.getmany(timeout_ms=50, max_records=50)
                self.records += sum(len(records) for records in batch.values())
        finally:
            await self.consumer.stop()


def _where(error: BaseException) -> str:
    """The exception and the aiokafka function it came out of."""
    frames = traceback.extract_tb(error.__traceback__)
    return f"{type(error).__name__} in {frames[-1].name}" if frames else type(error).__name__


def race(broker: str, partitions: int, seconds: float, own_thread: bool) -> dict[str, object]:
    thread = ConsumerThread(broker, partitions)
    thread.start()
    thread.ready.wait(30)
    assert thread.consumer is not None, f"the consumer did not start: {thread.error!r}"
    consumer, seeks, started = thread.consumer, 0, time.monotonic()

    async def seek_there(tp: TopicPartition) -> None:
        consumer.seek(tp, 0)

    while time.monotonic() - started < seconds and thread.error is None and thread.is_alive():
        tp = thread.tps[seeks % partitions]
        if own_thread:
            asyncio.run_coroutine_threadsafe(seek_there(tp), thread.loop).result(10)
        else:
            consumer.seek(tp, 0)
            time.sleep(0.0005)  # about the pace of the thread-handed seeks, so the two compare
        seeks += 1
    thread.stop.set()
    thread.join(30)
    return {
        "seek from": "its own thread" if own_thread else "other thread",
        "seconds": round(time.monotonic() - started, 1),
        "seeks": seeks,
        "records read": thread.records,
        "fetcher crashed": _where(thread.error) if thread.error else "no",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--partitions", type=int, default=16)
    args = parser.parse_args()
    sys.setswitchinterval(1e-6)
    console = Console(stderr=True)
    with tempfile.TemporaryDirectory(prefix="seek-race-") as data_dir:
        stack = DevStack(Path(data_dir))
        stack.start_broker()
        try:
            console.print(f"filling {args.partitions} partitions on {stack.broker} …")
            fill(stack.broker, args.partitions, 2_000)
            rows = [race(stack.broker, args.partitions, args.seconds, own) for own in (False, True)]
        finally:
            stack.stop()
    table = Table(title="aiokafka seek while its thread reads (switch interval 1 µs)")
    for column in rows[0]:
        table.add_column(column)
    for row in rows:
        table.add_row(*(f"{value:,}" if isinstance(value, int) else str(value) for value in row.values()))
    Console().print(table)
    print(json.dumps({"other_thread_crashed": rows[0]["fetcher crashed"] != "no",
                      "own_thread_crashed": rows[1]["fetcher crashed"] != "no", "rows": rows}))


if __name__ == "__main__":
    main()
