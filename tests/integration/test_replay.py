"""`spaktok replay` rebuilds every Postgres read model from the log, equal to the live ones row for
row, switches over while the live projector runs, and the live projector carries on afterwards."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from harness import Api, eventually, start_stack, uid
from sqlalchemy import Engine, create_engine, text

from spaktok.api.auth import mint_token
from spaktok.infra.devstack import DevStack
from spaktok.projections.replay import WALL_CLOCK, compare_schemas, read_model_tables
from spaktok.settings import Settings

# tables the traffic below must fill: an empty table would compare equal and prove nothing
EXERCISED = {
    "live_streams",
    "stream_viewers",
    "stream_comments",
    "stream_likes",
    "stream_moderation_log",
    "follows",
    "notifications",
    "stream_schedules",
    "schedule_reminders",
    "wallets",
    "coin_transactions",
    "stream_gifts",
    "stream_gifters",
    "earnings",
    "earnings_history",
    "pk_battles",
    "pk_battle_gifts",
    "projection_checkpoints",
    "projection_positions",
}


@pytest.fixture(scope="module")
def replay_stack() -> Iterator[DevStack]:
    stack, cleanup = start_stack("replay")
    try:
        yield stack
    finally:
        cleanup()


def _ok(response: Any, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, response.text
    return dict(response.json()) if response.content else {}


def traffic(stack: DevStack) -> str:
    """A bit of everything through the API; returns a stream that is still live."""
    settings = Settings()

    def user(user_id: str, **claims: Any) -> Api:
        return Api(stack.api_url, mint_token(settings, user_id, **claims))

    ids = {name: uid(name) for name in ("h1", "h2", "h3", "ann", "bob", "cy", "mod")}
    h1, h2, h3, ann, bob, cy, mod = (user(ids[n]) for n in ("h1", "h2", "h3", "ann", "bob", "cy", "mod"))
    premium_h2 = user(ids["h2"], premium=True)
    admin = user(uid("admin"), roles=["admin"])
    for fan in ("ann", "bob"):
        _ok(
            admin.post(
                "/v1/wallet/purchases", json={"userId": ids[fan], "coins": 5000, "paymentRef": uid("p")}
            ),
            201,
        )
        _ok(user(ids[fan]).post(f"/v1/users/{ids['h1']}/follow"))
    _ok(cy.post(f"/v1/users/{ids['h2']}/follow"))
    _ok(bob.post(f"/v1/users/{ids['h3']}/follow"))
    _ok(bob.delete(f"/v1/users/{ids['h3']}/follow"))
    when = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    schedule = _ok(
        h1.post("/v1/schedules", json={"title": "Later", "category": "music", "scheduledFor": when}), 201
    )
    _ok(ann.post(f"/v1/schedules/{schedule['scheduleId']}/reminders"))

    s1 = _ok(h1.post("/v1/streams", json={"title": "Red", "category": "games"}), 201)["streamId"]
    s2 = _ok(premium_h2.post("/v1/streams", json={"title": "Blue", "category": "games"}), 201)["streamId"]
    s3 = _ok(h3.post("/v1/streams", json={"title": "Short", "category": "chat"}), 201)["streamId"]
    for sid in (s1, s2, s3):
        for viewer in (ann, bob, cy, mod):
            _ok(viewer.post(f"/v1/streams/{sid}/viewers"))
    comments = [
        _ok(v.post(f"/v1/streams/{s1}/comments", json={"text": f"hi {n}"}), 201)
        for n, v in enumerate((ann, bob, cy))
    ]
    _ok(bob.post(f"/v1/streams/{s2}/comments", json={"text": "hello blue"}), 201)
    for viewer in (ann, bob, cy):
        _ok(viewer.post(f"/v1/streams/{s1}/likes", json={"count": 7}))
        _ok(viewer.post(f"/v1/streams/{s1}/heartbeat"))
    _ok(h1.post(f"/v1/streams/{s1}/moderators", json={"userId": ids["mod"]}))
    _ok(
        mod.post(
            f"/v1/streams/{s1}/timeouts", json={"userId": ids["cy"], "durationSeconds": 60, "reason": "calm"}
        )
    )
    _ok(h1.post(f"/v1/streams/{s1}/comments/{comments[1]['commentId']}/pin"))
    _ok(mod.delete(f"/v1/streams/{s1}/comments/{comments[0]['commentId']}"))
    _ok(h1.post(f"/v1/streams/{s1}/bans", json={"userId": ids["cy"], "reason": "spam"}))
    _ok(h1.patch(f"/v1/streams/{s1}", json={"title": "Red corner", "tags": ["pk"]}))
    _ok(ann.post(f"/v1/streams/{s1}/gifts", json={"giftId": "rose", "count": 3}))
    _ok(bob.post(f"/v1/streams/{s2}/gifts", json={"giftId": "perfume", "count": 1}))

    battle = _ok(
        h1.post("/v1/pk-battles", json={"streamId": s1, "opponentStreamId": s2, "durationSeconds": 300}), 201
    )
    bid = battle["battleId"]
    _ok(h2.post(f"/v1/pk-battles/{bid}/accept"))

    def active() -> None:
        assert h1.get(f"/v1/pk-battles/{bid}").json()["status"] == "active"

    eventually(active)
    _ok(ann.post(f"/v1/streams/{s1}/gifts", json={"giftId": "doughnut", "count": 2}))
    _ok(bob.post(f"/v1/streams/{s2}/gifts", json={"giftId": "rose", "count": 1}))
    _ok(h1.post(f"/v1/pk-battles/{bid}/end"))
    _ok(bob.delete(f"/v1/streams/{s3}/viewers/me"))
    _ok(h3.post(f"/v1/streams/{s3}/end"))
    _ok(h2.post(f"/v1/streams/{s2}/end"))
    return s1


def wait_until_projected(pg: Engine, timeout: float = 60) -> None:
    """The live projector has nothing left: its checkpoints stop moving for two seconds."""
    deadline = time.monotonic() + timeout
    last, since = None, time.monotonic()
    while time.monotonic() < deadline:
        with pg.connect() as conn:
            now = conn.execute(
                text('SELECT coalesce(sum("offset"), 0) FROM projection_checkpoints')
            ).scalar_one()
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since > 2:
            return
        time.sleep(0.2)
    raise AssertionError("the live projector did not settle")


def snapshot(pg: Engine, schema: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, sorted, without the WALL_CLOCK bookkeeping columns."""
    tables: dict[str, list[tuple[Any, ...]]] = {}
    with pg.connect() as conn:
        for table in read_model_tables(pg, schema):
            columns = [
                c
                for (c,) in conn.execute(
                    text(
                        "SELECT column_name FROM information_schema.columns WHERE table_schema = :s "
                        "AND table_name = :t ORDER BY ordinal_position"
                    ),
                    {"s": schema, "t": table},
                )
                if c not in WALL_CLOCK.get(table, [])
            ]
            cols = ", ".join(f'"{c}"' for c in columns)
            rows = conn.execute(text(f'SELECT {cols} FROM "{schema}"."{table}"')).all()
            tables[table] = sorted((tuple(r) for r in rows), key=repr)
    return tables


