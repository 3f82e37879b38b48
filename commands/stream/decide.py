"""The stream's `decide`: each command goes to the rule of the context that owns it, found by its type."""

from __future__ import annotations

from spaktok.commands.base import Command, Rejection
from spaktok.commands.enforcement_decide import ENFORCEMENT_COMMANDS, decide_enforcement
from spaktok.commands.media_decide import MEDIA_COMMANDS, decide_media
from spaktok.commands.stream import audience, chat, gifting, guests, lifecycle, moderation, pk
from spaktok.commands.stream.base import Deciders
from spaktok.commands.stream.state import StreamState
from spaktok.commands.stream_analytics import record_snapshot
from spaktok.commands.streams import RecordAnalyticsSnapshot
from spaktok.events.base import Event

_BY_CONTEXT: tuple[Deciders, ...] = (
    lifecycle.DECIDERS,
    audience.DECIDERS,
    chat.DECIDERS,
    moderation.DECIDERS,
    guests.DECIDERS,
    gifting.DECIDERS,
    pk.DECIDERS,
    dict.fromkeys(MEDIA_COMMANDS, decide_media),
    dict.fromkeys(ENFORCEMENT_COMMANDS, decide_enforcement),
    {RecordAnalyticsSnapshot: record_snapshot},
)
# command type -> the rule that decides it
DECIDERS: Deciders = {kind: rule for rules in _BY_CONTEXT for kind, rule in rules.items()}
assert len(DECIDERS) == sum(map(len, _BY_CONTEXT)), "one rule per command type"


def decide(command: Command, state: StreamState) -> list[Event]:
    """Events for `command`; raises `Rejection` with a problem slug when it is refused."""
    rule = DECIDERS.get(type(command))
    if rule is None:
        raise Rejection("unsupported-command", f"the stream aggregate does not handle {command.type}")
    return rule(command, state)
