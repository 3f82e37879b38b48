"""Archive the log to a file and republish an archive into an empty broker (docs/replay.md).

An archive is JSON lines: first `{"topics": {name: partitions}}`, then one line per record with its
topic, partition, offset, key, value and headers (bytes in base64), each partition in offset order.
Restoring produces every record again with its original key, value and headers, one partition after
another in offset order, to its original partition (for the event topics that is where the project's
murmur2 partitioner puts its key; Faust's changelogs are written by partition), into topics with
the original partition counts: each record lands at its original offset, which the restore checks.
"""

from __future__ import annotations

import base64
import gzip
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from spaktok.infra import topics
from spaktok.infra.kafka import producer_config
from spaktok.settings import Settings

Progress = Callable[[int], None]


@dataclass(frozen=True, slots=True)
class Archived:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]] = field(default_factory=list)


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode()


def _unb64(text: str | None) -> bytes | None:
    return None if text is None else base64.b64decode(text)


def _open(path: Path, mode: str) -> Any:
    return gzip.open(path, mode) if path.suffix == ".gz" else open(path, mode)  # noqa: SIM115


def log_topics(broker: str, everything: bool) -> dict[str, int]:
    """The topics to archive and their partition counts: the event topics, or every topic."""
    admin = AdminClient({"bootstrap.servers": broker})
    metadata = admin.list_topics(timeout=10).topics
    names = (
        [n for n in metadata if not n.startswith("__")]
        if everything
        else [spec.name for spec in topics.EVENT_TOPICS if spec.name in metadata]
    )
    return {name: len(metadata[name].partitions) for name in sorted(names)}


def read_broker(broker: str, names: dict[str, int], idle_s: float = 2.0) -> Iterator[Archived]:
    """Every record of `names` from the beginning until the log has been quiet for `idle_s`."""
    consumer = Consumer(
        {
            "bootstrap.servers": broker,
            "group.id": f"spaktok-export-{time.time_ns()}",
            "enable.auto.commit": False,
            "queued.max.messages.kbytes": 262144,
        }
    )
    consumer.assign(
        [TopicPartition(n, p, OFFSET_BEGINNING) for n, count in names.items() for p in range(count)]
    )
    quiet_since = time.monotonic()
    patience = max(idle_s, 5.0)  # the first fetch after assigning can take a while
    try:
        while time.monotonic() - quiet_since < patience:
            messages = consumer.consume(5000, timeout=0.2)
            for msg in messages:
                if msg.error() is not None:
                    continue
                quiet_since, patience = time.monotonic(), idle_s
                headers = [(k, v or b"") for k, v in (msg.headers() or [])]
                yield Archived(
                    msg.topic(), msg.partition(), msg.offset(), msg.key(), msg.value() or b"", headers
                )
    finally:
        consumer.close()


def export(broker: str, path: Path, everything: bool = True, progress: Progress | None = None) -> int:
    """Write the log (every topic, or only the event topics) to `path` (.gz: compressed)."""
    names = log_topics(broker, everything)
    written = 0
    with _open(path, "wb") as out:
        out.write(orjson.dumps({"topics": names}) + b"\n")
        for record in read_broker(broker, names):
            line = {
                "t": record.topic,
                "p": record.partition,
                "o": record.offset,
                "k": _b64(record.key),
                "v": _b64(record.value),
                "h": [[k, _b64(v)] for k, v in record.headers],
            }
            out.write(orjson.dumps(line) + b"\n")
            written += 1
            if progress is not None and written % 1000 == 0:
                progress(1000)
    if progress is not None:
        progress(written % 1000)
    return written


def read_file(path: Path) -> tuple[dict[str, int], list[Archived]]:
    """An archive's topics and its records, each partition in offset order."""
    with _open(path, "rb") as source:
        header = orjson.loads(source.readline())
        if "topics" not in header:
            raise ValueError(f"{path} is not a spaktok log archive (no topics line first)")
        records = []
        for line in source:
            r = orjson.loads(line)
            headers = [(k, _unb64(v) or b"") for k, v in r["h"]]
            records.append(Archived(r["t"], r["p"], r["o"], _unb64(r["k"]), _unb64(r["v"]) or b"", headers))
    records.sort(key=lambda r: (r.topic, r.partition, r.offset))
    return header["topics"], records