def test_replay_rebuilds_every_read_model_equal_to_the_live_one_and_the_projector_carries_on(
    replay_stack: DevStack,
) -> None:
    stack = replay_stack
    pg = create_engine(stack.postgres_dsn)
    live_stream = traffic(stack)
    wait_until_projected(pg)
    before = snapshot(pg, "public")
    empty = sorted(t for t in EXERCISED if not before.get(t))
    assert not empty, f"the traffic left these tables empty: {empty}"
    with pg.connect() as conn:  # chat history's gift and system messages are rebuilt too
        kinds = set(
            conn.execute(text("SELECT DISTINCT coalesce(system_kind, type) FROM stream_comments")).scalars()
        )
    assert {"text", "gift", "stream_started", "stream_ended", "user_banned"} <= kinds, kinds

    env = {**stack.env(), "COLUMNS": "200"}
    admin = mint_token(Settings(), uid("admin"), roles=["admin"])
    # the live projector's own SQL for every event, into a schema left beside `public`
    slow = subprocess.run(
        [sys.executable, "-m", "spaktok.cli", "replay", "--handlers-only", "--no-switch", "--no-clickhouse"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert slow.returncode == 0, slow.stdout + slow.stderr
    with pg.connect() as conn:
        built = conn.execute(
            text("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'replay_%'")
        ).scalar_one()
    differences = {t: d for t, d in compare_schemas(pg, built, "public").items() if d[1] or d[2]}
    assert not differences, differences
    with pg.begin() as conn:
        conn.exec_driver_sql(f'DROP SCHEMA "{built}" CASCADE')
    time.sleep(1)  # schemas are named by the second

    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "spaktok.cli", "replay", "--verify", "--api", stack.api_url, "--token", admin],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    print(done.stdout, done.stderr[-2000:], f"replay took {time.monotonic() - started:.1f} s")  # noqa: T201
    assert done.returncode == 0, done.stdout + done.stderr
    assert "every table equals the live one" in done.stdout
    assert "ClickHouse: every table equals the one it replaced" in done.stdout

    with pg.connect() as conn:
        old = (
            conn.execute(text("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'old_%'")).scalars().all()
        )
    assert len(old) == 1, old
    # the switch is atomic with the live projector paused: the old schema is the live read models at
    # that moment; nothing was written between the snapshot and the switch (the stack was quiet)
    assert snapshot(pg, old[0]) == before
    after = snapshot(pg, "public")
    assert after.keys() == before.keys()
    for table in before:
        assert after[table] == before[table], f"{table} differs after the replay"
    differences = {t: d for t, d in compare_schemas(pg, "public", old[0]).items() if d[1] or d[2]}
    assert not differences, differences

    # the live projector resumes in the rebuilt schema, right after the replayed offsets
    settings = Settings()
    fan = Api(stack.api_url, mint_token(settings, uid("late")))
    _ok(fan.post(f"/v1/streams/{live_stream}/viewers"))
    posted = _ok(fan.post(f"/v1/streams/{live_stream}/comments", json={"text": "after the switch"}), 201)

    def projected() -> None:
        with pg.connect() as conn:
            found = conn.execute(
                text("SELECT count(*) FROM public.stream_comments WHERE comment_id = :c"),
                {"c": posted["commentId"]},
            ).scalar_one()
            old_found = conn.execute(
                text(f'SELECT count(*) FROM "{old[0]}".stream_comments WHERE comment_id = :c'),
                {"c": posted["commentId"]},
            ).scalar_one()
        assert (found, old_found) == (1, 0)

    eventually(projected, timeout=30)

    def in_clickhouse() -> None:  # the ClickHouse projector resumed after the rebuilt rows too
        log = Api(stack.api_url, admin).get(f"/v1/streams/{live_stream}/log").json()
        assert any("after the switch" in e["payload"] for e in log["events"]), log

    eventually(in_clickhouse, timeout=30)
    history = fan.get(f"/v1/streams/{live_stream}/comments").json()
    assert any(c["text"] == "after the switch" for c in history["comments"]), history
    pg.dispose()


def test_an_exported_log_restored_into_a_fresh_stack_rebuilds_everything_and_the_worker_carries_on(
    replay_stack: DevStack, tmp_path: Any
) -> None:
    """Export → a fresh `spaktok dev --restore` → the same read models, and the restored worker
    accepts commands for the restored streams; then `restore --from clickhouse` into another broker."""
    stack = replay_stack
    pg = create_engine(stack.postgres_dsn)
    live_stream = traffic(stack)
    wait_until_projected(pg)
    before = snapshot(pg, "public")
    archive = tmp_path / "log.jsonl.gz"
    exported = subprocess.run(
        [sys.executable, "-m", "spaktok.cli", "log", "export", "--out", str(archive)],
        env=stack.env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert exported.returncode == 0, exported.stdout + exported.stderr
    wait_until_projected(pg)
    assert snapshot(pg, "public") == before, "the stack was not quiet during the export"

    restored, cleanup = start_stack("restored", restore_from=archive)
    try:
        pg2 = create_engine(restored.postgres_dsn)
        wait_until_projected(pg2)
        after = snapshot(pg2, "public")
        differing = sorted(t for t in before if after.get(t) != before[t] and t != "projection_checkpoints")
        assert not differing, differing
        # the fresh stack's readiness probe appends one refusal (no read-model change) after the restore
        old = {(p, t, n): o for p, t, n, o in before["projection_checkpoints"]}
        new = {(p, t, n): o for p, t, n, o in after["projection_checkpoints"]}
        assert all(new.get(k, -1) >= o for k, o in old.items()), (old, new)
        assert sum(new[k] - o for k, o in old.items()) + len(new.keys() - old.keys()) <= 2, (old, new)

        # the worker recovered its state from the restored changelogs: it knows the stream is live
        fan = Api(restored.api_url, mint_token(Settings(), uid("after-restore")))
        _ok(fan.post(f"/v1/streams/{live_stream}/viewers"))
        posted = _ok(fan.post(f"/v1/streams/{live_stream}/comments", json={"text": "restored"}), 201)

        def projected() -> None:
            with pg2.connect() as conn:
                row = conn.execute(
                    text("SELECT sequence FROM stream_comments WHERE comment_id = :c"),
                    {"c": posted["commentId"]},
                ).scalar_one_or_none()
            assert row is not None
            assert row > max(r[9] for r in before["stream_comments"] if r[1] == live_stream)

        eventually(projected, timeout=30)
        pg2.dispose()
    finally:
        cleanup()

    # ClickHouse keeps every event's bytes: republish them into yet another empty broker
    with pg.connect() as conn:
        event_offsets = dict(
            conn.execute(
                text(
                    'SELECT topic, sum("offset" + 1) FROM projection_checkpoints '
                    "WHERE projection = 'postgres-streams' GROUP BY topic"
                )
            ).all()
        )
    stack.kill("api")  # it holds the chDB directory
    empty = DevStack(data_dir=tmp_path / "empty")
    empty.start_broker()
    try:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "spaktok.cli",
                "restore",
                "--from",
                "clickhouse",
                "--broker",
                empty.broker,
            ],
            env=stack.env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert "every record is back at its original partition and offset" in done.stdout
        restored_counts = {}
        for topic in event_offsets:
            records = read_all(empty.broker, topic)
            restored_counts[topic] = len(records)
        assert restored_counts == {t: int(n) for t, n in event_offsets.items()}
    finally:
        empty.stop()
    pg.dispose()


def read_all(broker: str, topic: str) -> list[bytes]:
    from spaktok.infra.archive import read_broker

    return [r.value for r in read_broker(broker, {topic: 4}, idle_s=1.0)]
