"""What a notice on `spaktok.notifications` becomes on a device: its category, who of its recipients
gets a push under their preferences, and the message (docs/notifications.md). Pure: no I/O.

Every notice type carries a `kind` (`stream_started`, `pk_invited`, …); users mute coarser
*categories* of them, the ones a settings screen shows: `go-live`, `schedule`, `moderation`, `pk`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from spaktok.events.audiences import FollowersNotified
from spaktok.events.battles import BattleNotified
from spaktok.events.schedules import RemindersNotified
from spaktok.events.streams import ModerationNotified

Notice = FollowersNotified | RemindersNotified | ModerationNotified | BattleNotified
NOTICE_TYPES: tuple[type[Notice], ...] = (
    FollowersNotified,
    RemindersNotified,
    ModerationNotified,
    BattleNotified,
)
NOTICE_WIRE_NAMES = frozenset(cls.model_fields["type"].default for cls in NOTICE_TYPES)

Category = Literal["go-live", "schedule", "moderation", "pk"]


def category_of(notice: Notice) -> Category:
    """The mutable category: by the notice's type, and for followers' notices by its kind."""
    match notice:
        case BattleNotified():
            return "pk"
        case ModerationNotified():
            return "moderation"
        case RemindersNotified():
            return "schedule"
        case FollowersNotified():
            return "go-live" if notice.kind == "stream_started" else "schedule"


@dataclass(frozen=True, slots=True)
class Preferences:
    """One user's mutes. No row: nothing muted."""

    muted_channels: frozenset[str] = frozenset()
    muted_kinds: frozenset[str] = frozenset()

    def allows(self, notice: Notice) -> bool:
        return notice.channel_id not in self.muted_channels and category_of(notice) not in self.muted_kinds


NOTHING_MUTED = Preferences()


def is_user(recipient: str) -> bool:
    """`role:moderation` names whoever holds a role: roles live in tokens, not in a directory, so
    such a notice reaches the in-app inbox of the role's holders but no device."""
    return not recipient.startswith("role:")


def push_recipients(notice: Notice, preferences: Mapping[str, Preferences]) -> list[str]:
    """The notice's recipients who get a push: users (not roles) who did not mute its channel or
    its category. Order kept, each once (a batch never repeats one, a retried one may)."""
    return [
        r
        for r in dict.fromkeys(notice.recipients)
        if is_user(r) and preferences.get(r, NOTHING_MUTED).allows(notice)
    ]


@dataclass(frozen=True, slots=True)
class PushMessage:
    """What every provider formats: a visible title and body, string data for the app to route
    on, and a collapse key (a newer push for the same occasion replaces an unread older one)."""

    title: str
    body: str
    data: dict[str, str]
    collapse_key: str
    thread: str  # grouping on the device: the channel


TEXTS: dict[str, tuple[str, str]] = {
    "stream_started": ("{actor} is live", "{title}"),
    "schedule_announced": ("{actor} scheduled a stream", "{title}"),
    "schedule_reminder": ("{actor} goes live soon", "{title}"),
    "schedule_due": ("{actor} is about to go live", "{title}"),
    "schedule_cancelled": ("{actor} cancelled a stream", "{title}"),
    "pk_invited": ("PK battle invitation", "{actor} challenged you: {title}"),
    "pk_declined": ("PK battle declined", "{actor} declined your challenge"),
    "pk_ended": ("PK battle over", "{title}"),
}
MODERATION_TEXT = ("Moderation: {kind}", "{title}")


def message_for(notice: Notice) -> PushMessage:
    """The push for `notice`; unknown kinds (a newer producer) get the moderation wording's shape."""
    title, body = TEXTS.get(notice.kind, MODERATION_TEXT)
    values = {"actor": notice.actor_name, "title": notice.title, "kind": notice.kind.replace("_", " ")}
    data = {
        "notificationId": notice.notification_id,
        "kind": notice.kind,
        "category": category_of(notice),
        "channelId": notice.channel_id,
    }
    for key, value in (
        ("streamId", getattr(notice, "stream_id", None)),
        ("scheduleId", getattr(notice, "schedule_id", None)),
    ):
        if value:
            data[key] = value
    return PushMessage(
        title=title.format(**values),
        body=body.format(**values),
        data=data,
        collapse_key=notice.notification_id,
        thread=notice.channel_id,
    )
