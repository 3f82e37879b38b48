"""A seeded random history of streams, decided by the real stream decider, with its own bookkeeping.

`StreamSim` issues commands (joins, leaves, heartbeats, likes, comments, gifts, sweeps, snapshots,
moderation, the end) through `decide`/`evolve`, seals the events as the worker does, and keeps what
*should* come out of the analytics in plain Python, from the actions it took, never from the events.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from spaktok.commands.audiences import shard_of
from spaktok.commands.base import Command
from spaktok.commands.gifts import CatalogGift
from spaktok.commands.stream_decide import decide
from spaktok.commands.stream_state import StreamState, evolve, thaw
from spaktok.commands.streams import (
    BanUser,
    DeleteComment,
    DeliverGift,
    EndStream,
    JoinStream,
    LeaveStream,
    OpenStream,
    RecordAnalyticsSnapshot,
    RecordHeartbeats,
    RecordLikes,
    SendComment,
    SweepViewers,
    TimeoutUser,
    UnbanUser,
)
from spaktok.events.audiences import FollowerAdded, FollowerRemoved
from spaktok.events.base import Event
from spaktok.events.envelope import Envelope, seal
from spaktok.infra import topics
from spaktok.projections.clickhouse import ClickHouse, ClickHouseEventsProjector
from spaktok.projections.runner import Record

CATALOG = [
    CatalogGift(gift_id="rose", name="Rose", image_url="i", animation_url="a", coin_cost=1, comboable=True),
    CatalogGift(gift_id="heart", name="Heart", image_url="i", animation_url="a", coin_cost=5, comboable=True),
    CatalogGift(gift_id="lion", name="Lion", image_url="i", animation_url="a", coin_cost=299),
    CatalogGift(gift_id="rocket", name="Rocket", image_url="i", animation_url="a", coin_cost=1001),
]
COUNTRIES = ["FR", "US", "BR", "JP", None]
SILENT_MS = 120_000
START = datetime(2026, 3, 31, 23, 40, tzinfo=UTC)  # crosses a month: two partitions of `events`


def age_label(age: int | None) -> str:
    """The bucket table written out again, independently of the code under test."""
    if age is None:
        return "unknown"
    buckets = ((65, "65+"), (55, "55-64"), (45, "45-54"), (35, "35-44"), (25, "25-34"), (18, "18-24"))
    for lowest, label in buckets:
        if age >= lowest:
            return label
    return "under-18"


def minute_of(ms: int) -> datetime:
    at = datetime.fromtimestamp(ms / 1000, UTC)
    return at.replace(second=0, microsecond=0)


@dataclass
class Minute:
    peak: int = 0
    joins: int = 0
    leaves: int = 0
    likes: int = 0
    comments: int = 0
    gifts: int = 0
    revenue: int = 0
    broadcaster: int = 0
    platform: int = 0


@dataclass
class Positions:
    """Kafka offsets per (topic, partition), as the broker would hand them out."""

    next_offset: dict[tuple[str, int], int] = field(default_factory=lambda: defaultdict(int))

    def record(self, topic: str, key: str, env: Envelope) -> Record:
        partition = sum(key.encode()) % 4
        offset = self.next_offset[(topic, partition)]
        self.next_offset[(topic, partition)] += 1
        return Record(topic, partition, offset, env)


class StreamSim:
    def __init__(self, stream_id: str, host: str, start_ms: int, rng: random.Random, positions: Positions):
        self.stream_id, self.host, self.rng, self.positions = stream_id, host, rng, positions
        self.state = StreamState()
        self.records: list[Record] = []
        self.now_ms = start_ms
        self.start_ms = start_ms
        self.end_ms: int | None = None
        self.n = 0
        # the truth, from the actions taken
        self.current: dict[str, list[int]] = {}  # user -> [joined ms, last seen ms]
        self.completed: dict[str, int] = defaultdict(int)
        self.visits = 0
        self.latest_demo: dict[str, tuple[str, str]] = {}
        self.minutes: dict[datetime, Minute] = defaultdict(Minute)
        self.peak = 0
        self.likes_by_user: dict[str, int] = defaultdict(int)
        self.commenters: set[str] = set()
        self.comments = 0
        self.comment_ids: list[str] = []
        self.last_comment: dict[str, int] = {}
        self.gifts: list[dict[str, Any]] = []  # one per send
        self.wallet_seq: dict[str, int] = defaultdict(int)
        self.snapshots: list[dict[str, Any]] = []
        self.moderation: list[dict[str, Any]] = []  # type, user, by, at ms
        self.banned: set[str] = set()

    # --- plumbing -------------------------------------------------------------------------------
    def at(self) -> datetime:
        return datetime.fromtimestamp(self.now_ms / 1000, UTC)

    def base(self, actor: str) -> dict[str, Any]:
        self.n += 1
        return {
            "command_id": f"{self.stream_id}-cmd-{self.n}",
            "issued_at": self.at(),
            "actor_id": actor,
            "stream_id": self.stream_id,
        }

    def run(self, command: Command) -> list[Event]:
        decided = decide(command, self.state)
        state = thaw(self.state)
        for index, event in enumerate(decided):
            if event.notice:
                env = seal(
                    event,
                    aggregate_id=self.stream_id,
                    sequence=0,
                    command_id=command.command_id,
                    index=f"notice-{index}",
                    correlation_id=command.command_id,
                    actor_id=command.actor_id,
                    occurred_at=command.issued_at,
                )
                self.records.append(self.positions.record(topics.NOTIFICATIONS.name, self.stream_id, env))
                continue
            state = evolve(state, event)
            env = seal(
                event,
                aggregate_id=self.stream_id,
                sequence=state.version,
                command_id=command.command_id,
                index=index,
                correlation_id=command.command_id,
                actor_id=command.actor_id,
                occurred_at=command.issued_at,
            )
            self.records.append(self.positions.record(topics.EVENTS_STREAMS.name, self.stream_id, env))
            self.touch()  # every stored stream event makes its minute appear in the timeline
        self.state = state
        return decided

    def touch(self, viewers: int | None = None) -> None:
        minute = self.minutes[minute_of(self.now_ms)]
        if viewers is not None:
            minute.peak = max(minute.peak, viewers)
            self.peak = max(self.peak, viewers)

    def expect(self, events: list[Event], *types: str) -> None:
        assert [e.type for e in events] == list(types), (events, types)

    # --- actions --------------------------------------------------------------------------------
    def open(self) -> None:
        events = self.run(
            OpenStream(
                **self.base(self.host),
                username=self.host.title(),
                title="t",
                category="c",
                language="en",
                privacy="public",
                is_recorded=False,
                allow_comments=True,
                allow_gifts=True,
                is_age_restricted=False,
                is_premium=False,
                quality="auto",
                ingest_url="rtmp://x",
                playback_url="https://x",
            )
        )
        self.expect(events, "streams.StreamStarted")

    def join(self, user: str, country: str | None, age: int | None) -> None:
        events = self.run(JoinStream(**self.base(user), username=user.upper(), country=country, age=age))
        self.expect(events, "streams.ViewerJoined")
        self.current[user] = [self.now_ms, self.now_ms]
        self.visits += 1
        self.latest_demo[user] = (country or "unknown", age_label(age))
        self.minutes[minute_of(self.now_ms)].joins += 1
        self.touch(len(self.current))

    def leave(self, user: str) -> None:
        self.expect(self.run(LeaveStream(**self.base(user))), "streams.ViewerLeft")
        joined, _ = self.current.pop(user)
        self.completed[user] += (self.now_ms - joined) // 1000
        self.minutes[minute_of(self.now_ms)].leaves += 1
        self.touch(len(self.current))

    def heartbeats(self, users: list[str]) -> None:
        beats = [(u, self.now_ms) for u in users]
        beats += [(u, self.now_ms) for u in users[: self.rng.randint(0, len(users))]]  # repeats count too
        events = self.run(RecordHeartbeats(**self.base("edge"), beats=beats))
        self.expect(events, "streams.HeartbeatsRecorded")
        for u in users:
            self.current[u][1] = self.now_ms
        self.touch(len(self.current))

    def like(self, taps: list[tuple[str, int]]) -> None:
        likes = [(f"{self.stream_id}-like-{self.n}-{i}", u, c) for i, (u, c) in enumerate(taps)]
        self.expect(self.run(RecordLikes(**self.base("edge"), likes=likes)), "streams.LikesRecorded")
        for u, c in taps:
            self.likes_by_user[u] += c
            self.minutes[minute_of(self.now_ms)].likes += c

    def comment(self, user: str) -> bool:
        if self.now_ms - self.last_comment.get(user, -(10**12)) < 2000 or user in self.banned:
            return False
        [event] = self.run(SendComment(**self.base(user), username=user, text="hello"))
        assert event.type == "streams.CommentPosted"
        self.comment_ids.append(event.comment_id)  # type: ignore[attr-defined]
        self.last_comment[user] = self.now_ms
        self.commenters.add(user)
        self.comments += 1
        self.minutes[minute_of(self.now_ms)].comments += 1
        return True

    def gift(self, sender: str, name: str | None = None) -> None:
        """`name`: the sender's display name on the gift (default: the id upper-cased)."""
        gift = self.rng.choice(CATALOG)
        count = self.rng.randint(1, 5)
        self.wallet_seq[sender] += 1
        seq = self.wallet_seq[sender]
        command = DeliverGift(
            **self.base(sender),
            sender_id=sender,
            sender_name=sender.upper() if name is None else name,
            gift_tx=f"{sender}:{seq}",
            wallet_seq=seq,
            gift=gift,
            count=count,
            coins=gift.coin_cost * count,
            coin_value_usd="0.01",
            combo_window_ms=5000,
        )
        self.expect(self.run(command), "streams.GiftReceived")
        coins = gift.coin_cost * count
        broadcaster = coins * 50 // 100
        self.gifts.append(
            {
                "gift_tx": f"{sender}:{seq}",
                "sender": sender,
                "username": sender.upper() if name is None else name,
                "gift_id": gift.gift_id,
                "gift_name": gift.name,
                "count": count,
                "coins": coins,
                "broadcaster": broadcaster,
                "platform": coins - broadcaster,
                "at_ms": self.now_ms,
            }
        )
        minute = self.minutes[minute_of(self.now_ms)]
        minute.gifts += count
        minute.revenue += coins
        minute.broadcaster += broadcaster
        minute.platform += coins - broadcaster

    def sweep(self) -> None:
        silent = sorted((seen, u) for u, (_, seen) in self.current.items() if self.now_ms - seen > SILENT_MS)
        events = self.run(SweepViewers(**self.base("system"), silent_ms=SILENT_MS))
        self.expect(events, *["streams.ViewerLeft"] * len(silent))
        for seen, u in silent:
            joined, _ = self.current.pop(u)
            self.completed[u] += (seen - joined) // 1000
            self.minutes[minute_of(self.now_ms)].leaves += 1
            self.touch(len(self.current))

    def snapshot(self) -> None:
        events = self.run(RecordAnalyticsSnapshot(**self.base("system")))
        self.expect(events, "streams.StreamAnalyticsRecorded")
        watch = dict(self.completed)
        for u, (joined, _) in self.current.items():
            watch[u] = watch.get(u, 0) + (self.now_ms - joined) // 1000
        gifters: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for g in self.gifts:
            gifters[g["sender"]][0] += g["coins"]
            gifters[g["sender"]][1] += g["count"]
        self.snapshots.append(
            {
                "viewerCount": len(self.current),
                "likes": sum(self.likes_by_user.values()),
                "comments": self.comments,
                "gifts": sum(g["count"] for g in self.gifts),
                "revenue": sum(g["coins"] for g in self.gifts),
                "topViewers": [
                    {"userId": u, "watchTimeSeconds": w}
                    for u, w in sorted(watch.items(), key=lambda kv: (-kv[1], kv[0]))[:10]
                ],
                "topGifters": [
                    {"userId": u, "coins": c, "gifts": n}
                    for u, (c, n) in sorted(gifters.items(), key=lambda kv: (-kv[1][0], kv[0]))[:10]
                ],
            }
        )
        self.touch(len(self.current))

    def ban(self, user: str, by: str) -> None:
        events = self.run(BanUser(**self.base(by), target_user_id=user, reason="spam"))
        assert events[0].type == "streams.UserBanned", events
        self.banned.add(user)
        self.moderation.append({"type": "streams.UserBanned", "user": user, "by": by, "at_ms": self.now_ms})

    def unban(self, user: str, by: str) -> None:
        events = self.run(UnbanUser(**self.base(by), target_user_id=user))
        assert events[0].type == "streams.UserUnbanned", events
        self.banned.discard(user)
        self.moderation.append({"type": "streams.UserUnbanned", "user": user, "by": by, "at_ms": self.now_ms})

    def timeout(self, user: str, by: str) -> None:
        events = self.run(TimeoutUser(**self.base(by), target_user_id=user, duration_s=60, reason="calm"))
        assert events[0].type == "streams.UserTimedOut", events
        self.last_comment[user] = self.now_ms + 60_000  # muted: the sim stops their comments for that long
        self.moderation.append({"type": "streams.UserTimedOut", "user": user, "by": by, "at_ms": self.now_ms})

    def delete_comment(self, by: str) -> None:
        comment_id = self.comment_ids[self.rng.randrange(len(self.comment_ids))]
        events = self.run(DeleteComment(**self.base(by), comment_id=comment_id, reason="rude"))
        if events:  # deleting twice records nothing the second time
            assert events[0].type == "streams.CommentDeleted"
            self.moderation.append(
                {"type": "streams.CommentDeleted", "user": "", "by": by, "at_ms": self.now_ms}
            )

    def end(self) -> None:
        events = self.run(EndStream(**self.base(self.host)))
        assert events[-1].type == "streams.StreamEnded"
        for u, (joined, _) in sorted(self.current.items()):
            self.completed[u] += (self.now_ms - joined) // 1000
            self.minutes[minute_of(self.now_ms)].leaves += 1
        self.current.clear()
        self.end_ms = self.now_ms

    # --- what the analytics must say ----------------------------------------------------------
    def watch_times(self) -> dict[str, int]:
        """Finished visits, plus running ones up to the viewer's last sign of life."""
        watch = {u: self.completed.get(u, 0) for u in self.latest_demo}
        for u, (joined, seen) in self.current.items():
            watch[u] += (seen - joined) // 1000
        return watch


