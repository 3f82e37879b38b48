"""The stream's chat: comments and their slow mode, likes, pinned and deleted comments."""

from __future__ import annotations

from collections.abc import Callable, Container, Iterable
from typing import Any

from spaktok.commands.base import Rejection
from spaktok.commands.stream.base import Deciders, require_live, require_stream
from spaktok.commands.stream.moderation import moderator_role
from spaktok.commands.stream.state import (
    ANONYMOUS_ACTION,
    COMMENT_MEMORY_MS,
    COMMENT_PRUNE_EVERY_MS,
    LIKE_ID_MEMORY,
    Chat,
    StreamState,
    copy_with,
    millis,
)
from spaktok.commands.streams import (
    DeleteComment,
    FoldShardLikes,
    PinComment,
    RecordLikes,
    SendComment,
    UnpinComment,
)
from spaktok.events.base import Event
from spaktok.events.envelope import derive_id
from spaktok.events.streams import (
    CommentDeleted,
    CommentPinned,
    CommentPosted,
    CommentUnpinned,
    LikesRecorded,
    ShardLikesFolded,
)


def _comment(command: SendComment, state: StreamState) -> list[Event]:
    require_live(state)
    if not state.allow_comments:
        raise Rejection("comments-disabled", "the broadcaster has turned comments off")
    if command.actor_id in state.moderation.banned:
        raise Rejection("user-banned", "you are banned from this stream")
    muted_until = state.moderation.muted_until.get(command.actor_id, 0)
    if millis(command.issued_at) < muted_until:
        left = (muted_until - millis(command.issued_at) + 999) // 1000
        raise Rejection("timed-out", f"you are timed out for another {left} s")
    if not command.text:
        raise Rejection("invalid-comment", "a comment cannot be empty")
    if len(command.text) > command.max_length:
        raise Rejection("invalid-comment", f"a comment is at most {command.max_length} characters")
    last = state.chat.last_comment_ms.get(command.actor_id)
    now_ms = millis(command.issued_at)
    interval = max(command.min_interval_ms, state.slow_mode_ms)  # the stream's slow mode only slows
    if last is not None and now_ms - last < interval:
        raise Rejection("rate-limited", f"one comment per {interval / 1000:g} s")
    return [
        CommentPosted(
            comment_id=derive_id(command.command_id, "comment"),
            user_id=command.actor_id,
            username=command.username,
            user_profile_image=command.user_profile_image,
            text=command.text,
            posted_at=command.issued_at,
            comments=state.chat.comments + 1,
        )
    ]


def count_likes(
    batch: Iterable[tuple[str, str, int]], recent: Container[str], banned: Container[str]
) -> tuple[dict[str, int], list[str]]:
    """The rule for a batch of likes, the stream's and its like shards' alike: taps per user and the
    accepted action ids; a retry of an action already counted, no taps, or a banned user count nothing."""
    seen: set[str] = set()
    likes: dict[str, int] = {}
    action_ids: list[str] = []
    for action_id, user_id, taps in batch:
        if action_id in seen or action_id in recent or taps < 1 or user_id in banned:
            continue  # a client retry of a like already counted
        seen.add(action_id)
        action_ids.append(action_id)
        likes[user_id] = likes.get(user_id, 0) + taps
    return likes, action_ids


def remember_like_ids(ids: dict[str, None], action_ids: Iterable[str]) -> None:
    """Keep the last LIKE_ID_MEMORY accepted action ids (an insertion-ordered set, oldest first)."""
    for action_id in action_ids:
        if not action_id.startswith(ANONYMOUS_ACTION):
            ids[action_id] = None
    for _ in range(len(ids) - LIKE_ID_MEMORY):
        del ids[next(iter(ids))]


def _likes(command: RecordLikes, state: StreamState) -> list[Event]:
    require_live(state)
    likes, action_ids = count_likes(command.likes, state.chat.recent_like_ids, state.moderation.banned)
    if not likes:
        return []
    count = sum(likes.values())
    return [
        LikesRecorded(
            likes=likes,
            count=count,
            total_likes=state.chat.likes + count,
            recorded_at=command.issued_at,
            action_ids=action_ids,
        )
    ]


