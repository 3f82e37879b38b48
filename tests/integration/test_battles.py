"""PK battles over HTTP/WebSocket against the real stack (the timer's end is in test_timers.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from harness import Api, eventually, problem, uid
from test_live_feed import Feed, wait_for_document, ws_url
from test_money import buy, ledger_check
from websockets.sync.client import connect

from spaktok.api.auth import mint_token
from spaktok.infra.devstack import DevStack
from spaktok.settings import Settings

BONUS = Settings().pk_winner_bonus_coins


def start(api: Api, title: str) -> str:
    response = api.post("/v1/streams", json={"title": title, "category": "games"})
    assert response.status_code == 201, response.text
    stream_id = str(response.json()["streamId"])
    wait_for_document(api, stream_id)
    return stream_id


def battle(api: Api, battle_id: str, **expected: Any) -> dict[str, Any]:
    """The battle document once it shows `expected`."""

    def check() -> dict[str, Any]:
        doc = api.get(f"/v1/pk-battles/{battle_id}").json()
        assert {k: doc.get(k) for k in expected} == expected, doc
        return dict(doc)

    return dict(eventually(check))


def gift(api: Api, stream_id: str, gift_id: str, count: int = 1) -> None:
    response = api.post(f"/v1/streams/{stream_id}/gifts", json={"giftId": gift_id, "count": count})
    assert response.status_code == 200, response.text


def test_a_battle_scores_both_audiences_gifts_names_the_winner_and_pays_the_bonus(
    stack: DevStack, user: Callable[..., Api]
) -> None:
    h1_id, h2_id, ann_id, bob_id = uid("h1"), uid("h2"), uid("ann"), uid("bob")
    h1, h2, ann, bob = user(h1_id), user(h2_id), user(ann_id), user(bob_id)
    admin = user(uid("admin"), roles=["admin"])
    s1, s2 = start(h1, "Red corner"), start(h2, "Blue corner")
    buy(admin, ann_id, 1000)
    buy(admin, bob_id, 1000)
    gift(ann, s1, "perfume")  # before the battle: does not count

    body = {"streamId": s1, "opponentStreamId": s2, "durationSeconds": 300}
    problem(ann.post("/v1/pk-battles", json=body), 403, "not-stream-owner")
    problem(h1.post("/v1/pk-battles", json={**body, "durationSeconds": 5}), 422, "invalid-duration")
    problem(h1.post("/v1/pk-battles", json={**body, "opponentStreamId": "nope"}), 404, "stream-not-found")
    invited = h1.post("/v1/pk-battles", json=body)
    assert invited.status_code == 201, invited.text
    battle_id = invited.json()["battleId"]
    assert invited.json()["broadcaster2Id"] == h2_id

    def told(api: Api, kind: str) -> None:
        kinds = [n["kind"] for n in api.get("/v1/notifications").json()["notifications"]]
        assert kind in kinds

    eventually(lambda: told(h2, "pk_invited"))
    problem(h1.post(f"/v1/pk-battles/{battle_id}/accept"), 403, "not-battle-opponent")

    with (
        connect(ws_url(stack, s1, mint_token(Settings(), uid("w1"))), open_timeout=10) as c1,
        connect(ws_url(stack, s2, mint_token(Settings(), uid("w2"))), open_timeout=10) as c2,
    ):
        feed1, feed2 = Feed(c1), Feed(c2)
        feed1.until(lambda items: len(items) > 0)
        feed2.until(lambda items: len(items) > 0)
        accepted = h2.post(f"/v1/pk-battles/{battle_id}/accept")
        assert accepted.status_code == 200 and accepted.json()["status"] == "linking", accepted.text
        started = battle(h1, battle_id, status="active")
        assert (started["stream1Id"], started["stream2Id"], started["duration"]) == (s1, s2, 300)
        eventually(lambda: _pk(h1, s1, battle_id, s2))
        eventually(lambda: _pk(h2, s2, battle_id, s1))
        problem(h1.post("/v1/pk-battles", json=body), 409, "stream-in-battle")

        gift(ann, s1, "doughnut")  # 30
        gift(ann, s1, "rose", count=3)  # 3
        gift(bob, s2, "hand-hearts")  # 100
        scored = battle(h1, battle_id, score1=33, score2=100)
        assert [g["coins"] for g in scored["gifts1"]] == [3, 30]  # newest first
        assert [(g["senderId"], g["coins"]) for g in scored["gifts2"]] == [(bob_id, 100)]
        assert h1.get(f"/v1/streams/{s1}").json()["pkScore"] == 33

        problem(ann.post(f"/v1/pk-battles/{battle_id}/end"), 403, "not-battle-broadcaster")
        assert h1.post(f"/v1/pk-battles/{battle_id}/end").status_code == 200
        result = battle(h1, battle_id, status="ended")
        assert (result["score1"], result["score2"], result["isTie"]) == (33, 100, False)
        assert (result["winnerId"], result["winnerStreamId"], result["winnerBonus"]) == (h2_id, s2, BONUS)
        assert result["endReason"] == "ended_early"

        for feed, stream in ((feed1, s1), (feed2, s2)):  # both audiences saw it all
            items = feed.until(lambda items: any(i["type"] == "pk_ended" for i in items))
            pk = [i for i in items if i["type"].startswith("pk_")]
            assert pk[0]["type"] == "pk_started" and pk[0]["battleId"] == battle_id, stream
            assert {"score1": 33, "score2": 100} in [
                {"score1": i["score1"], "score2": i["score2"]} for i in pk if i["type"] == "pk_score"
            ]
            assert pk[-1]["type"] == "pk_ended" and pk[-1]["winnerId"] == h2_id

    # the bonus went through the ledger: the winner earned their share of bob's gift plus the bonus
    eventually(lambda: _earned(h2, 50 + BONUS))
    eventually(lambda: _earned(h1, 10 + 15 + 1))  # shares of perfume (before), doughnut, 3 roses
    eventually(lambda: _pk(h1, s1, None, None))
    eventually(lambda: told(h1, "pk_ended"))
    checked = ledger_check(stack, "--wait", "30")
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_equal_scores_are_a_tie_without_a_bonus(user: Callable[..., Api]) -> None:
    h1_id, h2_id = uid("h1"), uid("h2")
    h1, h2 = user(h1_id), user(h2_id)
    s1, s2 = start(h1, "Left"), start(h2, "Right")
    battle_id = h2.post("/v1/pk-battles", json={"streamId": s2, "opponentStreamId": s1}).json()["battleId"]
    assert h1.post(f"/v1/pk-battles/{battle_id}/accept").status_code == 200
    battle(h1, battle_id, status="active", duration=Settings().pk_default_duration_s)
    assert h1.post(f"/v1/pk-battles/{battle_id}/end").status_code == 200
    result = battle(h1, battle_id, status="ended")
    assert (result["isTie"], result["winnerId"], result["winnerBonus"]) == (True, None, 0)
    eventually(lambda: _earned(h1, 0) and _earned(h2, 0))


def test_an_invitation_declined_or_to_an_ended_stream_never_starts(user: Callable[..., Api]) -> None:
    h1_id, h2_id, h3_id = uid("h1"), uid("h2"), uid("h3")
    h1, h2, h3 = user(h1_id), user(h2_id), user(h3_id)
    s1, s2, s3 = start(h1, "One"), start(h2, "Two"), start(h3, "Three")
    declined = h1.post("/v1/pk-battles", json={"streamId": s1, "opponentStreamId": s2}).json()["battleId"]
    assert h2.post(f"/v1/pk-battles/{declined}/decline").json()["status"] == "declined"
    problem(h2.post(f"/v1/pk-battles/{declined}/accept"), 409, "battle-not-pending")
    battle(h1, declined, status="declined")

    # invited while live; the opponent's stream ends before the acceptance: the streams decide
    doomed = h1.post("/v1/pk-battles", json={"streamId": s1, "opponentStreamId": s3}).json()["battleId"]
    assert h3.post(f"/v1/streams/{s3}/end").status_code == 200
    assert h3.post(f"/v1/pk-battles/{doomed}/accept").status_code == 200
    cancelled = battle(h1, doomed, status="cancelled")
    assert cancelled["cancelReason"] == "stream-not-live"
    eventually(lambda: _pk(h1, s1, None, None))  # the side that had linked is free again


def _pk(api: Api, stream_id: str, battle_id: str | None, opponent: str | None) -> None:
    doc = api.get(f"/v1/streams/{stream_id}").json()
    assert (doc["pkBattleId"], doc["pkOpponentId"]) == (battle_id, opponent), doc


def _earned(api: Api, coins: int) -> bool:
    assert api.get("/v1/earnings").json()["balanceCoins"] == coins
    return True
