"""Platform enforcement commands (issue #15): the platform team suspends streams and accounts and
resolves the reports queue. The API admits only the roles `admin` and `moderation`; the commands
carry `platform_moderator` so the deciders refuse anyone else all the same."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from spaktok.commands.base import register_command
from spaktok.commands.broadcasters import BroadcasterCommand
from spaktok.commands.streams import StreamCommand

ReportAction = Literal["dismiss", "suspend-stream", "suspend-user"]


@register_command
class SuspendStream(StreamCommand):
    """End a live stream with reason `suspended`; also sent by a channel whose account was suspended."""

    type: Literal["streams.SuspendStream"] = "streams.SuspendStream"
    reason: str = Field(min_length=1, max_length=500)
    platform_moderator: bool = False


@register_command
class ResolveReports(StreamCommand):
    """Close the open report of round `report_round` of this stream with an action."""

    type: Literal["streams.ResolveReports"] = "streams.ResolveReports"
    report_round: int = Field(ge=1)
    action: ReportAction
    note: str | None = Field(None, max_length=1000)
    platform_moderator: bool = False


@register_command
class SuspendAccount(BroadcasterCommand):
    """`user_id` is the account; a later suspension replaces the earlier one (reason, `until`)."""

    type: Literal["broadcasters.SuspendAccount"] = "broadcasters.SuspendAccount"
    reason: str = Field(min_length=1, max_length=500)
    until: datetime | None = None
    report_id: str | None = Field(None, max_length=100)
    platform_moderator: bool = False


@register_command
class ReinstateAccount(BroadcasterCommand):
    type: Literal["broadcasters.ReinstateAccount"] = "broadcasters.ReinstateAccount"
    platform_moderator: bool = False
