"""Who may see a stream: one pure policy for every read path, the feed and playback (docs/security.md).

The policy is a function of two records and no I/O, so every route, the realtime feed and its
re-checks ask the same question the same way:

- `StreamFacts`: what the stream's read model says (owner, privacy, age flag, moderators (the
  stream's own and the channel's, issue #18: both count as "stream moderators" below), guests,
  bans, allowed users, status, moderation status);
- `Viewer`: what the caller's token and relations say (user id, roles, youngest possible age,
  whether they follow the broadcaster).

Precedence (first match wins), chosen so a refusal never tells an outsider more than it must:

1. platform staff (roles `admin`, `moderation`) and the owner: allowed;
2. private and the caller is not a stream moderator, guest or allowed user: 404 `stream-not-found`,
   the same answer as a missing stream (a banned outsider gets it too: existence stays hidden);
3. stream moderators and guests: allowed;
4. banned: 403 `user-banned`;
5. followers-only and the caller does not follow the broadcaster: 403 `followers-only`;
6. age-restricted and the caller is known to be under 18: 403 `age-restricted` (to *watch*,
   an unknown age is refused too, as the join decider does);
7. suspended by moderation: the document stays readable (it says why), its content and media do
   not: 403 `stream-suspended`.

`Purpose` says how much is asked: the `document` only, the stream's `content` (comments, viewers,
leaderboard, the feed) or to `watch` it (join, playback and replay URLs).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from spaktok.api.problems import Problem

Purpose = Literal["document", "content", "watch"]
STAFF_ROLES = frozenset({"admin", "moderation"})
ADULT_AGE = 18
PRIVACIES = ("public", "followers", "private")


def _ids(values: Iterable[str] | None) -> frozenset[str]:
    return frozenset(values or ())


COUNTS = ("status", "viewerCount", "peakViewerCount", "totalViews", "likes", "comments", "playbackUrl")


@dataclass(frozen=True, slots=True)
class StreamFacts:
    """The access-relevant part of a stream's read model."""

    stream_id: str
    owner_id: str
    privacy: str = "public"
    is_age_restricted: bool = False
    moderators: frozenset[str] = frozenset()
    guests: frozenset[str] = frozenset()
    banned: frozenset[str] = frozenset()
    allowed: frozenset[str] = frozenset()
    status: str = "live"
    moderation_status: str | None = None
    channel_moderators: frozenset[str] = frozenset()
    like_shards: int = 0  # likes and heartbeats go to this many shards (commands/stream_shards.py)
    # the stream's counts as the document showed them, in the shape of a command outcome's stats: a
    # hot stream's heartbeat is decided by a shard, which does not know them
    counts: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @staticmethod
    def from_document(doc: Mapping[str, Any]) -> StreamFacts:
        """From the camelCase stream document; `allowedUserIds` may be absent (counts as empty)."""
        return StreamFacts(
            stream_id=doc["streamId"],
            owner_id=doc["userId"],
            privacy=doc.get("privacy") or "public",
            is_age_restricted=bool(doc.get("isAgeRestricted")),
            moderators=_ids(doc.get("moderators")),
            guests=_ids(doc.get("guestUsers")),
            banned=_ids(doc.get("bannedUsers")),
            allowed=_ids(doc.get("allowedUserIds")),
            status=doc.get("status") or "live",
            moderation_status=doc.get("moderationStatus"),
            channel_moderators=_ids(doc.get("channelModerators")),
            like_shards=int(doc.get("likeShards") or 0),
            counts={name: doc.get(name) for name in COUNTS},
        )

    @property
    def suspended(self) -> bool:
        return self.moderation_status == "suspended"

    def moderated_by(self, user_id: str) -> bool:
        """A moderator of the stream, named for it or for the broadcaster's whole channel."""
        return user_id in self.moderators or user_id in self.channel_moderators


@dataclass(frozen=True, slots=True)
class Viewer:
    """The caller as the policy sees it. `age` is the youngest age the token's birth year allows."""

    user_id: str
    roles: frozenset[str] = field(default_factory=frozenset)
    age: int | None = None
    follows: bool = False

    @property
    def is_staff(self) -> bool:
        return bool(self.roles & STAFF_ROLES)

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles


@dataclass(frozen=True, slots=True)
class Access:
    """Allowed (status 200) or refused with an HTTP status and a problem slug."""

    status: int = 200
    slug: str = ""
    detail: str = ""

    @property
    def allowed(self) -> bool:
        return self.status == 200

    def problem(self) -> Problem:
        return Problem(self.status, self.slug, self.detail)

    def check(self) -> None:
        """Raise the refusal as a problem; nothing when allowed."""
        if not self.allowed:
            raise self.problem()


ALLOWED = Access()


def not_found(stream_id: str) -> Access:
    """The one answer for a missing stream and a private one the caller may not know of."""
    return Access(404, "stream-not-found", f"no stream {stream_id!r}")


