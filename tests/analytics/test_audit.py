"""Gift and moderation audits from the archived log on chDB, and their CSV/Parquet export, checked
against the simulation's own record of what it did."""

from __future__ import annotations

import csv
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from history import StreamSim, build

from spaktok.projections import audit, audit_export
from spaktok.projections.clickhouse import ClickHouse

SEED = 7


@pytest.fixture(scope="module")
def history(ch: ClickHouse) -> tuple[StreamSim, StreamSim]:
    ended, live, _ = build(SEED, ch)
    return ended, live


def everything(
    ch: ClickHouse, kind: audit.Kind, flt: audit.AuditFilter, limit: int = 1000
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    cursor = None
    while True:
        got, cursor = audit.page(ch, kind, flt, cursor=cursor, limit=limit)
        rows += got
        if cursor is None:
            return rows


def ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def gift_keys(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return sorted(
        (ms(r["occurredAt"]), r["giftTx"], r["senderId"], r["giftId"], r["count"], r["coinCost"],
         r["broadcasterShare"], r["platformShare"], r["status"])
        for r in rows
    )  # fmt: skip


def sim_gift_keys(gifts: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return sorted(
        (g["at_ms"], g["gift_tx"], g["sender"], g["gift_id"], g["count"], g["coins"], g["broadcaster"],
         g["platform"], "received")
        for g in gifts
    )  # fmt: skip


def in_log_order(rows: list[dict[str, Any]]) -> bool:
    keys = [(r["occurredAt"], r["eventId"]) for r in rows]
    return keys == sorted(keys) and len(set(keys)) == len(keys)


def test_the_gift_audit_of_a_stream_is_every_gift_it_took(ch: ClickHouse, history: Any) -> None:
    for sim in history:
        rows = everything(ch, "gifts", audit.AuditFilter(stream_id=sim.stream_id))
        assert in_log_order(rows)
        assert gift_keys(rows) == sim_gift_keys(sim.gifts)
        assert {r["receiverId"] for r in rows} == {sim.host}
        assert all(r["broadcasterShare"] + r["platformShare"] == r["coinCost"] for r in rows)


def test_pages_join_up_to_the_whole_answer(ch: ClickHouse, history: Any) -> None:
    ended, _ = history
    flt = audit.AuditFilter(stream_id=ended.stream_id)
    whole = everything(ch, "gifts", flt)
    assert len(whole) > 7
    assert everything(ch, "gifts", flt, limit=3) == whole
    assert audit.count(ch, "gifts", flt) == len(whole)


def test_gifts_filtered_by_user_and_time(ch: ClickHouse, history: Any) -> None:
    ended, live = history
    rng = random.Random(SEED)
    sender = rng.choice(sorted({g["sender"] for g in ended.gifts}))
    rows = everything(ch, "gifts", audit.AuditFilter(user_id=sender))
    wanted = [g for sim in history for g in sim.gifts if g["sender"] == sender]
    assert gift_keys(rows) == sim_gift_keys(wanted)
    # the receiver matches too: the broadcaster's whole take
    assert gift_keys(everything(ch, "gifts", audit.AuditFilter(user_id=ended.host))) == sim_gift_keys(
        ended.gifts
    )
    times = sorted(g["at_ms"] for g in ended.gifts)
    since_ms, until_ms = times[len(times) // 4], times[3 * len(times) // 4]
    since = datetime.fromtimestamp(since_ms / 1000, UTC)
    until = datetime.fromtimestamp(until_ms / 1000, UTC)
    rows = everything(ch, "gifts", audit.AuditFilter(stream_id=ended.stream_id, since=since, until=until))
    assert gift_keys(rows) == sim_gift_keys([g for g in ended.gifts if since_ms <= g["at_ms"] < until_ms])


def moderation_keys(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return sorted((ms(r["occurredAt"]), r["action"], r["userId"], r["actorId"]) for r in rows)


def sim_moderation_keys(entries: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return sorted((e["at_ms"], e["type"].removeprefix("streams."), e["user"], e["by"]) for e in entries)


def test_the_moderation_audit_is_every_action_taken(ch: ClickHouse, history: Any) -> None:
    for sim in history:
        rows = everything(ch, "moderation", audit.AuditFilter(stream_id=sim.stream_id))
        assert in_log_order(rows)
        assert moderation_keys(rows) == sim_moderation_keys(sim.moderation)
    ended, _ = history
    troll = next(e["user"] for e in ended.moderation if e["user"])
    rows = everything(ch, "moderation", audit.AuditFilter(user_id=troll))
    assert moderation_keys(rows) == sim_moderation_keys([e for e in ended.moderation if e["user"] == troll])
    bans = [r for r in rows if r["action"] == "UserBanned"]
    assert all(r["details"]["reason"] == "spam" and r["role"] == "broadcaster" for r in bans)


def test_a_cursor_that_was_not_handed_out_is_refused(ch: ClickHouse) -> None:
    with pytest.raises(ValueError):
        audit.page(ch, "gifts", audit.AuditFilter(), cursor="not-a-cursor")


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_an_export_holds_the_same_rows(ch: ClickHouse, history: Any, tmp_path: Path, fmt: str) -> None:
    ended, _ = history
    for kind in ("gifts", "moderation"):
        flt = audit.AuditFilter(stream_id=ended.stream_id)
        rows = everything(ch, kind, flt)  # type: ignore[arg-type]
        out = tmp_path / f"{kind}.{fmt}"
        seen: list[int] = []
        written = audit_export.write(
            audit_export.clickhouse_pages(ch, kind, flt),
            kind,
            fmt,
            out,
            seen.append,  # type: ignore[arg-type]
        )
        assert written == len(rows) == sum(seen)
        assert read_back(out, fmt) == [normalise(r) for r in rows]


def normalise(row: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in row.items():
        if isinstance(value, datetime):
            value = value.astimezone(UTC).replace(tzinfo=None) + timedelta(0)
        if isinstance(value, dict):
            value = str(sorted(value.items()))
        out[key] = str(value)
    return out


def read_back(path: Path, fmt: str) -> list[dict[str, Any]]:
    import orjson

    if fmt == "csv":
        with path.open(newline="") as fh:
            rows = list(csv.DictReader(fh))
        for row in rows:
            row["occurredAt"] = datetime.fromisoformat(row["occurredAt"])
            if "details" in row:
                row["details"] = orjson.loads(row["details"])
    else:
        rows = pq.read_table(path).to_pylist()
        for row in rows:
            if "details" in row:
                row["details"] = orjson.loads(row["details"])
    return [normalise(r) for r in rows]


def test_the_cli_exports_from_clickhouse(
    ch: ClickHouse, history: Any, chdb_path: Path, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from spaktok.cli import app

    ended, _ = history
    flt = audit.AuditFilter(stream_id=ended.stream_id)
    rows = everything(ch, "moderation", flt)
    out = tmp_path / "moderation.parquet"
    args = ["audit", "export", "--kind", "moderation", "--format", "parquet", "--out", str(out)]
    args += ["--stream", ended.stream_id, "--clickhouse-dsn", f"chdb://{chdb_path}"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert f"{len(rows):,} moderation rows written" in result.output
    assert read_back(out, "parquet") == [normalise(r) for r in rows]
    # a time range on the command line: naive times are UTC
    first = rows[0]["occurredAt"]
    since = first.replace(tzinfo=None).isoformat(timespec="seconds")
    csv_out = tmp_path / "later.csv"
    args = ["audit", "export", "--kind", "moderation", "--format", "csv", "--out", str(csv_out)]
    args += ["--stream", ended.stream_id, "--since", since, "--clickhouse-dsn", f"chdb://{chdb_path}"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    wanted = [r for r in rows if r["occurredAt"] >= first.replace(microsecond=0)]
    assert read_back(csv_out, "csv") == [normalise(r) for r in wanted]
    assert ch.query("SELECT 1 AS ok")[0]["ok"] == 1  # the session's client still works


def test_the_cli_says_what_to_do_when_the_api_refuses(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from spaktok.cli import app

    args = ["audit", "export", "--kind", "gifts", "--format", "csv", "--out", str(tmp_path / "x.csv")]
    result = CliRunner().invoke(app, [*args, "--api", "http://127.0.0.1:9"])
    assert result.exit_code == 1
    assert "--api needs --token" in result.output
    assert not (tmp_path / "x.csv").exists()
