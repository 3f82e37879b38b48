"""The stream aggregate's state and `evolve`: how each stream event changes it."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal

from spaktok.commands import parts
from spaktok.events.base import Event
from spaktok.events.media import (
    IngestStarted,
    IngestStopped,
    RecordingDeleted,
    RecordingReady,
    StreamKeyRotated,
)
from spaktok.events.streams import (
    BattleLinked,
    BattleUnlinked,
    CommentDeleted,
    CommentPinned,
    CommentPosted,
    GiftReceived,
    GiftRefused,
    GuestInvited,
    GuestJoined,
    GuestRemoved,
    HeartbeatsRecorded,
    LikesRecorded,
    ModeratorAdded,
    ModeratorRemoved,
    ReportsResolved,
    StreamEnded,
    StreamFlagged,
    StreamReported,
    StreamStarted,
    StreamSuspended,
    StreamUpdated,
    UserBanned,
    UserTimedOut,
    UserUnbanned,
    ViewerJoined,
    ViewerLeft,
)

COMMENT_MEMORY_MS = 300_000  # last comment per user kept this long: the longest slow mode allowed
COMMENT_PRUNE_EVERY_MS = 60_000  # how often (in event time) comments older than that are forgotten
COMBO_MEMORY_MS = 60_000  # the longest combo window allowed: older combo entries can never continue
LIKE_ID_MEMORY = 10_000  # recent like action ids kept to refuse client retries
ANONYMOUS_ACTION = "anon:"  # prefix of action ids without an idempotency key: never retried, never kept


def millis(at: datetime) -> int:
    return int(at.timestamp() * 1000)


@dataclass(frozen=True, slots=True)
class StreamState:
    """Everything the stream decider needs; `version` is the last event sequence applied."""

    stream_id: str = ""
    user_id: str = ""
    status: Literal["none", "live", "ended"] = "none"
    started_ms: int = 0
    ended_ms: int = 0
    allow_comments: bool = True
    playback_url: str = ""
    version: int = 0
    viewers: dict[str, list[int]] = field(default_factory=dict)  # user -> [joined_ms, last_seen_ms]
    watch_time: dict[str, int] = field(default_factory=dict)  # user -> seconds of past visits
    peak_viewer_count: int = 0
    likes: int = 0
    comments: int = 0
    gifts: int = 0
    gift_revenue: int = 0
    last_comment_ms: dict[str, int] = field(default_factory=dict)  # user -> last comment time
    comments_pruned_ms: int = 0  # when last_comment_ms was last pruned
    recent_like_ids: dict[str, None] = field(default_factory=dict)  # an insertion-ordered set
    pinned_comment_id: str = ""
    privacy: str = "public"
    is_age_restricted: bool = False
    slow_mode_ms: int = 0  # per-stream slow mode set by the broadcaster; 0 = the platform default
    owner_seen_ms: int = 0  # the broadcaster's last heartbeat
    moderators: tuple[str, ...] = ()  # the stream's own moderators, named by the broadcaster
    banned: dict[str, int] = field(default_factory=dict)  # user -> banned at (ms)
    muted_until: dict[str, int] = field(default_factory=dict)  # user -> end of their timeout (ms)
    reporters: dict[str, int] = field(default_factory=dict)  # reporter -> last report (ms), in window
    moderation_status: str = "active"  # active, flagged, suspended
    # platform enforcement (issue #15): the open report's round, and reporter -> round of their last
    # report (a reporter whose report was resolved does not reopen it); who may watch when private
    report_round: int = 1
    reported_by: dict[str, int] = field(default_factory=dict)
    allowed_user_ids: tuple[str, ...] = ()
    title: str = ""
    username: str = ""
    allow_gifts: bool = True
    is_premium: bool = False
    # sender -> [coins given, last wallet seq decided, gifts given]: the leaderboard, and the
    # high-water mark that makes a redelivered gift a no-op (a wallet's gifts arrive in its order)
    gifters: dict[str, list[int]] = field(default_factory=dict)
    # sender -> [gift id, combo id, count, last ms]; only senders of the last minute or two
    combos: dict[str, list[Any]] = field(default_factory=dict)
    combos_pruned_ms: int = 0  # when combos were last pruned (event time)
    guests: tuple[str, ...] = ()  # on stage with the broadcaster (multi-guest)
    guest_invites: tuple[str, ...] = ()  # invited, not yet answered
    pk_battle_id: str = ""  # the PK battle this stream is linked to (its gifts score there)
    pk_opponent_stream_id: str = ""
    pk_side: int = 0
    # media (docs/media.md): the key generation, the ingest from the media server, recordings
    is_recorded: bool = False
    key_generation: int = 1
    ingest: Literal["idle", "live", "lost"] = "idle"  # idle: never published; lost: within the grace
    ingest_changed_ms: int = 0  # when ingest last started or stopped
    recordings: dict[str, list[Any]] = field(default_factory=dict)  # id -> [ready ms, path, thumbnail]

    @property
    def viewer_count(self) -> int:
        return len(self.viewers)

    @property
    def total_views(self) -> int:
        return len(self.watch_time)

    def stats(self) -> dict[str, Any]:
        """The small summary the API returns with a command's outcome."""
        return {
            "status": self.status,
            "viewerCount": self.viewer_count,
            "peakViewerCount": self.peak_viewer_count,
            "totalViews": self.total_views,
            "likes": self.likes,
            "comments": self.comments,
            "playbackUrl": self.playback_url,
        }

    def to_dict(self) -> dict[str, Any]:
        data = {name: getattr(self, name) for name in self.__dataclass_fields__}
        data["recent_like_ids"] = list(self.recent_like_ids)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StreamState:
        data = dict(data)
        data["recent_like_ids"] = dict.fromkeys(data.get("recent_like_ids", ()))
        data["moderators"] = tuple(data.get("moderators", ()))
        data["guests"] = tuple(data.get("guests", ()))
        data["guest_invites"] = tuple(data.get("guest_invites", ()))
        data["allowed_user_ids"] = tuple(data.get("allowed_user_ids", ()))
        return cls(**data)


