"""PK battles in given/when/then form (issue #5): the battle aggregate, and the streams' side of it."""

from __future__ import annotations

from gwt import Aggregate, at
from test_stream_decider import HOST, STREAM_ID, ended, started

from spaktok.commands import battle_decide
from spaktok.commands.battle_decide import BattleState
from spaktok.commands.battles import (
    AcceptBattle,
    BattleGift,
    CloseBattleSide,
    DeclineBattle,
    EndBattle,
    ExpireBattle,
    InviteBattle,
    RecordBattleLink,
    ScoreBattle,
)
from spaktok.commands.stream_decide import decide as stream_decide
from spaktok.commands.stream_state import StreamState
from spaktok.commands.stream_state import evolve as stream_evolve
from spaktok.commands.stream_state import thaw as stream_thaw
from spaktok.commands.streams import EndStream, LinkBattle, UnlinkBattle
from spaktok.events.battles import (
    BattleAccepted,
    BattleCancelled,
    BattleClosing,
    BattleDeclined,
    BattleEnded,
    BattleExpired,
    BattleInvited,
    BattleNotified,
    BattleScored,
    BattleSideClosed,
    BattleSideLinked,
    BattleStarted,
)
from spaktok.events.envelope import derive_id
from spaktok.events.streams import BattleLinked, BattleLinkRefused, BattleUnlinked, StreamEnded

BATTLE = Aggregate(BattleState, battle_decide.decide, battle_decide.evolve, battle_decide.thaw)
STREAM = Aggregate(StreamState, stream_decide, stream_evolve, stream_thaw)

ID = "pk-1"
S1, S2 = "s-1", "s-2"
B1, B2 = "host", "rival"
DURATION = 60  # the battle runs from the acceptance at 10 s to 70 s


def invite(seconds: float = 0, by: str = B1, opponent: str = B2, opponent_stream: str = S2) -> InviteBattle:
    return InviteBattle(
        command_id=f"invite-{seconds}",
        issued_at=at(seconds),
        actor_id=by,
        battle_id=ID,
        stream_id=S1,
        broadcaster_name="Hostess",
        opponent_stream_id=opponent_stream,
        opponent_broadcaster_id=opponent,
        duration_s=DURATION,
        invite_ttl_s=30,
        winner_bonus=100,
    )


def invited() -> BattleInvited:
    return BattleInvited(
        battle_id=ID,
        stream1_id=S1,
        broadcaster1_id=B1,
        broadcaster1_name="Hostess",
        stream2_id=S2,
        broadcaster2_id=B2,
        duration=DURATION,
        winner_bonus=100,
        invited_at=at(0),
        expires_at=at(30),
    )


def notice(kind: str, channel: str, stream: str, to: list[str], seconds: float, name: str) -> BattleNotified:
    return BattleNotified(
        notification_id=derive_id("battle", ID, kind),
        kind=kind,
        channel_id=channel,
        stream_id=stream,
        title="PK battle",
        actor_name=name,
        recipients=to,
        sent_at=at(seconds),
    )


def accept(seconds: float = 10, by: str = B2) -> AcceptBattle:
    return AcceptBattle(command_id=f"accept-{seconds}-{by}", issued_at=at(seconds), actor_id=by, battle_id=ID)


def link(stream: str, linked: bool = True, reason: str = "") -> RecordBattleLink:
    return RecordBattleLink(
        command_id=f"link-{stream}",
        issued_at=at(10),
        actor_id=B2,
        battle_id=ID,
        stream_id=stream,
        linked=linked,
        reason=reason,
    )


def gift(seq: int, coins: int, seconds: float, tx: str | None = None) -> BattleGift:
    return BattleGift(
        stream_sequence=seq, gift_tx=tx or f"tx-{seq}", sender_id="fan", coins=coins, sent_at=at(seconds)
    )


def score(stream: str, *gifts: BattleGift) -> ScoreBattle:
    return ScoreBattle(
        command_id=f"score-{stream}-{gifts[0].stream_sequence}",
        issued_at=gifts[0].sent_at,
        actor_id="fan",
        battle_id=ID,
        stream_id=stream,
        gifts=list(gifts),
    )


