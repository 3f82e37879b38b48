"""One stream's feed in an API process: the stream's events as feed items (what is pushed:
docs/realtime.md), the frames made of them and not yet offered to every subscriber, and the access
facts its clients are re-checked against.

Comments and `join` items as they happen, likes summed per `live_likes_interval_ms`, the viewer
count at most every `live_viewer_count_interval_ms` when it changed, and status changes. PK battles
come from the battle events topic: their events name both streams, and each goes to both audiences.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import orjson

from spaktok.api.access import ACCESS_EVENTS, Access, StreamFacts, Viewer, facts_after
from spaktok.api.live_send import Subscription
from spaktok.projections.streams_views import camel


def _item(kind: str, env: dict[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    payload = env["payload"]
    item = {"type": kind, "sequence": env["sequence"], "at": env["occurred_at"]}
    item.update({camel(name): payload.get(name) for name in fields})
    return item


GIFT_FIELDS = (
    "gift_tx",
    "sender_id",
    "sender_username",
    "sender_profile_image",
    "gift_id",
    "gift_name",
    "gift_image_url",
    "gift_animation_url",
    "count",
    "coin_cost",
    "is_combo",
    "combo_id",
    "combo_count",
)


HEALTH_FIELDS = (
    "bitrate_kbps",
    "frame_rate",
    "width",
    "height",
    "keyframe_interval_s",
    "dropped_frames",
    "speed",
    "warnings",
)
BATTLE_FEED_EVENTS = frozenset({"battles.BattleStarted", "battles.BattleScored", "battles.BattleEnded"})


@dataclass
class StreamFeed:
    """What is pending for one stream's subscribers until its next frame."""

    subscribers: set[Subscription] = field(default_factory=set)
    items: list[dict[str, Any]] = field(default_factory=list)
    likes: int = 0
    total_likes: int | None = None
    likes_sent_at: float = 0.0
    viewer_count: int | None = None
    viewers_sent: int | None = None
    viewers_sent_at: float = 0.0
    ended: bool = False
    # leaderboard entries changed since the last frame, and the latest PK scores (one item per frame)
    gifters: dict[str, dict[str, Any]] = field(default_factory=dict)
    pk_score: dict[str, Any] | None = None
    # the access facts: from the first admitted client's read, then moved on by the events that
    # change them; those events arriving before that read wait in `access_pending`
    facts: StreamFacts | None = None
    access_pending: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    relayed: dict[str, int] = field(default_factory=dict)  # aggregate -> last position relayed
    # frames not yet offered to every subscriber: frames[i] is the stream's frame number base + i
    frames: list[str] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)  # items per frame
    base: int = 0
    next_pass: float = 0.0  # a pass over the subscribers may not start before this (monotonic clock)
    flusher: asyncio.Handle | None = None  # a frame to make on the loop's next turn
    writer: asyncio.Future[None] | None = None  # the passes over the subscribers, while one is due

    @property
    def end(self) -> int:
        return self.base + len(self.frames)

    def admit(self, sub: Subscription, facts: StreamFacts, viewer: Viewer) -> Access:
        """Remember the client's viewer and check it against the feed's facts (which may already
        know of a ban or privacy change the client's read missed)."""
        if self.facts is None:
            for kind, payload in self.access_pending:
                facts = facts_after(facts, kind, payload)
            self.facts, self.access_pending = facts, []
        sub.viewer = viewer
        return sub.recheck(self.facts)

    def offer_owner(self, env: dict[str, Any]) -> None:
        """A `health` item goes to the broadcaster's own connections only, as a message of its own
        (not a frame every subscriber shares): viewers have no use for the encoder's figures."""
        if self.facts is None:
            return  # nobody admitted yet, so not the owner either
        text = orjson.dumps([_item("health", env, HEALTH_FIELDS)]).decode()
        for sub in list(self.subscribers):
            viewer = sub.viewer
            if viewer is not None and viewer.user_id == self.facts.owner_id and not (sub.reason or sub.gone):
                sub.offer(text)

    def _seen(self, env: dict[str, Any]) -> bool:
        """An event published again: a worker that crashed after publishing a batch and before
        storing it is followed by one that decides the same commands again, which publishes the
        same events at the same positions (docs/decisions.md "Exactly-once effects"). The
        projectors drop them by sequence; so does the feed, or a viewer would see a comment twice.
        Each aggregate's events reach this process in order (one partition), so a position at or
        below the last one relayed was relayed. Notices and refusals (position 0) always pass."""
        sequence = env.get("sequence", 0)
        if sequence <= 0:
            return False
        key = f"{env.get('aggregate_type', '')}:{env.get('aggregate_id', '')}"
        if sequence <= self.relayed.get(key, 0):
            return True
        self.relayed[key] = sequence
        return False

    def _access_changed(self, kind: str, payload: dict[str, Any]) -> None:
        """A ban, privacy change, suspension (…): re-check every client. Rare, so the per-frame
        framing stays as cheap as before."""
        if self.facts is None:
            self.access_pending.append((kind, payload))
            return
        self.facts = facts_after(self.facts, kind, payload)
        for sub in list(self.subscribers):
            sub.recheck(self.facts)

    def apply(self, env: dict[str, Any]) -> None:
        if self._seen(env):
            return
        kind = env["type"]
        payload = env["payload"]
        if kind in ACCESS_EVENTS:
            self._access_changed(kind, payload)
        if kind == "streams.CommentPosted":
            fields = ("comment_id", "user_id", "username", "user_profile_image", "text", "comment_type")
            self.items.append(_item("comment", env, fields))
        elif kind == "streams.StreamUpdated":
            item = _item("updated", env, ())
            item["changes"] = {camel(k): v for k, v in payload["changes"].items()}
            self.items.append(item)
        elif kind == "streams.UserBanned":  # clients hide that user's recent comments
            self.items.append(_item("banned", env, ("user_id", "comments_deleted_since")))
        elif kind == "streams.CommentDeleted":
            self.items.append(_item("deleted", env, ("comment_id", "deleted_by", "role")))
        elif kind == "streams.CommentPinned":
            self.items.append(_item("pinned", env, ("comment_id", "previous_comment_id")))
        elif kind == "streams.CommentUnpinned":
            self.items.append(_item("unpinned", env, ("comment_id",)))
        elif kind == "streams.GiftReceived":
            self.items.append(_item("gift", env, GIFT_FIELDS))
            self.gifters[payload["sender_id"]] = {
                "userId": payload["sender_id"],
                "username": payload["sender_username"],
                "coins": payload["sender_total_coins"],
            }
        elif kind == "streams.GuestJoined":
            self.items.append(_item("guest_joined", env, ("user_id", "guests")))
        elif kind == "streams.GuestRemoved":
            self.items.append(_item("guest_left", env, ("user_id", "by", "reason", "guests")))
        elif kind in ("streams.LikesRecorded", "streams.ShardLikesFolded"):  # a hot stream's: folded
            self.likes += payload["count"]
            self.total_likes = payload["total_likes"]
        elif kind == "streams.ViewerJoined":
            self.viewer_count = payload["viewer_count"]
            self.items.append(_item("join", env, ("user_id", "username", "user_profile_image")))
        elif kind in ("streams.ViewerLeft", "streams.HeartbeatsRecorded"):
            self.viewer_count = payload["viewer_count"]
        elif kind in ("streams.IngestStarted", "streams.IngestStopped"):  # players show "reconnecting"
            item = _item("ingest", env, ())
            item["ingest"] = "live" if kind == "streams.IngestStarted" else "reconnecting"
            self.items.append(item)
        elif kind == "streams.StreamEnded":
            fields = ("reason", "duration", "peak_viewer_count", "total_views", "likes", "comments", "gifts")
            item = _item("status", env, fields)
            item["status"] = "ended"
            self.items.append(item)
            self.viewer_count = 0
            self.ended = True

    def apply_battle(self, env: dict[str, Any]) -> None:
        kind, payload = env["type"], env["payload"]
        sides = {
            "battleId": env["aggregate_id"],
            "stream1Id": payload["stream1_id"],
            "stream2Id": payload["stream2_id"],
        }
        if kind == "battles.BattleStarted":
            item = _item("pk_started", env, ("started_at", "ends_at"))
            self.items.append({**item, **sides})
        elif kind == "battles.BattleScored":
            self.pk_score = {
                "type": "pk_score",
                **sides,
                "score1": payload["score1"],
                "score2": payload["score2"],
            }
        elif kind == "battles.BattleEnded":
            fields = ("score1", "score2", "winner_id", "winner_stream_id", "is_tie", "winner_bonus", "reason")
            self.items.append({**_item("pk_ended", env, fields), **sides})
            self.pk_score = None  # the result carries the final scores

    def due(self, now: float, likes_every: float, viewers_every: float) -> list[dict[str, Any]]:
        """Everything to send in the next frame, in the order it happened (the aggregates last)."""
        items, self.items = self.items, []
        if self.likes and (now - self.likes_sent_at >= likes_every or self.ended):
            items.append({"type": "likes", "count": self.likes, "totalLikes": self.total_likes})
            self.likes, self.likes_sent_at = 0, now
        if self.gifters:  # new totals of this frame's gifters, merged by clients into GET .../leaderboard
            ranked = sorted(self.gifters.values(), key=lambda g: -g["coins"])
            items.append({"type": "leaderboard", "gifters": ranked})
            self.gifters = {}
        if self.pk_score is not None:
            items.append(self.pk_score)
            self.pk_score = None
        changed = self.viewer_count is not None and self.viewer_count != self.viewers_sent
        if changed and (now - self.viewers_sent_at >= viewers_every or self.ended):
            items.append({"type": "viewers", "viewerCount": self.viewer_count})
            self.viewers_sent, self.viewers_sent_at = self.viewer_count, now
        return items
