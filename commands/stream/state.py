"""The stream aggregate's state: the stream's own fields (its lifecycle and settings) and one part per
context, each changed only by its context's events (`stream.evolve`).

A part's fields keep the names they had when the state was one flat record, so the stored form stays
that flat record (`StreamState.to_dict`), and `state.viewers` still reads `state.audience.viewers`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, Generic, Literal, TypeVar, overload

from spaktok.commands.parted_map import PartedMap

COMMENT_MEMORY_MS = 300_000  # last comment per user kept this long: the longest slow mode allowed
COMMENT_PRUNE_EVERY_MS = 60_000  # how often (in event time) comments older than that are forgotten
COMBO_MEMORY_MS = 60_000  # the longest combo window allowed: older combo entries can never continue
PK_LEFT_KEPT = 16  # battles a stream remembers having left
LIKE_ID_MEMORY = 10_000  # recent like action ids kept to refuse client retries
ANONYMOUS_ACTION = "anon:"  # prefix of action ids without an idempotency key: never retried, never kept


def millis(at: datetime) -> int:
    return int(at.timestamp() * 1000)


S = TypeVar("S")


def copy_with(state: S, **changes: Any) -> S:
    """`dataclasses.replace` for the stream's frozen, slotted states, without running `__init__`
    again: the fields are copied slot by slot. `replace` was the largest single cost of a comment
    in the worker (~20 µs of ~80, two or three per event: the stream and the context's part)."""
    cls = type(state)
    slots: tuple[str, ...] = getattr(cls, "__slots__")  # noqa: B009 - slots=True: the slots are the fields
    if not changes.keys() <= set(slots):
        raise TypeError(f"{cls.__name__} has no field {sorted(changes.keys() - set(slots))}")
    new = object.__new__(cls)
    for name in slots:
        object.__setattr__(new, name, changes[name] if name in changes else getattr(state, name))
    return new


@dataclass(frozen=True, slots=True)
class Audience:
    """Who watches and has watched (`stream.audience`)."""

    # per-user maps as their stored parts (commands.parted_map.PartedMap): a batch copies and the store
    # rewrites only the parts it changed, whatever the audience
    viewers: PartedMap = field(default_factory=PartedMap)  # user -> [joined_ms, last_seen_ms]
    watch_time: PartedMap = field(default_factory=PartedMap)  # user -> seconds of past visits
    peak_viewer_count: int = 0
    # the users with the longest past watch times, (user, seconds), longest first, ties by id: the
    # snapshot's ranking of watch times starts from them (`stream_analytics.longest_kept`); None
    # for a stream started before they were kept
    longest: tuple[tuple[str, int], ...] | None = None

    @property
    def viewer_count(self) -> int:
        return len(self.viewers)

    @property
    def total_views(self) -> int:
        return len(self.watch_time)


@dataclass(frozen=True, slots=True)
class Chat:
    """Comments, likes and the pinned comment (`stream.chat`)."""

    likes: int = 0
    comments: int = 0
    last_comment_ms: dict[str, int] = field(default_factory=dict)  # user -> last comment time
    comments_pruned_ms: int = 0  # when last_comment_ms was last pruned
    recent_like_ids: dict[str, None] = field(default_factory=dict)  # an insertion-ordered set
    pinned_comment_id: str = ""
    shard_likes: dict[str, int] = field(default_factory=dict)  # like shard -> its total folded here


@dataclass(frozen=True, slots=True)
class Moderation:
    """The stream's moderators, bans, timeouts and reports (`stream.moderation`)."""

    moderators: tuple[str, ...] = ()  # the stream's own moderators, named by the broadcaster
    banned: dict[str, int] = field(default_factory=dict)  # user -> banned at (ms)
    muted_until: dict[str, int] = field(default_factory=dict)  # user -> end of their timeout (ms)
    reporters: dict[str, int] = field(default_factory=dict)  # reporter -> last report (ms), in window
    moderation_status: str = "active"  # active, flagged, suspended
    # platform enforcement (issue #15): the open report's round, and reporter -> round of their last
    # report (a reporter whose report was resolved does not reopen it)
    report_round: int = 1
    reported_by: dict[str, int] = field(default_factory=dict)
    # the broadcaster's channel moderators (issue #18): taken at the start, kept in step while live
    channel_moderators: tuple[str, ...] = ()

    def moderates(self, user_id: str) -> bool:
        """A moderator of this stream, named for it or for the whole channel."""
        return user_id in self.moderators or user_id in self.channel_moderators


@dataclass(frozen=True, slots=True)
class Stage:
    """Who is on stage with the broadcaster, or invited there (`stream.guests`, multi-guest)."""

    guests: tuple[str, ...] = ()  # on stage with the broadcaster
    guest_invites: tuple[str, ...] = ()  # invited, not yet answered


@dataclass(frozen=True, slots=True)
class Gifting:
    """Gifts taken, who gave them and the combos running (`stream.gifting`)."""

    gifts: int = 0
    gift_revenue: int = 0
    # sender -> [coins given, last wallet seq decided, gifts given]: the leaderboard, and the
    # high-water mark that makes a redelivered gift a no-op (a wallet's gifts arrive in its order)
    gifters: PartedMap = field(default_factory=PartedMap)
    # sender -> [gift id, combo id, count, last ms]; only senders of the last minute or two (a
    # PartedMap like gifters: a gift changes one entry, so a store writes that entry, not the map)
    combos: PartedMap = field(default_factory=PartedMap)
    combos_pruned_ms: int = 0  # when combos were last pruned (event time)


@dataclass(frozen=True, slots=True)
class Media:
    """The key generation, the ingest from the media server, recordings (docs/media.md, `stream.media`)."""

    key_generation: int = 1
    ingest: Literal["idle", "live", "lost"] = "idle"  # idle: never published; lost: within the grace
    ingest_changed_ms: int = 0  # when ingest last started or stopped
    recordings: dict[str, list[Any]] = field(default_factory=dict)  # id -> [ready ms, path, thumbnail]


@dataclass(frozen=True, slots=True)
class Pk:
    """The PK battle this stream is linked to: its gifts score there (`stream.pk`)."""

    pk_battle_id: str = ""
    pk_opponent_stream_id: str = ""
    pk_side: int = 0
    # the battles this stream left, newest last (PK_LEFT_KEPT): a late copy of a battle's link
    # command, redelivered after the unlink, must not link the stream again (found by
    # tests/unit/test_battle_saga.py once the command memory let that copy through)
    pk_left: tuple[str, ...] = ()


T = TypeVar("T")


class Flat(Generic[T]):
    """A part's field read by its flat name: `state.viewers` is `state.audience.viewers`.

    The names every reader used before the state had parts; read-only, as every field is.
    """

    __slots__ = ("part", "name")

    def __init__(self, part: str) -> None:
        self.part = part
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, state: None, owner: type) -> Flat[T]: ...
    @overload
    def __get__(self, state: StreamState, owner: type | None = None) -> T: ...
    def __get__(self, state: StreamState | None, owner: type | None = None) -> T | Flat[T]:
        if state is None:
            return self
        value: T = getattr(getattr(state, self.part), self.name)
        return value