def scored(stream: str, seq: int, coins: int, seconds: float, score1: int, score2: int) -> BattleScored:
    return BattleScored(
        stream1_id=S1,
        stream2_id=S2,
        stream_id=stream,
        side=1 if stream == S1 else 2,
        stream_sequence=seq,
        gift_tx=f"tx-{seq}",
        sender_id="fan",
        coins=coins,
        score1=score1,
        score2=score2,
        sent_at=at(seconds),
    )


def end(seconds: float, by: str = B1, reason: str = "ended_early") -> EndBattle:
    return EndBattle(
        command_id=f"end-{seconds}-{by}", issued_at=at(seconds), actor_id=by, battle_id=ID, reason=reason
    )


def close(stream: str, seconds: float, stream_ended: bool = False) -> CloseBattleSide:
    return CloseBattleSide(
        command_id=f"close-{stream}",
        issued_at=at(seconds),
        actor_id=B1,
        battle_id=ID,
        stream_id=stream,
        stream_ended=stream_ended,
    )


RUNNING = (
    invited(),
    BattleAccepted(accepted_at=at(10)),
    BattleSideLinked(stream_id=S1, linked=True),
    BattleSideLinked(stream_id=S2, linked=True),
    BattleStarted(stream1_id=S1, stream2_id=S2, started_at=at(10), ends_at=at(70)),
)


def closing(seconds: float, reason: str = "ended_early", by: str = B1) -> BattleClosing:
    return BattleClosing(reason=reason, by=by, closed_at=at(seconds))


# --- invitation ----------------------------------------------------------------------------------


def test_an_invitation_names_both_sides_expires_and_tells_the_opponent() -> None:
    BATTLE.given().when(invite()).then(invited(), notice("pk_invited", B1, S1, [B2], 0, "Hostess"))


def test_a_broadcaster_cannot_battle_their_own_stream_or_themself() -> None:
    BATTLE.given().when(invite(opponent_stream=S1)).then_rejected("cannot-battle-self")
    BATTLE.given().when(invite(opponent=B1)).then_rejected("cannot-battle-self")


def test_a_battle_id_is_used_once() -> None:
    BATTLE.given(invited()).when(invite(5)).then_rejected("battle-exists")


def test_only_the_invited_broadcaster_accepts_and_only_in_time() -> None:
    BATTLE.given(invited()).when(accept(10)).then(BattleAccepted(accepted_at=at(10)))
    BATTLE.given(invited()).when(accept(10, by=B1)).then_rejected("not-battle-opponent")
    BATTLE.given(invited()).when(accept(30)).then_rejected("battle-invite-expired")
    BATTLE.given().when(accept()).then_rejected("battle-not-found")
    BATTLE.given(invited(), BattleDeclined(by=B2, declined_at=at(5))).when(accept()).then_rejected(
        "battle-not-pending"
    )


def test_declining_tells_the_inviter() -> None:
    decline = DeclineBattle(command_id="d", issued_at=at(5), actor_id=B2, battle_id=ID)
    BATTLE.given(invited()).when(decline).then(
        BattleDeclined(by=B2, declined_at=at(5)), notice("pk_declined", B2, S2, [B1], 5, "")
    )


def test_an_unanswered_invitation_expires_at_its_time_not_before() -> None:
    def expire(seconds: float) -> ExpireBattle:
        return ExpireBattle(command_id=f"x{seconds}", issued_at=at(seconds), actor_id="system", battle_id=ID)

    BATTLE.given(invited()).when(expire(29.9)).then()
    BATTLE.given(invited()).when(expire(30)).then(BattleExpired(expired_at=at(30)))
    BATTLE.given(invited(), BattleAccepted(accepted_at=at(10))).when(expire(40)).then()


def test_the_inviter_withdraws_and_the_invited_declines_by_ending() -> None:
    BATTLE.given(invited()).when(end(5)).then(BattleCancelled(reason="withdrawn", cancelled_at=at(5)))
    BATTLE.given(invited()).when(end(5, by=B2)).then(
        BattleDeclined(by=B2, declined_at=at(5)), notice("pk_declined", B2, S2, [B1], 5, "")
    )
    BATTLE.given(invited()).when(end(5, by="stranger")).then_rejected("not-battle-broadcaster")


