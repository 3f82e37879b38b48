"""Analysts' SQL on the real stack (chDB in the API process): the example queries of
docs/analytics.md against traffic made here, every refusal kind, roles, CSV and `spaktok sql`.
The last test measures, in a process holding a chDB of its own, what `readonly = 1` refuses by
itself, without our statement check."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from harness import Api, eventually, problem, uid
from test_live_feed import wait_for_document
from test_money import buy
from typer.testing import CliRunner

from spaktok.cli import app
from spaktok.infra.devstack import DevStack
from spaktok.projections.clickhouse_sql import SqlLimits

pytestmark = pytest.mark.integration

DOCS = Path(__file__).resolve().parents[2] / "docs" / "analytics.md"
# who watches which of the broadcaster's three streams, and who leaves before the end
WATCHERS = (("a", "b", "c"), ("a", "b", "d"), ("a", "e"))


def examples() -> dict[str, str]:
    """The ```sql blocks of docs/analytics.md, by their `-- name:` line."""
    blocks = re.findall(r"```sql\n(.*?)```", DOCS.read_text(), re.DOTALL)
    return {re.match(r"-- name: (\S+)", b).group(1): b for b in blocks}  # type: ignore[union-attr]


def sql(api: Api, query: str, **body: Any) -> Any:
    return api.post("/v1/admin/sql", json={"sql": query, **body}, timeout=60)


def rows(api: Api, query: str) -> list[dict[str, Any]]:
    response = sql(api, query)
    assert response.status_code == 200, response.text
    doc = response.json()
    names = [c["name"] for c in doc["columns"]]
    return [dict(zip(names, row, strict=True)) for row in doc["rows"]]


@pytest.fixture(scope="module")
def analyst(user: Callable[..., Api]) -> Api:
    return user(uid("analyst"), roles=["analyst"])


@pytest.fixture(scope="module")
def history(stack: DevStack, user: Callable[..., Api], analyst: Api) -> dict[str, Any]:
    """Three streams of one broadcaster, one after the other: joins, a leave, gifts, the ends."""
    host_id = uid("host")
    host = user(host_id)
    admin = user(uid("admin"), roles=["admin"])
    viewers = {name: uid(name) for name in "abcde"}
    apis = {name: user(viewers[name]) for name in viewers}
    for name in ("b", "c"):
        buy(admin, viewers[name], 1000)
    streams, coins = [], {viewers["b"]: 0, viewers["c"]: 0}
    gifts = {0: [("b", "doughnut", 2), ("c", "rose", 1)], 1: [("b", "rose", 3)]}
    for n, watchers in enumerate(WATCHERS):
        sid = host.post("/v1/streams", json={"title": f"Part {n + 1}", "category": "chat"}).json()["streamId"]
        wait_for_document(host, sid)
        streams.append(sid)
        for name in watchers:
            assert apis[name].post(f"/v1/streams/{sid}/viewers").status_code == 200
        for name, gift, count in gifts.get(n, []):
            sent = apis[name].post(f"/v1/streams/{sid}/gifts", json={"giftId": gift, "count": count})
            assert sent.status_code == 200, sent.text
            coins[viewers[name]] += sent.json()["coinCost"]
        if n == 0:
            assert apis["a"].delete(f"/v1/streams/{sid}/viewers/me").status_code == 200
        assert host.post(f"/v1/streams/{sid}/end").status_code == 200

    def stored() -> None:  # ClickHouse has caught up: every join and every end of the three streams
        ids = ", ".join(f"'{s}'" for s in streams)
        found = rows(
            analyst,
            f"SELECT countIf(type = 'streams.ViewerJoined') AS joins, countIf(type = 'streams.StreamEnded') "
            f"AS ends FROM events FINAL WHERE aggregate_type = 'stream' AND aggregate_id IN ({ids})",
        )
        assert found == [{"joins": 8, "ends": 3}], found

    eventually(stored, timeout=60, interval=0.5)
    return {"host": host_id, "streams": streams, "viewers": viewers, "coins": coins}


def example(name: str, history: dict[str, Any]) -> str:
    query = examples()[name]
    return query.replace("'STREAM_ID'", f"'{history['streams'][0]}'").replace(
        "'BROADCASTER_ID'", f"'{history['host']}'"
    )


def test_the_documented_examples_answer_what_the_traffic_was(analyst: Api, history: dict[str, Any]) -> None:
    assert set(examples()) == {"concurrent-viewers", "top-gifters", "retention"}
    minutes = rows(analyst, example("concurrent-viewers", history))
    assert max(m["viewers"] for m in minutes) == 3  # a, b, c at once
    assert minutes[-1]["present_at_end"] == 0  # a left, the end took b and c out
    assert [m["minute"] for m in minutes] == sorted(m["minute"] for m in minutes)

    v, coins = history["viewers"], history["coins"]
    gifters = rows(analyst, example("top-gifters", history))
    expected = sorted(
        [
            {"sender_id": v["b"], "coins": coins[v["b"]], "gifts": 5, "sends": 2},
            {"sender_id": v["c"], "coins": coins[v["c"]], "gifts": 1, "sends": 1},
        ],
        key=lambda g: (-g["coins"], g["sender_id"]),
    )
    assert gifters == expected

    retention = rows(analyst, example("retention", history))
    assert [(r["stream_number"], r["stream_id"]) for r in retention] == list(
        enumerate(history["streams"], start=1)
    )
    # stream 2: a and b came back (from stream 1); stream 3: a came back, e is new
    assert [(r["viewers"], r["returning"], r["from_previous"]) for r in retention] == [
        (3, 0, 0),
        (3, 2, 2),
        (2, 1, 1),
    ]
    assert [r["returning_share"] for r in retention] == [0.0, 0.667, 0.5]


def test_a_wrong_example_is_caught(analyst: Api, history: dict[str, Any]) -> None:
    """The checks above can fail: counting a stream's own viewers as returning (`<=` for `<`) and
    leaving the leaves out of the running count give other answers than the traffic's."""
    wrong = example("retention", history).replace("x -> x < w.n", "x -> x <= w.n")
    assert [r["returning"] for r in rows(analyst, wrong)] != [0, 2, 1]
    wrong = example("concurrent-viewers", history).replace("sum(joins) - sum(leaves)", "sum(joins)")
    assert rows(analyst, wrong)[-1]["present_at_end"] != 0


def test_an_answer_names_columns_and_types_and_comes_as_csv(analyst: Api) -> None:
    response = sql(
        analyst, "SELECT toUInt8(1) AS one, 'a,b' AS text, [1, 2] AS list, toDecimal64(2.5, 2) AS d"
    )
    assert response.status_code == 200, response.text
    assert response.json()["columns"] == [
        {"name": "one", "type": "UInt8"},
        {"name": "text", "type": "String"},
        {"name": "list", "type": "Array(UInt8)"},
        {"name": "d", "type": "Decimal(18, 2)"},
    ]
    assert response.json()["rows"] == [[1, "a,b", [1, 2], "2.50"]]
    as_csv = sql(analyst, "SELECT number AS n, 'x' AS s FROM numbers(2)", format="csv")
    assert as_csv.headers["content-type"].startswith("text/csv")
    assert as_csv.text == "n,s\r\n0,x\r\n1,x\r\n"


WRITES = [
    "INSERT INTO events (event_id) VALUES ('sql-test-insert')",
    "CREATE TABLE sql_test_x (a UInt8) ENGINE = Memory",
    "ALTER TABLE events DELETE WHERE 1",
    "DROP TABLE events",
    "TRUNCATE TABLE events",
    "SYSTEM FLUSH LOGS",
    "ATTACH TABLE sql_test_y",
    "KILL QUERY WHERE 1",
    "USE system",
    "SELECT * FROM events INTO OUTFILE '{outfile}'",
    "SELECT * FROM file('/etc/passwd', 'LineAsString')",
    "SELECT * FROM url('http://127.0.0.1:9/x', 'CSV', 'a String')",
    "SELECT * FROM format(CSV, 'a String', 'x')",  # not in our list: ClickHouse's readonly refuses it
    "SELECT count() FROM events SETTINGS max_execution_time = 3600",  # readonly=1: no setting changes
]


@pytest.mark.parametrize("statement", WRITES)
def test_a_write_is_refused_and_nothing_changes(analyst: Api, statement: str, tmp_path: Path) -> None:
    outfile = tmp_path / "out.csv"
    response = sql(analyst, statement.format(outfile=outfile))
    problem(response, 403, "sql-readonly")
    assert response.headers["content-type"] == "application/problem+json"
    assert not outfile.exists()
    assert rows(analyst, "SELECT count() AS n FROM events WHERE event_id = 'sql-test-insert'") == [{"n": 0}]
    assert rows(analyst, "EXISTS TABLE sql_test_x") == [{"result": 0}]
    assert rows(analyst, "SELECT currentDatabase() AS db, getSetting('readonly') AS ro")[0]["db"] != "system"


@pytest.mark.parametrize(
    ("statement", "status", "kind"),
    [
        ("SELECT 1; SELECT 2", 400, "sql-statements"),
        ("SELECT 1; DROP TABLE events", 400, "sql-statements"),
        ("SELECT FROM WHERE", 400, "sql-syntax"),  # passes our check: ClickHouse's parser refuses it
        ("SELEC 1", 400, "sql-syntax"),
        ("SELECT 1 FORMAT JSON", 400, "sql-syntax"),
        ("SELECT * FROM no_such_table", 422, "sql-invalid"),
        ("SELECT no_such_column FROM events", 422, "sql-invalid"),
    ],
)
def test_a_statement_that_cannot_run_is_a_clear_4xx(
    analyst: Api, statement: str, status: int, kind: str
) -> None:
    problem(sql(analyst, statement), status, kind)


def test_settings_in_a_subquery_change_nothing(analyst: Api) -> None:
    """ClickHouse ignores a subquery's SETTINGS (measured): the request's readonly and limits hold."""
    query = (
        "SELECT * FROM (SELECT getSetting('readonly') AS ro, getSetting('max_execution_time') AS s "
        "SETTINGS readonly = 0, max_execution_time = 3600)"
    )
    response = sql(analyst, query, maxSeconds=2)
    assert response.status_code == 200, response.text
    assert response.json()["rows"] == [[1, 2]]


def test_a_slow_query_is_stopped_at_its_limit(analyst: Api) -> None:
    # 10^10 pairs: minutes of work (sleep() is capped at 3 s a block, so it proves nothing here)
    slow = "SELECT count() FROM numbers(100000) AS a, numbers(100000) AS b WHERE a.number + b.number = 7"
    response = sql(analyst, slow, maxSeconds=1)
    problem(response, 422, "sql-timeout")
    assert "1 s" in response.json()["detail"]


def test_a_huge_result_is_refused_not_cut(analyst: Api) -> None:
    problem(sql(analyst, "SELECT number FROM numbers(1000000)", maxRows=1000), 422, "sql-too-large")
    assert len(rows(analyst, "SELECT number FROM numbers(1000)")) == 1000  # at the default limit: fine


@pytest.mark.parametrize(
    "body",
    [
        {"sql": "SELECT 1", "maxSeconds": 1e-9},
        {"sql": "SELECT 1", "maxRows": 0},
        {"sql": "SELECT 1", "format": "xml"},
        {"sql": "SELECT {x:String}"},
        {"sql": "SELECT %s, %(x)s, '%'"},
        {"sql": "SELECT '\\"},
        {"sql": "SELECT toFloat64('nan') AS n, toInt128(-5) * 10000000000000000000000 AS big, now64(9) AS t"},
        {"sql": "SELECT map('a', [1]), tuple(1, 'x'), toIPv6('::1'), generateUUIDv4(), toDate32(0)"},
        {"sql": "é€😀"},
        {"sql": "SELECT 1", "extra": True},
    ],
)
def test_odd_bodies_get_an_answer_never_a_5xx(analyst: Api, body: dict[str, Any]) -> None:
    response = analyst.post("/v1/admin/sql", json=body, timeout=60)
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert response.headers["content-type"] == "application/problem+json"


def test_only_analysts_and_admins_may_ask(user: Callable[..., Api], analyst: Api) -> None:
    problem(sql(user(uid("viewer")), "SELECT 1"), 403, "forbidden")
    problem(sql(user(uid("mod"), roles=["moderation"]), "SELECT 1"), 403, "forbidden")
    assert sql(user(uid("admin"), roles=["admin"]), "SELECT 1").status_code == 200
    assert sql(analyst, "SELECT 1").status_code == 200


def test_the_cli_asks_the_api_and_says_what_to_do_with_chdb(stack: DevStack, analyst: Api) -> None:
    token = analyst.headers["Authorization"][7:]
    args = ["sql", "--api", stack.api_url, "--token", token]
    result = CliRunner().invoke(app, [*args, "--format", "json", "SELECT 2 AS two"])
    assert result.exit_code == 0, result.output
    assert orjson.loads(result.stdout)["rows"] == [[2]]
    table = CliRunner().invoke(app, [*args, "SELECT 'hello' AS greeting"])
    assert "greeting" in table.stdout and "hello" in table.stdout
    refused = CliRunner().invoke(app, [*args, "DROP TABLE events"])
    assert refused.exit_code == 1 and "sql-readonly" in refused.output
    chdb = f"chdb://{(stack.data_dir / 'clickhouse').resolve()}"
    held = subprocess.run(
        [sys.executable, "-m", "spaktok.cli", "sql", "--clickhouse", chdb, "SELECT 1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert held.returncode == 1
    assert "held by the API process" in held.stderr and "--api" in held.stderr


READONLY_PROBE = """
import json, sys
import clickhouse_connect
from spaktok.projections.clickhouse_sql import SqlLimits, refusal

dsn = "chdb://" + sys.argv[1]
setup = clickhouse_connect.get_client(dsn=dsn)
setup.command("CREATE TABLE t (a UInt32) ENGINE = MergeTree ORDER BY a")
outcome = {}
for statement in json.loads(sys.argv[2]):
    client = clickhouse_connect.get_client(dsn=dsn)  # a fresh handle: a SET must not carry over
    try:
        client.query(statement, settings=json.loads(sys.argv[3]))
        outcome[statement] = "ran"
    except Exception as exc:
        outcome[statement] = refusal(exc, SqlLimits()).kind
    client.close()
print(json.dumps(outcome))
"""


def measure_readonly(tmp_path: Path, statements: list[str], settings: dict[str, Any]) -> dict[str, str]:
    """Each statement sent straight to a chDB of its own with `settings`: no statement check."""
    store = tmp_path / f"chdb-{uid('probe')}"
    args = [str(store), orjson.dumps(statements).decode(), orjson.dumps(settings).decode()]
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(READONLY_PROBE), *args],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return dict(orjson.loads(done.stdout.strip().splitlines()[-1]))


def test_readonly_one_refuses_writes_by_itself_and_what_it_lets_through(tmp_path: Path) -> None:
    """What our check adds is measured here: readonly=1 alone refuses the writes, and lets INTO
    OUTFILE, KILL and USE through (our check refuses them, see the tests above)."""
    outfile = tmp_path / "written.csv"
    refused = [
        "INSERT INTO t VALUES (1)",
        "CREATE TABLE u (a UInt8) ENGINE = Memory",
        "ALTER TABLE t DELETE WHERE 1",
        "DROP TABLE t",
        "SYSTEM FLUSH LOGS",
        "ATTACH TABLE v",
        f"SELECT * FROM file('{tmp_path}/x.csv', 'CSV', 'a String')",
        "SELECT * FROM url('http://127.0.0.1:9/x', 'CSV', 'a String')",
        "SELECT 1 SETTINGS max_execution_time = 3600",
    ]
    into_outfile = f"SELECT 1 INTO OUTFILE '{outfile}'"
    outcome = measure_readonly(tmp_path, [*refused, into_outfile], SqlLimits().settings())
    assert outcome == {**dict.fromkeys(refused, "sql-readonly"), into_outfile: "ran"}
    assert outfile.exists()  # readonly=1 wrote the file: why INTO OUTFILE is refused by name
    # KILL and USE pass readonly=1. With all our limits they fail, but only by accident: for a statement
    # other than SELECT clickhouse-connect applies settings one `SET` at a time, readonly first
    admin = ["KILL QUERY WHERE 1", "USE system"]
    assert measure_readonly(tmp_path, admin, {"readonly": 1}) == dict.fromkeys(admin, "ran")
    # the measure can fail: without readonly the same writes run
    unguarded = measure_readonly(tmp_path, refused[:4], {})
    assert unguarded == dict.fromkeys(refused[:4], "ran")