@dataclass(frozen=True, slots=True)
class StreamState:
    """Everything the stream decider needs; `version` is the last event sequence applied.

    The stream's own fields are its lifecycle (`stream.lifecycle`) and the settings the broadcaster
    opens it with and updates; the contexts read those settings (chat the slow mode, gifting
    `allow_gifts`, media `is_recorded`) but only the lifecycle's events change them.
    """

    stream_id: str = ""
    user_id: str = ""
    status: Literal["none", "live", "ended"] = "none"
    started_ms: int = 0
    ended_ms: int = 0
    allow_comments: bool = True
    playback_url: str = ""
    version: int = 0
    privacy: str = "public"
    is_age_restricted: bool = False
    slow_mode_ms: int = 0  # per-stream slow mode set by the broadcaster; 0 = the platform default
    owner_seen_ms: int = 0  # the broadcaster's last heartbeat
    allowed_user_ids: tuple[str, ...] = ()  # who may watch when private
    title: str = ""
    username: str = ""
    allow_gifts: bool = True
    is_premium: bool = False
    is_recorded: bool = False
    like_shards: int = 0  # likes counted by this many shards (commands/stream_shards.py); 0: here
    release_part: int = 0  # ended: the first part of the viewer map whose viewers may still be held
    audience: Audience = field(default_factory=Audience)
    chat: Chat = field(default_factory=Chat)
    moderation: Moderation = field(default_factory=Moderation)
    stage: Stage = field(default_factory=Stage)
    gifting: Gifting = field(default_factory=Gifting)
    media: Media = field(default_factory=Media)
    pk: Pk = field(default_factory=Pk)

    viewers = Flat[PartedMap]("audience")
    watch_time = Flat[PartedMap]("audience")
    peak_viewer_count = Flat[int]("audience")
    likes = Flat[int]("chat")
    comments = Flat[int]("chat")
    last_comment_ms = Flat[dict[str, int]]("chat")
    comments_pruned_ms = Flat[int]("chat")
    recent_like_ids = Flat[dict[str, None]]("chat")
    pinned_comment_id = Flat[str]("chat")
    moderators = Flat[tuple[str, ...]]("moderation")
    banned = Flat[dict[str, int]]("moderation")
    muted_until = Flat[dict[str, int]]("moderation")
    reporters = Flat[dict[str, int]]("moderation")
    moderation_status = Flat[str]("moderation")
    report_round = Flat[int]("moderation")
    reported_by = Flat[dict[str, int]]("moderation")
    channel_moderators = Flat[tuple[str, ...]]("moderation")
    guests = Flat[tuple[str, ...]]("stage")
    guest_invites = Flat[tuple[str, ...]]("stage")
    gifts = Flat[int]("gifting")
    gift_revenue = Flat[int]("gifting")
    gifters = Flat[PartedMap]("gifting")
    combos = Flat[PartedMap]("gifting")
    combos_pruned_ms = Flat[int]("gifting")
    key_generation = Flat[int]("media")
    ingest = Flat[Literal["idle", "live", "lost"]]("media")
    ingest_changed_ms = Flat[int]("media")
    recordings = Flat[dict[str, list[Any]]]("media")
    pk_battle_id = Flat[str]("pk")
    pk_opponent_stream_id = Flat[str]("pk")
    pk_side = Flat[int]("pk")
    pk_left = Flat[tuple[str, ...]]("pk")

    @property
    def viewer_count(self) -> int:
        return self.audience.viewer_count

    @property
    def total_views(self) -> int:
        return self.audience.total_views

    def stats(self) -> dict[str, Any]:
        """The small summary the API returns with a command's outcome."""
        return {
            "status": self.status,
            "viewerCount": self.viewer_count,
            "peakViewerCount": self.audience.peak_viewer_count,
            "totalViews": self.total_views,
            "likes": self.chat.likes,
            "comments": self.chat.comments,
            "playbackUrl": self.playback_url,
        }

    def to_dict(self, exclude: frozenset[str] = frozenset()) -> dict[str, Any]:
        """The stored record: one flat dict, the parts' fields beside the stream's own (without
        the names in `exclude`: what `storage.split` stores apart is never copied here)."""
        data: dict[str, Any] = {}
        for own in fields(self):
            value = getattr(self, own.name)
            if own.name in PARTS:
                for name in value.__dataclass_fields__:
                    if name not in exclude:
                        data[name] = getattr(value, name)
            elif own.name not in exclude:
                data[own.name] = value
        for name in PARTED.intersection(data):
            data[name] = dict(data[name].items())
        if "recent_like_ids" in data:
            data["recent_like_ids"] = list(self.chat.recent_like_ids)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StreamState:
        """The state `to_dict` stored; a field missing from an older record takes its default."""
        data = dict(data)
        data["recent_like_ids"] = dict.fromkeys(data.get("recent_like_ids", ()))
        for name in (
            "moderators",
            "channel_moderators",
            "guests",
            "guest_invites",
            "allowed_user_ids",
            "pk_left",
        ):
            data[name] = tuple(data.get(name, ()))
        if data.get("longest") is not None:
            data["longest"] = tuple((user, seconds) for user, seconds in data["longest"])
        for name in PARTED.intersection(data):
            if not isinstance(data[name], PartedMap):
                data[name] = PartedMap(data[name])
        parts = {
            part: kind(**{name: data.pop(name) for name in kind.__dataclass_fields__ if name in data})
            for part, kind in PARTS.items()
        }
        return cls(**data, **parts)


TUPLES = ("moderators", "channel_moderators", "guests", "guest_invites", "allowed_user_ids", "pk_left")
PARTED = frozenset({"viewers", "watch_time", "gifters", "combos"})  # the per-user maps kept as PartedMaps

# the parts of a StreamState: field name -> its type
PARTS: dict[str, type[Any]] = {
    "audience": Audience,
    "chat": Chat,
    "moderation": Moderation,
    "stage": Stage,
    "gifting": Gifting,
    "media": Media,
    "pk": Pk,
}
