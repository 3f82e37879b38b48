"""A consumer outside Python (examples/node-consumer, kafkajs + Ajv): it reads the real stack's
`spaktok.events.streams`, every record keeps its published schema, and the gift revenue it sums per
stream equals the API's `giftRevenue`. Skipped only where `node` is not installed.

On a stack of its own: the session stack's log also holds the records other tests write into the
events topics on purpose (test_bad_input.py, test_poison.py), which no schema accepts."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from harness import Api, eventually, start_stack, uid
from test_live_feed import wait_for_document
from test_money import buy

from spaktok.api.auth import mint_token
from spaktok.events.examples import example_envelope
from spaktok.events.streams import GiftReceived
from spaktok.infra import asyncapi, topics
from spaktok.infra.devstack import DevStack
from spaktok.settings import Settings

pytestmark = pytest.mark.integration

CONSUMER = Path(__file__).resolve().parents[2] / "examples" / "node-consumer"
NODE = shutil.which("node")


@pytest.fixture(scope="module")
def own_stack() -> Iterator[DevStack]:
    stack, cleanup = start_stack("node")
    try:
        yield stack
    finally:
        cleanup()


def user_on(stack: DevStack) -> Callable[..., Api]:
    settings = Settings()
    return lambda user_id, **claims: Api(stack.api_url, mint_token(settings, user_id, **claims))


@pytest.fixture(scope="module")
def node() -> str:
    """The node binary, with the example's packages installed (`.ci/run` does; so does this)."""
    if NODE is None:
        pytest.skip(
            "node is not installed: the Node consumer example cannot run (apt-get install nodejs npm)"
        )
    installed = CONSUMER / "node_modules"
    if not all((installed / name).is_dir() for name in ("kafkajs", "ajv", "@asyncapi/parser")):
        npm = shutil.which("npm")
        assert npm, "node without npm: run `npm install --prefix examples/node-consumer` by hand"
        subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--prefix", str(CONSUMER)], check=True, timeout=300
        )
    return NODE


def run_consumer(node: str, *args: str, timeout: float = 180) -> tuple[int, dict[str, Any], str]:
    done = subprocess.run(
        [node, str(CONSUMER / "consumer.js"), *args], capture_output=True, text=True, timeout=timeout
    )
    summary = json.loads(done.stdout) if done.stdout.strip() else {}
    return done.returncode, summary, done.stderr


def test_the_node_consumer_validates_every_record_and_sums_the_apis_gift_revenue(
    own_stack: DevStack, node: str
) -> None:
    stack, user = own_stack, user_on(own_stack)
    admin = user(uid("admin"), roles=["admin"])
    fan_id, whale_id = uid("fan"), uid("whale")
    fan, whale = user(fan_id, name="Fan"), user(whale_id, name="Whale")
    buy(admin, fan_id, 500)
    buy(admin, whale_id, 40_000)
    sends = {  # per stream: who sends what (several senders, combos, counts)
        "first": [(fan, "doughnut", 2), (fan, "doughnut", 1), (whale, "lion", 1), (fan, "rose", 5)],
        "second": [(whale, "perfume", 3), (fan, "finger-heart", 1)],
    }
    streams: dict[str, str] = {}
    for name, gifts in sends.items():
        host = user(uid("host"), name=f"Host {name}")
        sid = host.post("/v1/streams", json={"title": f"Node {name}", "category": "music"}).json()["streamId"]
        wait_for_document(host, sid)
        streams[name] = sid
        for sender, gift_id, count in gifts:
            assert sender.post(f"/v1/streams/{sid}/viewers").status_code == 200
            answer = sender.post(f"/v1/streams/{sid}/gifts", json={"giftId": gift_id, "count": count})
            assert answer.status_code == 200, answer.text

    costs = {g["giftId"]: g["coinCost"] for g in fan.get("/v1/gifts").json()["gifts"]}
    sums = {streams[name]: sum(costs[g] * n for _, g, n in gifts) for name, gifts in sends.items()}
    assert sums[streams["first"]] == 2 * 30 + 30 + 29_999 + 5 * 1

    def api_revenue() -> dict[str, int]:
        figures = {sid: admin.get(f"/v1/streams/{sid}").json()["giftRevenue"] for sid in streams.values()}
        assert figures == sums  # every gift is in the read model
        return figures

    expected = eventually(api_revenue)
    code, summary, stderr = run_consumer(
        node, "--brokers", stack.broker, "--topic", topics.EVENTS_STREAMS.name
    )
    assert code == 0 and summary.get("complete"), f"exit {code}: {stderr[-2000:]} {summary.get('errors')}"
    assert summary["invalid"] == 0 and summary["errors"] == []
    assert summary["records"] == summary["envelopes"] > 0 and summary["bundles"] == 0  # events never bundle
    for sid, coins in expected.items():
        assert summary["revenue"][sid] == coins, sid
        assert summary["revenueRecorded"][sid] == coins  # the stream's own running total agrees
    assert summary["gifts"][streams["first"]] == 9 and summary["gifts"][streams["second"]] == 4