def split(state: StreamState) -> tuple[dict[str, Any], dict[str, Any]]:
    """The stored form: scalars in the main record; viewers, watch times, gifters and like ids in
    parts (`commands.parts`).

    A heartbeat batch then rewrites the viewer parts it touched, and a 100k-viewer stream is
    ~50 records of ~140 KB instead of one of 7 MB (more than a broker accepts). The gifters (every
    sender of the stream, kept for its whole life) are split the same way, by their own count.
    """
    main = state.to_dict()
    for bulky in ("viewers", "watch_time", "recent_like_ids", "gifters", "combos"):
        del main[bulky]
    count = parts.part_count(max(len(state.viewers), len(state.watch_time)))  # one hash for both
    contents: dict[str, Any] = {
        **parts.by_user("viewers", state.viewers, count),
        **parts.by_user("watch", state.watch_time, count),
        **parts.by_user("gifters", state.gifters),
    }
    if state.recent_like_ids:
        contents["likes"] = list(state.recent_like_ids)
    if state.combos:
        contents["combos"] = state.combos
    return main, contents


def join(main: dict[str, Any], contents: dict[str, Any]) -> StreamState:
    return StreamState.from_dict(
        {
            **main,
            "viewers": parts.joined(contents, "viewers"),
            "watch_time": parts.joined(contents, "watch"),
            "recent_like_ids": contents.get("likes", []),
            "gifters": parts.joined(contents, "gifters"),  # "gifters": one part, as stored before
            "combos": contents.get("combos", {}),
        }
    )


def thaw(state: StreamState) -> StreamState:
    """A copy whose collections belong to the caller, who may then `evolve` it.

    `evolve` updates the collections in place (copying a 100k-viewer map for every join would make
    a mega-stream quadratic); the worker thaws each aggregate once per batch, so the state it has
    stored and cached is never touched.
    """
    return replace(
        state,
        viewers=dict(state.viewers),
        watch_time=dict(state.watch_time),
        last_comment_ms=dict(state.last_comment_ms),
        recent_like_ids=dict(state.recent_like_ids),
        banned=dict(state.banned),
        muted_until=dict(state.muted_until),
        reporters=dict(state.reporters),
        reported_by=dict(state.reported_by),
        gifters=dict(state.gifters),
        combos=dict(state.combos),
    )


