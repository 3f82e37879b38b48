"""Command → read model on a quiet stack: how long a comment takes to be readable in Postgres.

    python bench/read_latency.py                 # 40 probes, 0.3 s apart, ~1 min with the stack

One embedded stack (broker, worker, projector, Postgres, chDB, API) and one live stream. Each probe
posts a comment over HTTP (the API answers once the worker decided it), then polls Postgres every
2 ms until the comment's row is there. Printed per probe set: the POST's own time, the time until
the row exists, and the difference (what the projector adds after the caller got its answer), and
where the POST's time went, by the Kafka CreateTime of the records it caused: the API's command
record, the worker's event and outcome, the answer (the clocks are one machine's). The
floor, same run: `GET /healthz` one request at a time, the API's round trip with no work behind it.
`bench/load.py` measures the same under a load (its command -> read model row).

Last line: one JSON object with the headline figures.
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid

import httpx
import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from load import console, create_streams, percentile, start_stack
from rich.table import Table
from sqlalchemy import create_engine, text

from spaktok.api.auth import mint_token
from spaktok.infra import topics
from spaktok.settings import Settings


def probe(
    api: str, dsn: str, settings: Settings, stream_id: str, n: int, gap_s: float
) -> tuple[dict[str, list[float]], dict[str, tuple[float, float]]]:
    """`n` comments, each timed to its answer and to its row; `gap_s` of quiet between them. Also
    each comment's text with the wall-clock times of its POST and of the answer, for `stages`."""
    engine = create_engine(dsn)
    client = httpx.Client(base_url=api, timeout=30)
    found: dict[str, list[float]] = {"post": [], "row": [], "after": []}
    posted: dict[str, tuple[float, float]] = {}
    try:
        for i in range(n):
            marker = f"probe {uuid.uuid4().hex}"
            headers = {"Authorization": f"Bearer {mint_token(settings, f'probe-{i}')}"}
            sent, sent_wall = time.monotonic(), time.time()
            answer = client.post(f"/v1/streams/{stream_id}/comments", json={"text": marker}, headers=headers)
            answered = time.monotonic()
            posted[marker] = (sent_wall, time.time())
            answer.raise_for_status()
            while time.monotonic() - sent < 30:
                with engine.connect() as conn:
                    row = conn.execute(
                        text("SELECT 1 FROM stream_comments WHERE text = :t"), {"t": marker}
                    ).first()
                if row:
                    break
                time.sleep(0.002)
            else:
                raise SystemExit(f"probe {i}: the comment was not in Postgres 30 s after it was posted")
            seen = time.monotonic()
            found["post"].append(answered - sent)
            found["row"].append(seen - sent)
            found["after"].append(seen - answered)
            time.sleep(gap_s)
    finally:
        client.close()
        engine.dispose()
    return found, posted


def read_all(broker: str, topic: str) -> list[tuple[float, bytes]]:
    """Every record of `topic` with its CreateTime (s): the time its producer handed it over."""
    consumer = Consumer({"bootstrap.servers": broker, "group.id": f"bench-{uuid.uuid4().hex}"})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        records, idle = [], 0
        while idle < 4:  # a quiet stack: four empty waits in a row is the end
            batch = consumer.consume(1000, timeout=0.25)
            idle = 0 if batch else idle + 1
            records += [(m.timestamp()[1] / 1000, m.value() or b"") for m in batch if m.error() is None]
        return records
    finally:
        consumer.close()


def stages(broker: str, posted: dict[str, tuple[float, float]]) -> dict[str, list[float]]:
    """Where each POST's time went, by the CreateTime of the records it caused: the API's command
    record (bundle), the worker's event and outcome, and the answer."""
    commands = read_all(broker, topics.COMMANDS_STREAMS.name)
    events = read_all(broker, topics.EVENTS_STREAMS.name)
    outcomes = read_all(broker, topics.OUTCOMES.name)
    found: dict[str, list[float]] = {"to_command": [], "to_event": [], "to_outcome": [], "to_answer": []}
    for marker, (sent, answered) in posted.items():
        needle = marker.encode()
        command = next(((at, value) for at, value in commands if needle in value), None)
        event = next((at for at, value in events if needle in value), None)
        if command is None or event is None:
            continue
        command_id = next(
            (item["command_id"] for item in _items(command[1]) if marker in orjson.dumps(item).decode()), None
        )
        outcome = next((at for at, value in outcomes if command_id and command_id.encode() in value), None)
        if outcome is None:
            continue
        found["to_command"].append(command[0] - sent)
        found["to_event"].append(event - command[0])
        found["to_outcome"].append(outcome - event)
        found["to_answer"].append(answered - outcome)
    return found


def _items(raw: bytes) -> list[dict[str, object]]:
    body = orjson.loads(raw)
    return body if isinstance(body, list) else [body]


def spread(values: list[float]) -> dict[str, float]:
    """p50, p90 and max of times in seconds, in ms."""
    return {
        "p50": round(statistics.median(values) * 1000, 1),
        "p90": round(percentile(values, 0.9) * 1000, 1),
        "max": round(max(values) * 1000, 1),
    }


def healthz(api: str, n: int = 200) -> list[float]:
    with httpx.Client(base_url=api, timeout=10) as client:
        times = []
        for _ in range(n):
            started = time.monotonic()
            client.get("/healthz").raise_for_status()
            times.append(time.monotonic() - started)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--probes", type=int, default=40)
    parser.add_argument("--gap", type=float, default=0.3, help="seconds between probes")
    args = parser.parse_args()
    settings = Settings()
    stack = start_stack()
    try:
        stream_id = create_streams(stack.api_url, settings, 1, owner="probe-owner")[0]
        with console.status(f"{args.probes} probes"):
            found, posted = probe(
                stack.api_url, stack.postgres_dsn, settings, stream_id, args.probes, args.gap
            )
        with console.status("where each POST's time went (the records' CreateTime)"):
            found.update(stages(stack.broker, posted))
        with console.status("the floor: GET /healthz"):
            floor = healthz(stack.api_url)
    finally:
        with console.status("stopping the stack"):
            stack.stop()
    table = Table(title=f"command -> read model on a quiet stack: {args.probes} comments, {args.gap} s apart")
    for column in ("measure", "p50", "p90", "max"):
        table.add_column(column, justify="left" if column == "measure" else "right")
    rows = {
        "POST /v1/streams/{id}/comments answered": "post",
        "the comment's row in Postgres (from the POST)": "row",
        "... after the answer": "after",
        "the POST: to the API's command record": "to_command",
        "... then to the worker's event": "to_event",
        "... then to its outcome": "to_outcome",
        "... then to the HTTP answer": "to_answer",
        "floor: GET /healthz": "healthz",
    }
    figures = {name: spread(values) for name, values in (*found.items(), ("healthz", floor)) if values}
    for label, name in rows.items():
        if name in figures:  # a stage none of the probes could be traced through is left out
            table.add_row(label, *(f"{v:,.1f} ms" for v in figures[name].values()))
    console.print(table)
    headline = {"bench": "read_latency", "probes": args.probes, **{f"{k}_ms": v for k, v in figures.items()}}
    print(orjson.dumps(headline).decode())  # noqa: T201 - the headline figures, last line


if __name__ == "__main__":
    main()
