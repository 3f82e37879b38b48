"""The audience-shard decider: the followers of one shard of a channel, and who gets notified."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from spaktok.commands import parts
from spaktok.commands.audiences import AddFollower, NotifyFollowers, RemoveFollower
from spaktok.commands.base import Command, Rejection
from spaktok.events.audiences import FollowerAdded, FollowerRemoved, FollowersNotified
from spaktok.events.base import Event

RECIPIENTS_PER_NOTICE = 1000  # one notification record per this many recipients


def recipient_batches(recipients: Iterable[str]) -> list[list[str]]:
    """Recipients in a stable order, cut into notice-sized batches (none when nobody is there)."""
    ordered = sorted(recipients)
    return [ordered[i : i + RECIPIENTS_PER_NOTICE] for i in range(0, len(ordered), RECIPIENTS_PER_NOTICE)]


@dataclass(frozen=True, slots=True)
class AudienceState:
    version: int = 0
    followers: dict[str, int] = field(default_factory=dict)  # follower -> followed at (ms)

    def stats(self) -> dict[str, Any]:
        return {"followers": len(self.followers)}

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "followers": self.followers}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AudienceState:
        return cls(**data)


def split(state: AudienceState) -> tuple[dict[str, Any], dict[str, Any]]:
    """The followers in the record up to one part's worth, beyond that in parts by user
    (`commands.parts`): a shard of a channel with millions of followers holds ~100,000 of them,
    stored whole 5.3 MB with uuid user ids (over a producer request) and rewritten by every follow."""
    main: dict[str, Any] = {"version": state.version}
    return main, parts.inline_or_split(main, "followers", state.followers)


def join(main: dict[str, Any], contents: dict[str, Any]) -> AudienceState:
    followers = parts.inline_or_joined(main, contents, "followers")
    return AudienceState.from_dict({**main, "followers": followers})


def thaw(state: AudienceState) -> AudienceState:
    return replace(state, followers=dict(state.followers))


def decide(command: Command, state: AudienceState) -> list[Event]:
    match command:
        case AddFollower():
            if command.follower_id in state.followers:
                return []
            return [FollowerAdded(follower_id=command.follower_id, followed_at=command.issued_at)]
        case RemoveFollower():
            if command.follower_id not in state.followers:
                return []
            return [FollowerRemoved(follower_id=command.follower_id)]
        case NotifyFollowers():
            return [
                FollowersNotified(
                    notification_id=command.notification_id,
                    kind=command.kind,
                    channel_id=command.channel_id,
                    stream_id=command.stream_id,
                    schedule_id=command.schedule_id,
                    title=command.title,
                    actor_name=command.actor_name,
                    recipients=batch,
                    sent_at=command.issued_at,
                )
                for batch in recipient_batches(state.followers)
            ]
    raise Rejection("unsupported-command", f"the audience aggregate does not handle {command.type}")


def evolve(state: AudienceState, event: Event) -> AudienceState:
    """Changes a thawed state in place (a shard can hold many followers)."""
    version = state.version + 1
    match event:
        case FollowerAdded():
            state.followers[event.follower_id] = int(event.followed_at.timestamp() * 1000)
        case FollowerRemoved():
            state.followers.pop(event.follower_id, None)
    return replace(state, version=version)