def evolve(state: StreamState, event: Event) -> StreamState:
    """Apply one event to a thawed state: collections change in place, the rest is replaced."""
    version = state.version + 1
    match event:
        case StreamStarted():
            return replace(
                state,
                version=version,
                stream_id=event.stream_id,
                user_id=event.user_id,
                status="live",
                started_ms=millis(event.started_at),
                allow_comments=event.allow_comments,
                playback_url=event.playback_url,
                privacy=event.privacy,
                is_age_restricted=event.is_age_restricted,
                title=event.title,
                username=event.username,
                allow_gifts=event.allow_gifts,
                is_premium=event.is_premium,
                is_recorded=event.is_recorded,
                allowed_user_ids=tuple(event.allowed_user_ids),
            )
        case StreamKeyRotated():
            return replace(state, version=version, key_generation=event.generation)
        case IngestStarted():
            return replace(state, version=version, ingest="live", ingest_changed_ms=millis(event.started_at))
        case IngestStopped():
            return replace(state, version=version, ingest="lost", ingest_changed_ms=millis(event.stopped_at))
        case RecordingReady():
            entry = [millis(event.ready_at), event.path, event.thumbnail]
            return replace(state, version=version, recordings={**state.recordings, event.recording_id: entry})
        case RecordingDeleted():
            kept = {rid: entry for rid, entry in state.recordings.items() if rid != event.recording_id}
            return replace(state, version=version, recordings=kept)
        case StreamEnded():
            return replace(state, version=version, status="ended", ended_ms=millis(event.ended_at))
        case ViewerJoined():
            at = millis(event.joined_at)
            state.viewers[event.user_id] = [at, at]
            state.watch_time.setdefault(event.user_id, 0)
            peak = max(state.peak_viewer_count, len(state.viewers))
            return replace(state, version=version, peak_viewer_count=peak)
        case ViewerLeft():
            state.viewers.pop(event.user_id, None)
            state.watch_time[event.user_id] = event.watch_time
            return replace(state, version=version)
        case HeartbeatsRecorded():
            viewers = state.viewers
            for user_id, beat_at in event.beats.items():
                seen = viewers.get(user_id)
                if seen is not None:
                    viewers[user_id] = [seen[0], max(seen[1], millis(beat_at))]
            owner_beat = event.beats.get(state.user_id)
            if owner_beat is not None:
                owner_seen = max(state.owner_seen_ms, millis(owner_beat))
                return replace(state, version=version, owner_seen_ms=owner_seen)
            return replace(state, version=version)
        case CommentPosted():
            posted = millis(event.posted_at)
            recent = state.last_comment_ms
            pruned = state.comments_pruned_ms
            if posted - pruned >= COMMENT_PRUNE_EVERY_MS:
                # forgetting is only to bound memory: an entry older than COMMENT_MEMORY_MS can no
                # longer refuse anything, so pruning now and then (not per comment) is exact
                cutoff = posted - COMMENT_MEMORY_MS
                for user_id in [u for u, t in recent.items() if t <= cutoff]:
                    del recent[user_id]
                pruned = posted
            recent[event.user_id] = posted
            return replace(state, version=version, comments=event.comments, comments_pruned_ms=pruned)
        case LikesRecorded():
            ids = state.recent_like_ids
            for action_id in event.action_ids:
                if not action_id.startswith(ANONYMOUS_ACTION):
                    ids[action_id] = None
            for _ in range(len(ids) - LIKE_ID_MEMORY):
                del ids[next(iter(ids))]  # oldest first: dicts keep insertion order
            return replace(state, version=version, likes=event.total_likes)
        case StreamUpdated():
            changes = event.changes
            return replace(
                state,
                version=version,
                title=changes.get("title", state.title),
                allow_comments=changes.get("allow_comments", state.allow_comments),
                allow_gifts=changes.get("allow_gifts", state.allow_gifts),
                privacy=changes.get("privacy", state.privacy),
                slow_mode_ms=changes.get("slow_mode_seconds", state.slow_mode_ms // 1000) * 1000,
                allowed_user_ids=tuple(changes.get("allowed_user_ids", state.allowed_user_ids)),
            )
        case UserBanned():
            state.banned[event.user_id] = millis(event.banned_at)
            state.muted_until.pop(event.user_id, None)
            banned = event.user_id
            return replace(
                state,
                version=version,
                guests=tuple(g for g in state.guests if g != banned),  # a ban takes them off stage too
                guest_invites=tuple(g for g in state.guest_invites if g != banned),
            )
        case GuestInvited():
            return replace(state, version=version, guest_invites=(*state.guest_invites, event.user_id))
        case GuestJoined():
            invites = tuple(g for g in state.guest_invites if g != event.user_id)
            return replace(state, version=version, guests=tuple(event.guests), guest_invites=invites)
        case GuestRemoved():
            invites = tuple(g for g in state.guest_invites if g != event.user_id)
            return replace(state, version=version, guests=tuple(event.guests), guest_invites=invites)
        case UserUnbanned():
            state.banned.pop(event.user_id, None)
            return replace(state, version=version)
        case UserTimedOut():
            state.muted_until[event.user_id] = millis(event.until)
            return replace(state, version=version)
        case StreamReported():
            reported = millis(event.reported_at)
            cutoff = reported - event.window_s * 1000
            for reporter in [r for r, at_ms in state.reporters.items() if at_ms <= cutoff]:
                del state.reporters[reporter]  # bounded: only the window's reporters are kept
            state.reporters[event.reporter_id] = reported
            state.reported_by[event.reporter_id] = event.report_round
            return replace(state, version=version)
        case ReportsResolved():
            return replace(state, version=version, report_round=event.report_round + 1)
        case StreamFlagged():
            return replace(state, version=version, moderation_status="flagged")
        case StreamSuspended():
            return replace(state, version=version, moderation_status="suspended")
        case ModeratorAdded():
            return replace(state, version=version, moderators=(*state.moderators, event.user_id))
        case ModeratorRemoved():
            remaining = tuple(m for m in state.moderators if m != event.user_id)
            return replace(state, version=version, moderators=remaining)
        case GiftReceived():
            sent = millis(event.sent_at)
            combos, pruned = state.combos, state.combos_pruned_ms
            if sent - pruned >= COMBO_MEMORY_MS:
                # bounded to the senders of the last minute or two; pruned now and then, not per gift
                for sender in [s for s, c in combos.items() if c[3] < sent - COMBO_MEMORY_MS]:
                    del combos[sender]
                pruned = sent
            gifter = state.gifters.get(event.sender_id, [0, 0, 0])
            state.gifters[event.sender_id] = [
                gifter[0] + event.coin_cost,
                event.wallet_seq,
                gifter[2] + event.count,
            ]
            state.combos[event.sender_id] = [
                event.gift_id,
                event.combo_id,
                event.combo_count,
                millis(event.sent_at),
            ]
            return replace(
                state,
                version=version,
                gifts=event.gifts,
                gift_revenue=event.gift_revenue,
                combos_pruned_ms=pruned,
            )
        case GiftRefused():
            gifter = state.gifters.get(event.sender_id, [0, 0, 0])
            state.gifters[event.sender_id] = [gifter[0], event.wallet_seq, gifter[2]]
            return replace(state, version=version)
        case BattleLinked():
            return replace(
                state,
                version=version,
                pk_battle_id=event.battle_id,
                pk_opponent_stream_id=event.opponent_stream_id,
                pk_side=event.side,
            )
        case BattleUnlinked():
            return replace(state, version=version, pk_battle_id="", pk_opponent_stream_id="", pk_side=0)
        case CommentPinned():
            return replace(state, version=version, pinned_comment_id=event.comment_id)
        case CommentDeleted() if event.comment_id == state.pinned_comment_id:
            return replace(state, version=version, pinned_comment_id="")
        case _:
            # rejections and events this aggregate does not fold still take a sequence number
            return replace(state, version=version)