def read_clickhouse(ch: Any, partitions: int) -> tuple[dict[str, int], list[Archived]]:
    """The event records archived in ClickHouse (the `events` table keeps each record's bytes);
    topics get `partitions` partitions (or more, if the archive shows more)."""
    from spaktok.events.envelope import TYPE_HEADER

    rows = ch.query(
        "SELECT topic, partition, offset, aggregate_id, type, envelope FROM events FINAL "
        "ORDER BY topic, partition, offset"
    )
    missing = sum(1 for r in rows if not r["envelope"])
    if missing:
        raise ValueError(
            f"{missing} archived events predate the envelope column and cannot be republished byte for "
            "byte: restore from an export file instead (`spaktok log export`)"
        )
    counts: dict[str, int] = {}
    records = []
    for r in rows:
        counts[r["topic"]] = max(counts.get(r["topic"], partitions), int(r["partition"]) + 1)
        records.append(
            Archived(
                r["topic"],
                int(r["partition"]),
                int(r["offset"]),
                str(r["aggregate_id"]).encode(),
                str(r["envelope"]).encode(),
                [(TYPE_HEADER, str(r["type"]).encode())],
            )
        )
    return counts, records


@dataclass
class RestoreReport:
    records: int = 0
    moved: list[str] = field(default_factory=list)  # records that landed elsewhere than in the source
    seconds: float = 0.0


def restore(
    broker: str,
    source_topics: dict[str, int],
    records: Iterable[Archived],
    progress: Progress | None = None,
) -> RestoreReport:
    """Republish `records` into a broker whose topics are missing or empty; refuses anything else."""
    admin = AdminClient({"bootstrap.servers": broker})
    existing = admin.list_topics(timeout=10).topics
    consumer = Consumer({"bootstrap.servers": broker, "group.id": f"spaktok-restore-{time.time_ns()}"})
    for name in source_topics:
        if name in existing:
            for p in existing[name].partitions:
                _, high = consumer.get_watermark_offsets(TopicPartition(name, p), timeout=10)
                if high > 0:
                    consumer.close()
                    raise ValueError(
                        f"{name} already holds records: restore only into an empty broker "
                        "(a fresh `spaktok dev`, or `spaktok dev --restore FILE`)"
                    )
    consumer.close()
    specs = {spec.name: spec for spec in topics.ALL_TOPICS}
    missing = []
    for name, count in source_topics.items():
        if name in existing:
            if len(existing[name].partitions) != count:
                raise ValueError(
                    f"{name} has {len(existing[name].partitions)} partitions, the archive {count}"
                )
            continue
        spec = specs.get(name)
        config = {"retention.ms": str(spec.retention_ms), "cleanup.policy": spec.cleanup} if spec else {}
        missing.append(NewTopic(name, num_partitions=count, replication_factor=1, config=config))
    if missing:
        for name, future in admin.create_topics(missing, request_timeout=15).items():
            try:
                future.result()
            except Exception as exc:  # noqa: BLE001
                if "already exists" not in str(exc).lower() and "TOPIC_ALREADY_EXISTS" not in str(exc):
                    raise RuntimeError(f"could not create topic {name}: {exc}") from exc
    config = {**producer_config(Settings(broker=broker)), "linger.ms": 20, "batch.size": 1 << 20}
    producer = Producer(config)
    report = RestoreReport()
    started = time.monotonic()

    def delivered(err: Any, msg: Any, original: Archived) -> None:
        if err is not None:
            report.moved.append(f"{original.topic}[{original.partition}]@{original.offset}: {err}")
        elif (msg.partition(), msg.offset()) != (original.partition, original.offset):
            where = f"{original.topic}[{original.partition}]@{original.offset}"
            report.moved.append(f"{where} -> [{msg.partition()}]@{msg.offset()}")

    for record in records:
        while True:
            try:
                # the original partition: for event topics that is where murmur2 of the key puts it;
                # Faust's changelogs are written by partition, not by key
                producer.produce(
                    record.topic,
                    record.value,
                    record.key,
                    partition=record.partition,
                    headers=record.headers,
                    on_delivery=lambda err, msg, original=record: delivered(err, msg, original),
                )
                break
            except BufferError:
                producer.poll(0.05)
        report.records += 1
        if report.records % 1000 == 0:
            producer.poll(0)
            if progress is not None:
                progress(1000)
    remaining = producer.flush(120)
    if remaining:
        raise RuntimeError(f"{remaining} records were not acknowledged by the broker")
    if progress is not None:
        progress(report.records % 1000)
    report.seconds = time.monotonic() - started
    return report
