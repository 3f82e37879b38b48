"""Follow-ups of platform enforcement between the channel and the stream aggregates (issue #15).

A report resolved with `suspend-user` asks the owner's channel to suspend the account; a suspended
account that is live asks its stream to end (reason `suspended`). Ids derive from the cause, so a
command decided again after a crash forwards the same follow-up once.
"""

from __future__ import annotations

from spaktok.commands.base import Command
from spaktok.commands.enforcement import ResolveReports, SuspendAccount, SuspendStream
from spaktok.commands.enforcement_decide import UPHELD
from spaktok.infra import topics
from spaktok.processors.aggregate import Forward, follow_up
from spaktok.processors.core import Sealed


def suspend_owner(command: ResolveReports, envelopes: list[Sealed], owner_id: str) -> list[Forward]:
    """`suspend-user`: the stream's owner is suspended by the moderator who resolved the report."""
    resolved = next((env for env in envelopes if env.type == "streams.ReportsResolved"), None)
    if resolved is None or command.action != "suspend-user":
        return []
    suspend = SuspendAccount(
        **follow_up(command, "suspend-owner"),
        actor_id=command.actor_id,
        user_id=owner_id,
        reason=command.note or UPHELD,
        report_id=resolved.payload["report_id"],
        platform_moderator=True,
    )
    return [Forward(topics.COMMANDS_BROADCASTERS.name, suspend)]


def end_live_stream(command: Command, envelopes: list[Sealed]) -> list[Forward]:
    """A suspended account that is live: its stream ends with reason `suspended`."""
    forwards = []
    for env in envelopes:
        if env.type == "broadcasters.AccountSuspended" and env.payload.get("stream_id"):
            suspend = SuspendStream(
                **follow_up(command, "suspend-live-stream"),
                actor_id=command.actor_id,
                stream_id=env.payload["stream_id"],
                reason=env.payload["reason"],
                platform_moderator=True,
            )
            forwards.append(Forward(topics.COMMANDS_STREAMS.name, suspend))
    return forwards