# --- linking: both streams must be live and free ---------------------------------------------------


def test_the_battle_starts_when_both_streams_linked_and_runs_from_the_acceptance() -> None:
    accepted = (invited(), BattleAccepted(accepted_at=at(10)))
    BATTLE.given(*accepted).when(link(S2)).then(BattleSideLinked(stream_id=S2, linked=True))
    BATTLE.given(*accepted, BattleSideLinked(stream_id=S2, linked=True)).when(link(S1)).then(
        BattleSideLinked(stream_id=S1, linked=True),
        BattleStarted(stream1_id=S1, stream2_id=S2, started_at=at(10), ends_at=at(70)),
    )
    BATTLE.given(*RUNNING).when(link(S1)).then()  # a redelivered answer


def test_a_stream_that_cannot_link_cancels_the_battle() -> None:
    accepted = (invited(), BattleAccepted(accepted_at=at(10)), BattleSideLinked(stream_id=S1, linked=True))
    state = BATTLE.given(*accepted).when(link(S2, False, "stream-in-battle")).then_state()
    assert state.status == "cancelled"
    assert state.links == {S1: "linked", S2: "refused:stream-in-battle"}  # S1 is then unlinked
    BATTLE.given(*accepted).when(link(S2, False, "stream-in-battle")).then(
        BattleSideLinked(stream_id=S2, linked=False, reason="stream-in-battle"),
        BattleCancelled(reason="stream-in-battle", cancelled_at=at(10)),
    )


def test_a_stream_ending_while_linking_cancels_the_battle() -> None:
    accepted = (invited(), BattleAccepted(accepted_at=at(10)), BattleSideLinked(stream_id=S1, linked=True))
    state = BATTLE.given(*accepted).when(close(S1, 11, stream_ended=True)).then_state()
    assert state.status == "linking"  # still waiting for the other answer
    linked_then_closed = (*accepted, BattleSideClosed(stream_id=S1))
    BATTLE.given(*linked_then_closed).when(link(S2)).then(
        BattleSideLinked(stream_id=S2, linked=True),
        BattleCancelled(reason="stream-ended", cancelled_at=at(10)),
    )


def test_ending_is_refused_while_the_streams_link() -> None:
    BATTLE.given(invited(), BattleAccepted(accepted_at=at(10))).when(end(11)).then_rejected("battle-starting")


# --- scoring: gifts sent during the battle, to the side that took them, once -----------------------


def test_gift_coins_go_to_the_side_of_the_stream_that_took_them() -> None:
    BATTLE.given(*RUNNING).when(score(S1, gift(5, 30, 20), gift(7, 5, 21))).then(
        scored(S1, 5, 30, 20, 30, 0), scored(S1, 7, 5, 21, 35, 0)
    )
    BATTLE.given(*RUNNING, scored(S1, 5, 30, 20, 30, 0)).when(score(S2, gift(3, 99, 22))).then(
        scored(S2, 3, 99, 22, 30, 99)
    )


def test_a_gift_scores_once_whatever_the_redeliveries() -> None:
    BATTLE.given(*RUNNING, scored(S1, 5, 30, 20, 30, 0)).when(
        score(S1, gift(5, 30, 20), gift(6, 1, 21))
    ).then(scored(S1, 6, 1, 21, 31, 0))


def test_only_gifts_sent_during_the_battle_count() -> None:
    BATTLE.given(*RUNNING).when(score(S1, gift(2, 10, 9.999), gift(3, 10, 70), gift(4, 10, 69.999))).then(
        scored(S1, 4, 10, 69.999, 10, 0)
    )


def test_gifts_forwarded_while_the_streams_link_count_from_the_acceptance() -> None:
    linking = (invited(), BattleAccepted(accepted_at=at(10)), BattleSideLinked(stream_id=S1, linked=True))
    BATTLE.given(*linking).when(score(S1, gift(4, 10, 10.5))).then(scored(S1, 4, 10, 10.5, 10, 0))