def test_the_node_consumer_counts_a_record_that_breaks_its_schema(node: str) -> None:
    """The validation can fail: the contracts module refuses a retyped field, an unknown version, a
    header that lies and a record that is not JSON (no broker needed: records fed directly)."""
    good = example_envelope(GiftReceived).model_dump(mode="json")
    cases = [
        good,
        {**good, "payload": {**good["payload"], "coin_cost": "60"}},
        {**good, "schema_version": 9},
        {**good, "type": "streams.GiftRefused"},
    ]
    script = f"""
    const {{ loadSchemas, newState, handleRecord }} = require({json.dumps(str(CONSUMER / "contracts.js"))});
    const state = newState(['t'], loadSchemas({json.dumps(str(CONSUMER.parents[1] / "schemas" / "events"))}));
    const cases = {json.dumps(cases)};
    cases.forEach((c, i) => handleRecord(state, {{ topic: 't', partition: 0, offset: i,
      key: Buffer.from(c.aggregate_id), value: Buffer.from(JSON.stringify(c)),
      headers: {{ 'event-type': Buffer.from('streams.GiftReceived') }} }}));
    handleRecord(state, {{ topic: 't', partition: 0, offset: 9, key: null,
      value: Buffer.from('{{nope'), headers: {{}} }});
    process.stdout.write(JSON.stringify(state.summary));
    """
    done = subprocess.run([node, "-e", script], capture_output=True, text=True, timeout=60, check=True)
    summary = json.loads(done.stdout)
    assert (summary["records"], summary["invalid"]) == (5, 4), summary["errors"]
    assert summary["revenue"] == {good["aggregate_id"]: 60}
    reasons = " ".join(summary["errors"])
    assert "coin_cost must be integer" in reasons and "no published schema streams.GiftReceived.v9" in reasons
    assert "streams.GiftRefused.v1.json" in reasons and "not JSON" in reasons


def test_the_asyncapi_document_is_valid_for_the_asyncapi_parser(node: str, tmp_path: Path) -> None:
    """schemas/asyncapi.json passes the AsyncAPI initiative's parser (@asyncapi/parser, the example's
    dev dependency); the check can fail: an operation with an action AsyncAPI 3 does not have."""
    checker = str(CONSUMER / "check-asyncapi.js")
    ok = subprocess.run(
        [node, checker, str(asyncapi.DOCUMENT_FILE)], capture_output=True, text=True, timeout=120
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "valid AsyncAPI document" in ok.stdout
    document = asyncapi.document()
    document["operations"]["consume-spaktok-events-streams"]["action"] = "listen"
    bad = tmp_path / "asyncapi.json"
    bad.write_text(json.dumps(document), "utf-8")
    refused = subprocess.run([node, checker, str(bad)], capture_output=True, text=True, timeout=120)
    assert refused.returncode == 1 and '"action" property must be equal to one of' in refused.stdout
