"""The stream aggregate's state and `evolve`: how each stream event changes it."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal

from spaktok.events.base import Event
from spaktok.events.streams import (
    CommentPosted,
    HeartbeatsRecorded,
    LikesRecorded,
    StreamEnded,
    StreamStarted,
    ViewerJoined,
    ViewerLeft,
)

COMMENT_MEMORY_MS = 300_000  # last comment per user kept this long: the longest slow mode allowed
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
    last_comment_ms: dict[str, int] = field(default_factory=dict)
    recent_like_ids: tuple[str, ...] = ()

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
        return {name: getattr(self, name) for name in self.__dataclass_fields__}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StreamState:
        data = dict(data)
        data["recent_like_ids"] = tuple(data.get("recent_like_ids", ()))
        return cls(**data)


def evolve(state: StreamState, event: Event) -> StreamState:
    """Apply one event. Never mutates `state`; only the collections that change are copied."""
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
            )
        case StreamEnded():
            return replace(state, version=version, status="ended", ended_ms=millis(event.ended_at))
        case ViewerJoined():
            at = millis(event.joined_at)
            viewers = {**state.viewers, event.user_id: [at, at]}
            watch_time = state.watch_time
            if event.user_id not in watch_time:
                watch_time = {**watch_time, event.user_id: 0}
            return replace(
                state,
                version=version,
                viewers=viewers,
                watch_time=watch_time,
                peak_viewer_count=max(state.peak_viewer_count, len(viewers)),
            )
        case ViewerLeft():
            viewers = dict(state.viewers)
            viewers.pop(event.user_id, None)
            watch_time = {**state.watch_time, event.user_id: event.watch_time}
            return replace(state, version=version, viewers=viewers, watch_time=watch_time)
        case HeartbeatsRecorded():
            viewers = dict(state.viewers)
            for user_id, at in event.beats.items():
                seen = viewers.get(user_id)
                if seen is not None:
                    viewers[user_id] = [seen[0], max(seen[1], millis(at))]
            return replace(state, version=version, viewers=viewers)
        case CommentPosted():
            recent = {
                u: t
                for u, t in state.last_comment_ms.items()
                if t > millis(event.posted_at) - COMMENT_MEMORY_MS
            }
            recent[event.user_id] = millis(event.posted_at)
            return replace(state, version=version, comments=event.comments, last_comment_ms=recent)
        case LikesRecorded():
            keyed = tuple(a for a in event.action_ids if not a.startswith(ANONYMOUS_ACTION))
            ids = (state.recent_like_ids + keyed)[-LIKE_ID_MEMORY:] if keyed else state.recent_like_ids
            return replace(state, version=version, likes=event.total_likes, recent_like_ids=ids)
        case _:
            # rejections and events this aggregate does not fold still take a sequence number
            return replace(state, version=version)