def is_insider(stream: StreamFacts, viewer: Viewer) -> bool:
    """Owner, staff, stream moderator, guest or allowed user: who may know a private stream exists."""
    uid = viewer.user_id
    return (
        viewer.is_staff
        or uid == stream.owner_id
        or stream.moderated_by(uid)
        or uid in stream.guests
        or uid in stream.allowed
    )


def needs_follow_relation(stream: StreamFacts, viewer: Viewer) -> bool:
    """Whether the answer depends on `viewer.follows`: only look it up when this is true."""
    uid = viewer.user_id
    if stream.privacy != "followers" or viewer.is_staff or uid == stream.owner_id:
        return False
    return not stream.moderated_by(uid) and uid not in stream.guests


def stream_access(stream: StreamFacts, viewer: Viewer, purpose: Purpose = "content") -> Access:
    """May `viewer` see `stream` for `purpose`? The precedence is the module docstring's."""
    uid = viewer.user_id
    if viewer.is_staff or uid == stream.owner_id:
        return ALLOWED
    if stream.privacy == "private" and not is_insider(stream, viewer):
        return not_found(stream.stream_id)
    if stream.moderated_by(uid) or uid in stream.guests:
        return ALLOWED
    if uid in stream.banned:
        return Access(403, "user-banned", "you are banned from this stream")
    if stream.privacy == "followers" and not viewer.follows:
        return Access(403, "followers-only", "follow the broadcaster to watch this stream")
    if stream.is_age_restricted:
        minor = viewer.age is not None and viewer.age < ADULT_AGE
        if minor or (purpose == "watch" and viewer.age is None):
            return Access(403, "age-restricted", f"this stream is for viewers aged {ADULT_AGE} or over")
    if stream.suspended and purpose != "document":
        return Access(403, "stream-suspended", "this stream was suspended by the platform's moderation")
    return ALLOWED


def owner_access(stream: StreamFacts, viewer: Viewer, what: str) -> Access:
    """Owner or admin only (analytics, event log, ingest health); a private stream's outsider gets
    the 404 a missing stream gets, everybody else who may not read `what` a 403 `forbidden`."""
    if viewer.user_id == stream.owner_id or viewer.is_admin:
        return ALLOWED
    if stream.privacy == "private" and not is_insider(stream, viewer):
        return not_found(stream.stream_id)
    return Access(403, "forbidden", f"only the broadcaster or an admin can read {what}")


def moderator_access(stream: StreamFacts, viewer: Viewer) -> Access:
    """The moderation log: the owner, the stream's moderators and platform staff."""
    if viewer.is_staff or viewer.user_id == stream.owner_id or stream.moderated_by(viewer.user_id):
        return ALLOWED
    if stream.privacy == "private" and not is_insider(stream, viewer):
        return not_found(stream.stream_id)
    return Access(403, "not-moderator", "only the broadcaster or a moderator can read the moderation log")


# -- an open feed: which events can take access away, and the facts after them ---------------------

ACCESS_EVENTS = frozenset(
    {
        "streams.UserBanned",
        "streams.UserUnbanned",
        "streams.StreamUpdated",
        "streams.StreamSuspended",
        "streams.StreamEnded",
        "streams.ModeratorAdded",
        "streams.ModeratorRemoved",
        "streams.ChannelModeratorsChanged",
        "streams.GuestJoined",
        "streams.GuestRemoved",
    }
)


def facts_after(facts: StreamFacts, kind: str, payload: Mapping[str, Any]) -> StreamFacts:
    """The facts once event `kind` (wire name, JSON payload) happened; unchanged for other events."""
    if kind == "streams.UserBanned":
        user = payload["user_id"]
        return replace(facts, banned=facts.banned | {user}, guests=facts.guests - {user})
    if kind == "streams.UserUnbanned":
        return replace(facts, banned=facts.banned - {payload["user_id"]})
    if kind == "streams.StreamUpdated":
        changes = payload.get("changes") or {}
        if "privacy" in changes:
            facts = replace(facts, privacy=changes["privacy"])
        if "is_age_restricted" in changes:
            facts = replace(facts, is_age_restricted=bool(changes["is_age_restricted"]))
        if "allowed_user_ids" in changes:
            facts = replace(facts, allowed=_ids(changes["allowed_user_ids"]))
        return facts
    suspended = kind == "streams.StreamEnded" and payload.get("reason") == "suspended"
    if kind == "streams.StreamSuspended" or suspended:
        return replace(facts, moderation_status="suspended")
    if kind == "streams.ModeratorAdded":
        return replace(facts, moderators=facts.moderators | {payload["user_id"]})
    if kind == "streams.ModeratorRemoved":
        return replace(facts, moderators=facts.moderators - {payload["user_id"]})
    if kind == "streams.ChannelModeratorsChanged":
        return replace(facts, channel_moderators=_ids(payload.get("moderators")))
    if kind == "streams.GuestJoined":
        return replace(facts, guests=_ids(payload.get("guests")) | {payload["user_id"]})
    if kind == "streams.GuestRemoved":
        return replace(facts, guests=facts.guests - {payload["user_id"]})
    return facts
