"""Property: a PK battle's result is exact whatever the interleaving, duplicates and crashes.

The real runners (wallet, stream, earnings, battle) on the in-memory log of test_money_properties:
commands per key in order, interleaved at random across keys, redelivered, and batches decided again
after a "crash" before their state was stored. A battle between two live streams is accepted at a
random moment, gifts go to both sides before, during and after it, and it ends at its time, early
by a broadcaster, or because a stream ends. Afterwards:

- each side's score equals what the streams' own logs say: the coins of every gift the stream took
  while linked to the battle and that was sent between its start and its close;
- the higher score wins, a tie has no winner, and only a winner gets the bonus, credited once;
- both streams are unlinked, and the whole log passes `spaktok ledger check`'s audit.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_money_properties import CATALOG, COMMAND_TOPICS, STREAMS_BY_HOST, USERS, World, _open, base

from spaktok.commands.battles import AcceptBattle, EndBattle, InviteBattle
from spaktok.commands.stream_state import millis
from spaktok.commands.streams import EndStream
from spaktok.commands.wallets import PurchaseCoins, SendGift
from spaktok.events.envelope import Envelope, derive_id
from spaktok.infra import topics
from spaktok.processors.battles import BATTLES
from spaktok.projections.ledger import audit

BATTLE_TOPICS = {**COMMAND_TOPICS, topics.COMMANDS_BATTLES.name: BATTLES}
BATTLE_ID = "pk-1"
BONUS = 100

steps = st.lists(
    st.one_of(
        st.tuples(
            st.just("gift"),
            st.sampled_from(USERS),
            st.sampled_from(sorted(STREAMS_BY_HOST.values())),
            st.sampled_from(("rose", "doughnut", "galaxy")),
        ),
        st.tuples(st.just("step"), st.integers(0, 1000), st.integers(1, 4), st.booleans()),
        st.tuples(st.just("dup"), st.integers(0, 1000)),
        st.tuples(st.just("wait"), st.integers(1, 8)),
    ),
    min_size=10,
    max_size=80,
)


def _gift(world: World, user: str, stream: str, gift: str) -> SendGift:
    return SendGift(
        **base(world, user, "gift"),
        user_id=user,
        stream_id=stream,
        sender_name=user,
        gift=CATALOG[gift],
        count=1,
        coin_value_usd="0.01",
        combo_window_ms=0,
    )


def _drain_roughly(world: World, rng: random.Random) -> None:
    """Deliver everything, crashing a third of the batches and redelivering now and then."""
    while world.pending():
        world.deliver(rng.randrange(1000), rng.randint(1, 4), crash=rng.random() < 0.3)
        if rng.random() < 0.25:
            world.redeliver(rng.randrange(1000))


def _expected_score(log: list[Envelope], stream: str, start: datetime, close: datetime) -> int:
    """From the stream's own events: gifts taken while linked to the battle, sent in the window."""
    events = {e.sequence: e for e in log if e.aggregate_type == "stream" and e.aggregate_id == stream}
    linked, score = False, 0
    for sequence in sorted(events):
        env = events[sequence]
        if env.type == "streams.BattleLinked" and env.payload["battle_id"] == BATTLE_ID:
            linked = True
        elif env.type == "streams.BattleUnlinked" and env.payload["battle_id"] == BATTLE_ID:
            linked = False
        elif env.type == "streams.GiftReceived" and linked:
            sent = millis(datetime.fromisoformat(env.payload["sent_at"]))
            if millis(start) <= sent < millis(close):
                score += env.payload["coin_cost"]
    return score


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.large_base_example, HealthCheck.data_too_large],
)
@given(
    steps,
    st.integers(0, 79),  # when the invitation is accepted (an index into the plan)
    st.integers(0, 79),  # when it is ended by other means than its time
    st.sampled_from(("time_up", "early", "stream_end")),
    st.integers(5, 40),  # duration (s)
    st.randoms(use_true_random=False),
)
def test_the_battle_result_is_exact(
    plan: list[tuple[Any, ...]], accept_at: int, end_at: int, ending: str, duration: int, rng: random.Random
) -> None:
    world = World(BATTLE_TOPICS)
    for host, stream in STREAMS_BY_HOST.items():
        world.client(_open(world, host, stream))
    for user in USERS:
        world.client(
            PurchaseCoins(
                command_id=derive_id("buy", user),
                issued_at=world.now(),
                actor_id="admin",
                user_id=user,
                coins=200_000,
                payment_ref=f"{user}-0",
            )
        )
    world.drain()
    world.client(
        InviteBattle(
            **base(world, "h1", "invite"),
            battle_id=BATTLE_ID,
            stream_id="s1",
            broadcaster_name="h1",
            opponent_stream_id="s2",
            opponent_broadcaster_id="h2",
            duration_s=duration,
            invite_ttl_s=10_000,
            winner_bonus=BONUS,
        )
    )
    end_at = max(end_at, accept_at + 1)
    for index, step in enumerate(plan):
        if index == accept_at:
            world.client(AcceptBattle(**base(world, "h2", "accept"), battle_id=BATTLE_ID))
        if index == end_at and ending == "early":
            world.client(EndBattle(**base(world, "h1", "end"), battle_id=BATTLE_ID))
        if index == end_at and ending == "stream_end":
            world.client(EndStream(**base(world, "h2", "end-stream"), stream_id="s2"))
        kind = step[0]
        if kind == "gift":
            world.client(_gift(world, *step[1:]))
        elif kind == "step":
            world.deliver(step[1], step[2], crash=step[3])
        elif kind == "dup":
            world.redeliver(step[1])
        elif kind == "wait":
            world.clock += step[1]
    if accept_at >= len(plan):
        world.client(AcceptBattle(**base(world, "h2", "accept"), battle_id=BATTLE_ID))
    _drain_roughly(world, rng)
    # the worker's timer, late: it closes the battle at its end time all the same
    world.clock += duration + 5
    world.client(EndBattle(**base(world, "system", "timer"), battle_id=BATTLE_ID, reason="time_up"))
    _drain_roughly(world, rng)

    log = world.envelopes()
    report = audit(log)
    assert report.problems == []
    assert report.settled
    battle = sorted((e for e in log if e.aggregate_type == "battle" and e.sequence), key=lambda e: e.sequence)
    result = battle[-1]
    for stream in STREAMS_BY_HOST.values():
        stored = world.tables[topics.COMMANDS_STREAMS.name].values[stream]
        assert b'"pk_battle_id":""' in stored  # unlinked
    if result.type == "battles.BattleCancelled":
        # a stream that ended while the two were still linking: the battle never started
        assert ending == "stream_end" and result.payload["reason"] in ("stream-ended", "stream-not-live")
        assert report.pk_bonuses == 0
        return
    assert result.type == "battles.BattleEnded", [e.type for e in battle]
    p = result.payload
    start, close = datetime.fromisoformat(p["started_at"]), datetime.fromisoformat(p["ended_at"])
    assert close - start <= timedelta(seconds=duration)
    assert p["score1"] == _expected_score(log, "s1", start, close)
    assert p["score2"] == _expected_score(log, "s2", start, close)
    if p["score1"] == p["score2"]:
        assert (p["is_tie"], p["winner_id"], report.pk_bonuses) == (True, None, 0)
    else:
        winner = "h1" if p["score1"] > p["score2"] else "h2"
        assert (p["is_tie"], p["winner_id"], p["winner_bonus"]) == (False, winner, BONUS)
        bonus_credits = [
            e
            for e in log
            if e.type == "earnings.EarningsCredited" and e.payload["source"] == "pk_bonus" and e.sequence
        ]
        assert {(e.aggregate_id, e.payload["coins"]) for e in bonus_credits} == {(winner, BONUS)}
        assert report.pk_bonuses == BONUS
    if ending == "stream_end" and end_at < len(plan):
        assert p["reason"] in ("stream_ended", "time_up")
