"""Coins, gifts, earnings and payouts over HTTP/WebSocket against the real stack."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness import Api, eventually, problem, uid
from sqlalchemy import Engine, text
from test_live_feed import Feed, wait_for_document, ws_url
from websockets.sync.client import connect

from spaktok.api.auth import mint_token
from spaktok.infra.devstack import DevStack
from spaktok.settings import Settings


def buy(admin: Api, user_id: str, coins: int, ref: str | None = None) -> dict[str, Any]:
    body = {"userId": user_id, "coins": coins, "paymentRef": ref or uid("pay")}
    response = admin.post("/v1/wallet/purchases", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


def balance(api: Api, expected: int) -> None:
    def check() -> None:
        assert api.get("/v1/wallet").json()["balance"] == expected

    eventually(check)


def test_purchases_are_for_admins_and_count_once_per_payment(user: Callable[..., Api]) -> None:
    fan_id = uid("fan")
    fan, admin = user(fan_id), user(uid("admin"), roles=["admin"])
    problem(
        fan.post("/v1/wallet/purchases", json={"userId": fan_id, "coins": 5, "paymentRef": "x"}),
        403,
        "forbidden",
    )
    first = buy(admin, fan_id, 500, ref=f"ref-{fan_id}")
    assert first["balance"] == 500
    again = buy(admin, fan_id, 500, ref=f"ref-{fan_id}")
    assert again == first  # the provider called back twice: the first answer again, one credit
    conflict = admin.post(
        "/v1/wallet/purchases", json={"userId": fan_id, "coins": 900, "paymentRef": f"ref-{fan_id}"}
    )
    problem(conflict, 409, "payment-ref-conflict")
    balance(fan, 500)
    problem(
        admin.post("/v1/wallet/purchases", json={"userId": fan_id, "coins": -5, "paymentRef": "y"}),
        422,
        "validation-error",
    )


def test_a_gift_moves_coins_from_sender_to_broadcaster_and_platform(
    stack: DevStack, user: Callable[..., Api], pg: Engine
) -> None:
    host_id, fan_id, whale_id = uid("host"), uid("fan"), uid("whale")
    host, admin = user(host_id, name="Hostess"), user(uid("admin"), roles=["admin"])
    fan, whale = user(fan_id, name="Fan"), user(whale_id, name="Whale")
    sid = host.post("/v1/streams", json={"title": "Gifts", "category": "music"}).json()["streamId"]
    wait_for_document(host, sid)
    buy(admin, fan_id, 100)
    buy(admin, whale_id, 40_000)
    assert fan.post(f"/v1/streams/{sid}/viewers").status_code == 200
    catalog = {g["giftId"]: g for g in fan.get("/v1/gifts").json()["gifts"]}
    assert catalog["rose"]["usdValue"] == "0.01" and catalog["lion"]["coinCost"] == 29999

    with connect(ws_url(stack, sid, mint_token(Settings(), uid("watcher"))), open_timeout=10) as conn:
        feed = Feed(conn)
        feed.until(lambda items: len(items) > 0)
        first = fan.post(f"/v1/streams/{sid}/gifts", json={"giftId": "doughnut", "count": 2})
        assert first.status_code == 200, first.text
        gift = first.json()
        assert (gift["coinCost"], gift["comboCount"], gift["realValueUSD"]) == (60, 2, "0.60")
        assert gift["giftAnimationUrl"] == catalog["doughnut"]["animationUrl"]
        combo = fan.post(f"/v1/streams/{sid}/gifts", json={"giftId": "doughnut"}).json()
        assert (combo["comboId"], combo["comboCount"], combo["isCombo"]) == (gift["comboId"], 3, True)
        lion = whale.post(f"/v1/streams/{sid}/gifts", json={"giftId": "lion"})
        assert lion.status_code == 200, lion.text
        problem(fan.post(f"/v1/streams/{sid}/gifts", json={"giftId": "lion"}), 409, "insufficient-coins")
        problem(fan.post(f"/v1/streams/{sid}/gifts", json={"giftId": "unicorn"}), 404, "gift-not-found")
        problem(
            fan.post(f"/v1/streams/{sid}/gifts", json={"giftId": "rose", "count": 100}),
            422,
            "validation-error",
        )

        items = feed.until(lambda items: len([i for i in items if i["type"] == "gift"]) == 3)
        gifts = [i for i in items if i["type"] == "gift"]
        assert [(g["giftId"], g["comboCount"]) for g in gifts] == [
            ("doughnut", 2),
            ("doughnut", 3),
            ("lion", 1),
        ]
        assert gifts[0]["giftAnimationUrl"] and gifts[0]["senderUsername"] == "Fan"
        board = feed.until(lambda items: any(whale_id in _totals(items) for _ in [0]))
        assert _totals(board) == {fan_id: 90, whale_id: 29999}

    balance(fan, 10)
    balance(whale, 40_000 - 29999)

    def stream_totals() -> dict[str, Any]:
        doc = host.get(f"/v1/streams/{sid}").json()
        assert (doc["gifts"], doc["giftRevenue"]) == (4, 30089)
        return doc

    eventually(stream_totals)
    board = host.get(f"/v1/streams/{sid}/leaderboard").json()
    assert [(g["userId"], g["coins"], g["rank"]) for g in board["topGifters"]] == [
        (whale_id, 29999, 1),
        (fan_id, 90, 2),
    ]
    assert board["topViewers"][0]["userId"] == fan_id and board["topViewers"][0]["giftsSent"] == 3

    # standard broadcaster: 50 % of each send, floor to the broadcaster: 30 + 15 + 14999
    def earned() -> dict[str, Any]:
        earnings = host.get("/v1/earnings").json()
        assert earnings["balanceCoins"] == 30 + 15 + 14999
        return dict(earnings)

    earnings = eventually(earned)
    assert earnings["balanceUsd"] == "150.44"
    assert [h["kind"] for h in earnings["history"]] == ["gift", "gift", "gift"]
    with pg.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT coin_cost, broadcaster_share, platform_share, revenue_rule, receiver_username "
                'FROM stream_gifts WHERE stream_id = :s ORDER BY "timestamp"'
            ),
            {"s": sid},
        ).all()
    assert [tuple(r) for r in rows] == [
        (60, 30, 30, "spec-6.1-v1", "Hostess"),
        (30, 15, 15, "spec-6.1-v1", "Hostess"),
        (29999, 14999, 15000, "spec-6.1-v1", "Hostess"),
    ]


def _totals(items: list[dict[str, Any]]) -> dict[str, int]:
    totals: dict[str, int] = {}
    for item in items:
        if item["type"] == "leaderboard":
            totals.update({g["userId"]: g["coins"] for g in item["gifters"]})
    return totals


def test_a_gift_the_stream_refuses_is_refunded(user: Callable[..., Api]) -> None:
    host_id, fan_id = uid("host"), uid("fan")
    host, fan, admin = user(host_id), user(fan_id), user(uid("admin"), roles=["admin"])
    sid = host.post(
        "/v1/streams", json={"title": "No gifts", "category": "talk", "allowGifts": False}
    ).json()["streamId"]
    buy(admin, fan_id, 50)
    problem(fan.post(f"/v1/streams/{sid}/gifts", json={"giftId": "perfume"}), 403, "gifts-disabled")
    balance(fan, 50)
    kinds = eventually(lambda: _kinds(fan, 3))
    assert kinds == ["refund", "gift", "purchase"]
    problem(host.post(f"/v1/streams/{sid}/gifts", json={"giftId": "rose"}), 409, "insufficient-coins")
    assert host.post(f"/v1/streams/{sid}/end").status_code == 200
    problem(fan.post(f"/v1/streams/{sid}/gifts", json={"giftId": "rose"}), 409, "stream-not-live")
    balance(fan, 50)


def _kinds(api: Api, n: int) -> list[str]:
    kinds = [t["kind"] for t in api.get("/v1/wallet/transactions").json()["transactions"]]
    assert len(kinds) == n, kinds
    return kinds


def test_payouts_reserve_complete_fail_and_never_overdraw(user: Callable[..., Api]) -> None:
    host_id, fan_id = uid("host"), uid("fan")
    host, fan = user(host_id), user(fan_id)
    admin = user(uid("admin"), roles=["admin"])
    sid = host.post("/v1/streams", json={"title": "Payday", "category": "talk"}).json()["streamId"]
    buy(admin, fan_id, 6000)
    for _ in range(2):  # 2 x 3,000 coins: 3,000 earned at 50 %
        sent = fan.post(f"/v1/streams/{sid}/gifts", json={"giftId": "galaxy", "count": 3})
        assert sent.status_code == 200, sent.text
    eventually(lambda: _earned(host, 3000))

    problem(
        host.post("/v1/payouts", json={"method": "paypal", "amountUsd": "9.99"}), 422, "payout-below-minimum"
    )
    problem(
        host.post("/v1/payouts", json={"method": "paypal", "amountUsd": "30.01"}),
        409,
        "insufficient-earnings",
    )
    problem(host.post("/v1/payouts", json={"method": "cash", "amountUsd": "10"}), 422, "validation-error")
    first = host.post("/v1/payouts", json={"method": "paypal", "amountUsd": "12.50"})
    assert first.status_code == 201, first.text
    assert (first.json()["coins"], first.json()["reservedCoins"], first.json()["balanceCoins"]) == (
        1250,
        1250,
        1750,
    )
    second = host.post("/v1/payouts", json={"method": "bank", "amountUsd": "17.50"}).json()
    problem(
        host.post("/v1/payouts", json={"method": "bank", "amountUsd": "10.00"}), 409, "insufficient-earnings"
    )

    def listed() -> list[dict[str, Any]]:
        rows = host.get("/v1/payouts").json()["payouts"]
        assert len(rows) == 2
        return list(rows)

    eventually(listed)
    problem(host.post(f"/v1/payouts/{first.json()['payoutId']}/complete", json={}), 403, "forbidden")
    done = admin.post(f"/v1/payouts/{first.json()['payoutId']}/complete", json={"providerRef": "PP-1"})
    assert done.status_code == 200, done.text
    failed = admin.post(f"/v1/payouts/{second['payoutId']}/fail", json={"reason": "IBAN rejected"})
    assert failed.status_code == 200, failed.text
    problem(admin.post(f"/v1/payouts/{second['payoutId']}/complete", json={}), 409, "payout-not-pending")
    problem(admin.post("/v1/payouts/po_nope/complete", json={}), 404, "payout-not-found")

    def settled() -> None:
        earnings = host.get("/v1/earnings").json()
        assert (earnings["balanceCoins"], earnings["reservedCoins"], earnings["paidOutCoins"]) == (
            1750,
            0,
            1250,
        )
        statuses = {p["payoutId"]: p["status"] for p in host.get("/v1/payouts").json()["payouts"]}
        assert statuses == {first.json()["payoutId"]: "completed", second["payoutId"]: "failed"}

    eventually(settled)


def _earned(api: Api, coins: int) -> None:
    assert api.get("/v1/earnings").json()["balanceCoins"] == coins


def ledger_check(stack: DevStack, *extra: str) -> subprocess.CompletedProcess[str]:
    argv = ["ledger", "check", "--broker", stack.broker, "--postgres-dsn", stack.postgres_dsn, *extra]
    return subprocess.run(
        [sys.executable, "-m", "spaktok.cli", *argv], capture_output=True, text=True, timeout=120, check=False
    )


def test_the_ledger_check_passes_and_catches_a_tampered_read_model(
    stack: DevStack, user: Callable[..., Api], pg: Engine
) -> None:
    host_id, fan_id = uid("host"), uid("fan")
    host, fan, admin = user(host_id), user(fan_id), user(uid("admin"), roles=["admin"])
    sid = host.post("/v1/streams", json={"title": "Audited", "category": "talk"}).json()["streamId"]
    buy(admin, fan_id, 100)
    assert fan.post(f"/v1/streams/{sid}/gifts", json={"giftId": "perfume", "count": 2}).status_code == 200
    balance(fan, 60)

    passed = ledger_check(stack, "--wait", "30")
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert "every coin accounted for" in passed.stdout

    with pg.begin() as conn:
        conn.execute(text("UPDATE wallets SET balance = balance + 5 WHERE user_id = :u"), {"u": fan_id})
    try:
        failed = ledger_check(stack)
        assert failed.returncode == 1, failed.stdout
        assert f"read model wallet {fan_id}" in failed.stdout
    finally:
        with pg.begin() as conn:
            conn.execute(text("UPDATE wallets SET balance = balance - 5 WHERE user_id = :u"), {"u": fan_id})


def test_one_intent_is_one_transaction_id_and_the_receipts_reconcile(
    stack: DevStack, user: Callable[..., Api], tmp_path: Path
) -> None:
    """Issue #16: the answer names the transaction (retry: the same id; another key: another id), the
    saga's rows carry it, and `ledger check --receipts` matches the client's receipts with the log."""
    host_id, fan_id = uid("host"), uid("fan")
    host, fan, admin = user(host_id), user(fan_id), user(uid("admin"), roles=["admin"])
    sid = host.post("/v1/streams", json={"title": "Receipts", "category": "talk"}).json()["streamId"]
    closed = (
        user(uid("host"))
        .post(  # one live stream per broadcaster: another host's
            "/v1/streams", json={"title": "Closed", "category": "talk", "allowGifts": False}
        )
        .json()["streamId"]
    )
    ref = uid("pay")
    bought = buy(admin, fan_id, 100, ref=ref)
    receipts = [_receipt(bought["transactionId"], "purchase", 100, "accepted", fan_id)]

    def send(stream: str, gift: str, key: str) -> Any:
        keyed = {"Idempotency-Key": key}
        return fan.post(f"/v1/streams/{stream}/gifts", json={"giftId": gift}, headers=keyed)

    first, retry, other = send(sid, "perfume", "k1"), send(sid, "perfume", "k1"), send(sid, "perfume", "k2")
    assert (first.status_code, retry.status_code, other.status_code) == (200, 200, 200), first.text
    tx = first.json()["transactionId"]
    assert tx.startswith("tx_") and tx == first.json()["giftTx"] == retry.json()["transactionId"]
    assert other.json()["transactionId"] not in (tx, None)
    refused = send(closed, "perfume", "k3")
    poor = send(sid, "lion", "k4")
    problem(refused, 403, "gifts-disabled")
    problem(poor, 409, "insufficient-coins")
    receipts += [
        _receipt(tx, "gift", 20, "accepted", fan_id),
        _receipt(tx, "gift", 20, "accepted", fan_id),  # the retry's answer, kept too
        _receipt(other.json()["transactionId"], "gift", 20, "accepted", fan_id),
        _receipt(refused.json()["transactionId"], "gift", 20, "rejected", fan_id),
        _receipt(poor.json()["transactionId"], "gift", 29999, "rejected", fan_id),
    ]
    balance(fan, 60)
    rows = eventually(lambda: _kinds(fan, 5))  # the purchase, 3 debits, the refusal's refund
    assert sorted(rows) == ["gift", "gift", "gift", "purchase", "refund"]
    txs = {t["giftTx"] for t in fan.get("/v1/wallet/transactions").json()["transactions"]}
    assert {tx, refused.json()["transactionId"]} <= txs

    kept = tmp_path / "receipts.jsonl"
    kept.write_text("".join(receipts))
    passed = ledger_check(stack, "--wait", "30", "--receipts", str(kept))
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert "accepted: matched" in passed.stdout
    lost = "tx_" + "0" * 24
    kept.write_text("".join([*receipts, _receipt(lost, "gift", 20, "accepted", fan_id)]))
    failed = ledger_check(stack, "--receipts", str(kept))
    assert failed.returncode == 1, failed.stdout
    assert f"accepted receipts missing from the log: 1 (gift {lost})" in failed.stdout


def _receipt(tx: str, kind: str, coins: int, status: str, user_id: str) -> str:
    fields = {"transactionId": tx, "kind": kind, "coins": coins, "status": status, "userId": user_id}
    return json.dumps(fields) + "\n"


def test_a_late_retry_gets_the_first_answer_after_the_stream_forgot_it(user: Callable[..., Api]) -> None:
    """A stream keeps the full answers of its newest 32 commands; a copy of an older gift (a late
    retry, a redelivery after a crash) it answers `noop` ("duplicate"). That noop must not replace
    the gift's answer: every later retry still says taken, with the first
    transaction, and the coins moved once. (A client in test_money_faults.py, retrying until it had
    an answer, looped forever on the "duplicate" answer the noop used to cause.)"""
    host_id, fan_id, crowd_id = uid("host"), uid("fan"), uid("crowd")
    host, fan, crowd = user(host_id), user(fan_id), user(crowd_id)
    admin = user(uid("admin"), roles=["admin"])
    sid = host.post("/v1/streams", json={"title": "Late retry", "category": "talk"}).json()["streamId"]
    wait_for_document(host, sid)
    buy(admin, fan_id, 100)
    buy(admin, crowd_id, 100)
    keyed = {"Idempotency-Key": "late-retry"}
    first = fan.post(f"/v1/streams/{sid}/gifts", json={"giftId": "rose"}, headers=keyed)
    assert first.status_code == 200, first.text
    for n in range(40):  # the stream decides more commands than it keeps answers for
        other = crowd.post(
            f"/v1/streams/{sid}/gifts", json={"giftId": "rose"}, headers={"Idempotency-Key": f"c{n}"}
        )
        assert other.status_code == 200, other.text
    answers = []
    for _ in range(6):  # each retry sends a copy, which the stream now answers `noop`
        retry = fan.post(f"/v1/streams/{sid}/gifts", json={"giftId": "rose"}, headers=keyed)
        answers.append((retry.status_code, retry.json().get("giftTx")))
        time.sleep(0.5)
    assert answers == [(200, first.json()["giftTx"])] * 6, answers
    balance(fan, 99)