def test_no_gift_counts_after_the_result() -> None:
    closed_one = (*RUNNING, closing(30), BattleSideClosed(stream_id=S1))
    result = BATTLE.given(*closed_one).when(close(S2, 31)).events()
    assert isinstance(result[1], BattleEnded)
    BATTLE.given(*closed_one, *result).when(score(S2, gift(9, 10, 25))).then()


# --- the end: timer, early, or a stream ending; the result once both sides closed ------------------


def test_either_broadcaster_ends_it_early_anyone_else_is_refused() -> None:
    BATTLE.given(*RUNNING).when(end(30)).then(closing(30))
    BATTLE.given(*RUNNING).when(end(30, by=B2)).then(closing(30, by=B2))
    BATTLE.given(*RUNNING).when(end(30, by="fan")).then_rejected("not-battle-broadcaster")
    BATTLE.given(*RUNNING, closing(30)).when(end(31)).then()  # over already


def test_an_early_end_never_closes_before_a_gift_already_counted() -> None:
    # the end was stamped at 30 s, but a gift stamped 31 s (another API process's clock) came first
    BATTLE.given(*RUNNING, scored(S1, 5, 30, 31, 30, 0)).when(end(30)).then(closing(31.001))
    BATTLE.given(*RUNNING, scored(S1, 5, 30, 31, 30, 0)).when(close(S2, 30, stream_ended=True)).then(
        closing(31.001, reason="stream_ended", by=B2), BattleSideClosed(stream_id=S2)
    )


def test_the_timer_closes_the_battle_at_its_end_time_however_late_it_ticks() -> None:
    BATTLE.given(*RUNNING).when(end(69, by="system", reason="time_up")).then()
    BATTLE.given(*RUNNING).when(end(73.5, by="system", reason="time_up")).then(
        closing(70, reason="time_up", by="system")
    )
    # a broadcaster ending it after its time ends it at its time too
    BATTLE.given(*RUNNING).when(end(75)).then(closing(70, reason="time_up", by="system"))


def test_gifts_sent_before_the_close_still_count_while_the_streams_unlink() -> None:
    BATTLE.given(*RUNNING, closing(30)).when(score(S2, gift(8, 50, 29.5), gift(9, 50, 30))).then(
        scored(S2, 8, 50, 29.5, 0, 50)
    )


def test_the_higher_score_wins_and_gets_the_bonus_once_both_sides_closed() -> None:
    played = (*RUNNING, scored(S1, 5, 30, 20, 30, 0), scored(S2, 3, 99, 22, 30, 99), closing(40))
    BATTLE.given(*played).when(close(S1, 40)).then(BattleSideClosed(stream_id=S1))
    BATTLE.given(*played, BattleSideClosed(stream_id=S1)).when(close(S2, 40)).then(
        BattleSideClosed(stream_id=S2),
        BattleEnded(
            stream1_id=S1,
            stream2_id=S2,
            reason="ended_early",
            score1=30,
            score2=99,
            winner_id=B2,
            winner_stream_id=S2,
            is_tie=False,
            winner_bonus=100,
            started_at=at(10),
            ended_at=at(40),
        ),
        notice("pk_ended", B1, S1, [B1, B2], 40, "Hostess"),
    )
    BATTLE.given(*played, BattleSideClosed(stream_id=S1)).when(close(S1, 41)).then()  # redelivered


def test_equal_scores_are_a_tie_without_bonus() -> None:
    played = (
        *RUNNING,
        scored(S1, 5, 30, 20, 30, 0),
        scored(S2, 3, 30, 22, 30, 30),
        closing(70, "time_up", "system"),
    )
    events = BATTLE.given(*played, BattleSideClosed(stream_id=S2)).when(close(S1, 71)).events()
    result = events[1]
    assert isinstance(result, BattleEnded)
    assert (result.is_tie, result.winner_id, result.winner_bonus, result.reason) == (True, None, 0, "time_up")