def _fold_shard_likes(command: FoldShardLikes, state: StreamState) -> list[Event]:
    """A hot stream's like shards report their running totals (commands/stream_shards.py). Only what
    grew counts: a fold sent again, or overtaken by a later one, adds nothing. Folds are taken after
    the end too: likes a shard counted while the stream was live may arrive after the end."""
    require_stream(state)
    folded = state.chat.shard_likes
    moved = {shard: total for shard, total in command.totals.items() if total > folded.get(shard, 0)}
    if not moved:
        return []
    count = sum(total - folded.get(shard, 0) for shard, total in moved.items())
    return [
        ShardLikesFolded(
            count=count, totals=moved, total_likes=state.chat.likes + count, folded_at=command.issued_at
        )
    ]


def _delete_comment(command: DeleteComment, state: StreamState) -> list[Event]:
    """The broadcaster, one of the stream's moderators, or the platform's moderation team.

    Whether the comment exists is checked by the API against the read model: the stream keeps no
    list of its comments (a long stream has hundreds of thousands).
    """
    role = moderator_role(command, state)
    return [
        CommentDeleted(
            comment_id=command.comment_id,
            deleted_by=command.actor_id,
            role=role,
            reason=command.reason,
            deleted_at=command.issued_at,
        )
    ]


def _pin_comment(command: PinComment, state: StreamState) -> list[Event]:
    require_live(state)
    if command.actor_id != state.user_id:
        raise Rejection("not-stream-owner", "only the broadcaster can pin comments")
    pinned = state.chat.pinned_comment_id
    if command.comment_id == pinned:
        return []  # pinned already
    return [
        CommentPinned(
            comment_id=command.comment_id,
            previous_comment_id=pinned or None,
            pinned_by=command.actor_id,
            pinned_at=command.issued_at,
        )
    ]


def _unpin_comment(command: UnpinComment, state: StreamState) -> list[Event]:
    require_stream(state)
    if command.actor_id != state.user_id:
        raise Rejection("not-stream-owner", "only the broadcaster can unpin comments")
    if command.comment_id != state.chat.pinned_comment_id:
        return []  # not the pinned one (unpinned already, or another pinned since)
    return [
        CommentUnpinned(
            comment_id=command.comment_id, unpinned_by=command.actor_id, unpinned_at=command.issued_at
        )
    ]


DECIDERS: Deciders = {
    SendComment: _comment,
    RecordLikes: _likes,
    FoldShardLikes: _fold_shard_likes,
    DeleteComment: _delete_comment,
    PinComment: _pin_comment,
    UnpinComment: _unpin_comment,
}


def _posted(chat: Chat, event: CommentPosted) -> Chat:
    posted = millis(event.posted_at)
    recent = chat.last_comment_ms
    pruned = chat.comments_pruned_ms
    if posted - pruned >= COMMENT_PRUNE_EVERY_MS:
        # forgetting is only to bound memory: an entry older than COMMENT_MEMORY_MS can no
        # longer refuse anything, so pruning now and then (not per comment) is exact
        cutoff = posted - COMMENT_MEMORY_MS
        for user_id in [u for u, t in recent.items() if t <= cutoff]:
            del recent[user_id]
        pruned = posted
    recent[event.user_id] = posted
    return copy_with(chat, comments=event.comments, comments_pruned_ms=pruned)


def _liked(chat: Chat, event: LikesRecorded) -> Chat:
    remember_like_ids(chat.recent_like_ids, event.action_ids)
    return copy_with(chat, likes=event.total_likes)


def _shard_likes_folded(chat: Chat, event: ShardLikesFolded) -> Chat:
    return copy_with(chat, likes=event.total_likes, shard_likes={**chat.shard_likes, **event.totals})


def _pinned(chat: Chat, event: CommentPinned) -> Chat:
    return copy_with(chat, pinned_comment_id=event.comment_id)


def _unpinned(chat: Chat, event: CommentUnpinned) -> Chat:
    return copy_with(chat, pinned_comment_id="")


def _deleted(chat: Chat, event: CommentDeleted) -> Chat:
    if event.comment_id != chat.pinned_comment_id:
        return chat
    return copy_with(chat, pinned_comment_id="")


# how each chat event changes a thawed Chat: the maps in place, the rest replaced
FOLDS: dict[type[Event], Callable[[Chat, Any], Chat]] = {
    CommentPosted: _posted,
    LikesRecorded: _liked,
    ShardLikesFolded: _shard_likes_folded,
    CommentPinned: _pinned,
    CommentUnpinned: _unpinned,
    CommentDeleted: _deleted,
}
