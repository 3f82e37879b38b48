"""The command memory is stored apart from the state and by change (processors/memory.py): a batch
writes its own commands' entries, never the whole memory; retries get their first answer from any
layout; crash rules hold (a segment the main record does not name is ignored)."""

from __future__ import annotations

import asyncio

import orjson
from test_aggregate_runner import OUTCOMES, Broker, Table, records, runner
from test_stream_decider import comment, join, open_stream

from spaktok.processors.memory import ANSWERS_KEPT, INLINE_KEPT, Memory
from spaktok.processors.storage import part_key


def commented(n: int, start: int) -> list:
    """`n` comments by `n` users (one each: slow mode refuses a second within seconds)."""
    return [comment(f"user-{start + i}", 400 + start + i * 0.01, text=f"c{start}-{i}") for i in range(n)]


def memory_parts(table: Table) -> dict[str, bytes]:
    return {k: v for k, v in table.values.items() if "\x00memory-" in k}


def test_a_batch_writes_bytes_in_proportion_to_its_commands_not_to_the_memory() -> None:
    table, broker = Table(), Broker()
    stream = runner(table, broker)
    asyncio.run(stream.handle_batch(records(open_stream(), *(join(f"user-{i}", 1) for i in range(7)))))
    for start in range(0, 600, 100):  # 600 comments: memory full (256 ids) long before the end
        asyncio.run(stream.handle_batch(records(*commented(100, start))))
        # a segment per batch; beyond 256 ids the oldest are deleted
        assert len(memory_parts(table)) <= 256 // 100 + 2
    main = orjson.loads(table.values["s-1"])
    assert main["remembered"] == 608 and main["memory"] == []  # before: 256 ids and 32 answers, per batch
    segments = memory_parts(table)
    asyncio.run(stream.handle_batch(records(*commented(1, 700))))
    # one comment: its entry in the main record; no segment written or rewritten
    assert memory_parts(table) == segments
    assert [entry[0] for entry in orjson.loads(table.values["s-1"])["memory"]] == [
        commented(1, 700)[0].command_id
    ]


def test_retries_get_their_first_answer_from_inline_and_from_segments_after_a_restart() -> None:
    table, broker = Table(), Broker()
    stream = runner(table, broker)
    asyncio.run(stream.handle_batch(records(open_stream(), *(join(f"user-{i}", 1) for i in range(7)))))
    batches = [commented(20, start) for start in range(0, 60, 20)]
    for batch in batches:
        asyncio.run(stream.handle_batch(records(*batch)))
    stream = runner(table, broker)  # restart: loaded from the table
    retried = [batches[-1][-1], batches[-1][0], batches[0][5]]  # newest, in a segment, old
    first = {o["command_id"]: o for o in broker.on(OUTCOMES)}
    events_before = len(broker.on(stream.spec.events_topic))
    asyncio.run(stream.handle_batch(records(*retried)))
    answers = broker.on(OUTCOMES)[-3:]
    assert answers[0] == first[retried[0].command_id] and answers[1] == first[retried[1].command_id]
    # beyond the newest ANSWERS_KEPT answers: known by id, answered noop, not decided again
    assert answers[2]["status"] == "noop" and answers[2]["detail"].startswith("duplicate")
    assert len(broker.on(stream.spec.events_topic)) == events_before


def test_memory_keeps_at_least_size_ids_and_the_newest_answers() -> None:
    memory = Memory()
    for n in range(1_000):
        memory.remember(f"c-{n}", {"n": n})
        if n % 13 == 0:
            memory.compacted(256)
    memory.compacted(256)
    assert all(f"c-{n}" in memory for n in range(1_000 - 256, 1_000))
    assert "c-0" not in memory and len(memory.index) < 256 + 2 * 13 + INLINE_KEPT
    assert all(memory.answer(f"c-{n}") == {"n": n} for n in range(1_000 - ANSWERS_KEPT, 1_000))
    assert memory.answer("c-800") is None  # by id only


def test_a_segment_written_before_a_crash_is_ignored_until_the_main_record_names_it() -> None:
    table, broker = Table(), Broker()
    stream = runner(table, broker)
    asyncio.run(stream.handle_batch(records(open_stream())))
    # a crash after a batch wrote its segment, before its main record: the command is not remembered
    ghost = commented(1, 0)[0]
    table.values[part_key("s-1", "memory-1", 99)] = orjson.dumps([[ghost.command_id, None]])
    asyncio.run(runner(table, broker).handle_batch(records(ghost)))
    assert [o["status"] for o in broker.on(OUTCOMES) if o["command_id"] == ghost.command_id] == ["accepted"]