def test_a_stream_ending_closes_the_battle_at_that_moment() -> None:
    BATTLE.given(*RUNNING).when(close(S2, 50, stream_ended=True)).then(
        closing(50, reason="stream_ended", by=B2), BattleSideClosed(stream_id=S2)
    )


# --- the streams' side ---------------------------------------------------------------------------


def link_stream(battle: str = ID, owner: str = HOST, seconds: float = 10) -> LinkBattle:
    return LinkBattle(
        command_id=f"link-{battle}",
        issued_at=at(seconds),
        actor_id=B2,
        stream_id=STREAM_ID,
        battle_id=battle,
        broadcaster_id=owner,
        side=1,
        opponent_stream_id=S2,
        opponent_user_id=B2,
    )


def linked(battle: str = ID) -> BattleLinked:
    return BattleLinked(
        battle_id=battle, side=1, opponent_stream_id=S2, opponent_user_id=B2, linked_at=at(10)
    )


def test_a_live_free_stream_of_its_broadcaster_links() -> None:
    state = STREAM.given(started()).when(link_stream()).then_state()
    assert (state.pk_battle_id, state.pk_opponent_stream_id, state.pk_side) == (ID, S2, 1)
    STREAM.given(started(), linked()).when(link_stream()).then()  # linked already


def test_a_stream_refuses_to_link_when_in_another_battle_ended_or_not_its_broadcasters() -> None:
    def refused(reason: str) -> BattleLinkRefused:
        return BattleLinkRefused(battle_id=ID, reason=reason, refused_at=at(10))

    STREAM.given(started(), linked("pk-other")).when(link_stream()).then(refused("stream-in-battle"))
    STREAM.given(started(), ended(5)).when(link_stream()).then(refused("stream-not-live"))
    STREAM.given(started()).when(link_stream(owner="someone")).then(refused("not-stream-owner"))
    STREAM.given().when(link_stream()).then()  # no such stream: nothing to record (it answers all the same)


def test_unlinking_leaves_the_battle_only_that_battle() -> None:
    unlink = UnlinkBattle(command_id="u", issued_at=at(40), actor_id=B1, stream_id=STREAM_ID, battle_id=ID)
    STREAM.given(started(), linked()).when(unlink).then(
        BattleUnlinked(battle_id=ID, reason="battle_over", unlinked_at=at(40))
    )
    STREAM.given(started(), linked("pk-other")).when(unlink).then()
    state = STREAM.given(started(), linked()).when(unlink).then_state()
    assert state.pk_battle_id == ""


def test_a_stream_that_ends_leaves_its_battle_first() -> None:
    stop = EndStream(command_id="e", issued_at=at(50), actor_id=HOST, stream_id=STREAM_ID)
    events = STREAM.given(started(), linked()).when(stop).events()
    assert events[0] == BattleUnlinked(battle_id=ID, reason="stream_ended", unlinked_at=at(50))
    assert isinstance(events[1], StreamEnded)


def test_a_late_copy_of_a_link_after_the_stream_left_the_battle_does_not_link_it_again() -> None:
    """With a small command memory a redelivered LinkBattle can come after the UnlinkBattle; the
    stream remembers the battles it left (tests/unit/test_battle_saga.py found it relinking)."""
    from gwt import at
    from test_stream_decider import open_stream

    from spaktok.commands.stream_decide import decide
    from spaktok.commands.stream_state import StreamState, evolve, thaw
    from spaktok.commands.streams import LinkBattle, UnlinkBattle

    state = thaw(StreamState())
    for event in decide(open_stream(), state):
        state = evolve(state, event)
    link = LinkBattle(
        command_id="link-1",
        issued_at=at(2),
        actor_id="host",
        stream_id="s-1",
        battle_id="pk-1",
        broadcaster_id="host",
        side=1,
        opponent_stream_id="s-2",
        opponent_user_id="h2",
    )
    for command in (
        link,
        UnlinkBattle(
            command_id="unlink-1", issued_at=at(3), actor_id="host", stream_id="s-1", battle_id="pk-1"
        ),
    ):
        for event in decide(command, state):
            state = evolve(state, event)
    assert state.pk_battle_id == "" and state.pk_left == ("pk-1",)
    assert decide(link, state) == []