def play_stream(sim: StreamSim, rng: random.Random, *, minutes: int, audience: list[str], end: bool) -> None:
    """About `minutes` of random activity, in 1-20 s steps."""
    demo = {u: (rng.choice(COUNTRIES), rng.choice([None, 15, 19, 23, 31, 40, 52, 60, 70])) for u in audience}
    trolls = [f"{sim.stream_id}-troll-{i}" for i in range(3)]
    sim.open()
    stop_ms = sim.now_ms + minutes * 60_000
    next_snapshot = sim.now_ms + 300_000
    while sim.now_ms < stop_ms:
        sim.now_ms += rng.randint(1, 20_000) + rng.randint(0, 999)  # milliseconds matter for watch time
        if sim.now_ms >= next_snapshot:
            sim.snapshot()
            next_snapshot += 300_000
        roll = rng.random()
        watching = sorted(sim.current)
        idle = [u for u in audience if u not in sim.current]
        if roll < 0.22 and idle:
            u = rng.choice(idle)
            country, age = demo[u]
            if rng.random() < 0.2:  # the token changed since the last visit: the latest join wins
                country = rng.choice(COUNTRIES)
            sim.join(u, country, age)
        elif roll < 0.32 and watching:
            sim.leave(rng.choice(watching))
        elif roll < 0.55 and watching:
            sim.heartbeats(rng.sample(watching, rng.randint(1, len(watching))))
        elif roll < 0.68:
            people = audience + ["drive-by-liker"]
            sim.like([(rng.choice(people), rng.randint(1, 50)) for _ in range(rng.randint(1, 4))])
        elif roll < 0.80:
            sim.comment(rng.choice(audience + trolls))
        elif roll < 0.88:
            sim.gift(rng.choice(audience[: len(audience) // 2] + ["generous-stranger"]))
        elif roll < 0.92:
            sim.sweep()
        elif roll < 0.96:
            troll = rng.choice(trolls)
            action = rng.choice(["ban", "unban", "timeout", "delete"])
            by = rng.choice([sim.host, "platform-mod"])
            if action == "ban" and troll not in sim.banned:
                sim.ban(troll, sim.host)
            elif action == "unban" and troll in sim.banned:
                sim.unban(troll, sim.host)
            elif action == "timeout" and troll not in sim.banned:
                sim.timeout(troll, sim.host)
            elif action == "delete" and sim.comment_ids:
                sim.delete_comment(by if by == sim.host else sim.host)
    if end:
        sim.now_ms += rng.randint(1, 5000)
        sim.end()


@dataclass
class FollowSim:
    """The broadcaster's audience shards: follows and unfollows, as the audience decider records them."""

    channel: str
    positions: Positions
    followers: set[str] = field(default_factory=set)
    sequences: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    changes: list[tuple[int, str]] = field(default_factory=list)  # (ms, "added"|"removed")
    records: list[Record] = field(default_factory=list)

    def act(self, follower: str, at_ms: int) -> None:
        shard = shard_of(follower)
        event: Event
        if follower in self.followers:
            self.followers.discard(follower)
            event, kind = FollowerRemoved(follower_id=follower), "removed"
        else:
            self.followers.add(follower)
            at = datetime.fromtimestamp(at_ms / 1000, UTC)
            event, kind = FollowerAdded(follower_id=follower, followed_at=at), "added"
        self.sequences[shard] += 1
        aggregate = f"{self.channel}:{shard}"
        env = seal(
            event,
            aggregate_id=aggregate,
            sequence=self.sequences[shard],
            command_id=f"follow-{aggregate}-{self.sequences[shard]}",
            index=0,
            correlation_id="c",
            actor_id=follower,
            occurred_at=datetime.fromtimestamp(at_ms / 1000, UTC),
        )
        self.records.append(self.positions.record(topics.EVENTS_AUDIENCES.name, aggregate, env))
        self.changes.append((at_ms, kind))


def ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def after(start: datetime, **delta: float) -> datetime:
    return start + timedelta(**delta)


def project(ch: ClickHouse, records: list[Any], rng: random.Random) -> None:
    """Through the projector in random batches, with earlier batches delivered again (at-least-once)."""
    projector = ClickHouseEventsProjector(ch)
    batches: list[list[Any]] = []
    i = 0
    while i < len(records):
        size = rng.randint(1, 60)
        batches.append(records[i : i + size])
        i += size
    for n, batch in enumerate(batches):
        projector.apply(batch, {})
        if n and rng.random() < 0.3:
            again = batches[rng.randrange(n)]
            assert projector.apply(again, {}) == sum(1 for r in again if r.envelope.sequence == 0)


def build(seed: int, ch: ClickHouse, start: datetime = START) -> tuple[StreamSim, StreamSim, FollowSim]:
    """Two streams (one ended, one still live) and follows of the first one's broadcaster, projected."""
    rng = random.Random(seed)
    positions = Positions()
    host = f"host-{seed}"
    start_ms = int(start.timestamp() * 1000)
    audience = [f"v{seed}-{i:02d}" for i in range(rng.randint(12, 30))]
    ended = StreamSim(f"s{seed}-ended", host, start_ms, rng, positions)
    play_stream(ended, rng, minutes=45, audience=audience, end=True)
    other_host = f"host-{seed}-b"
    live = StreamSim(f"s{seed}-live", other_host, start_ms + 600_000, rng, positions)
    play_stream(live, rng, minutes=20, audience=audience[::2], end=False)
    follows = FollowSim(host, positions)
    fans = [f"fan{seed}-{i}" for i in range(25)]
    for _ in range(120):  # before, during and after the ended stream
        follows.act(rng.choice(fans), start_ms - 600_000 + rng.randint(0, 70 * 60_000))
    follows.changes.sort()
    records = ended.records + live.records + follows.records
    rng.shuffle(records)  # aggregates interleave on the log; each keeps its own order below
    records.sort(key=lambda r: (r.envelope.aggregate_id, r.envelope.sequence, r.offset))
    records = interleave(records, rng)
    project(ch, records, rng)
    return ended, live, follows


def interleave(records: list[Any], rng: random.Random) -> list[Any]:
    """Merge each aggregate's records in a random global order, keeping per-aggregate order."""
    queues: dict[str, list[Any]] = defaultdict(list)
    for r in records:
        queues[r.envelope.aggregate_id].append(r)
    out: list[Any] = []
    keys = sorted(queues)
    while keys:
        key = rng.choice(keys)
        out.append(queues[key].pop(0))
        if not queues[key]:
            keys.remove(key)
    return out
