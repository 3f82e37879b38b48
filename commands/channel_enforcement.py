"""The channel's part of platform enforcement: account suspension and reinstatement (issue #15).

The channel (one per user) is where going live is decided, so its suspension refuses `StartStream`
exactly, with no read-model lag. Comments and gifts are decided by other aggregates; they are
refused at the API from the `account_suspensions` read model instead (docs/security.md).
"""

from __future__ import annotations

from datetime import datetime

from spaktok.commands.base import Rejection
from spaktok.commands.enforcement import ReinstateAccount, SuspendAccount
from spaktok.events.base import Event
from spaktok.events.broadcasters import AccountReinstated, AccountSuspended

ACCOUNT_COMMANDS = (SuspendAccount, ReinstateAccount)


def _millis(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def is_suspended(suspended: bool, until_ms: int | None, now: datetime) -> bool:
    """A suspension holds until reinstated, or until its `until` has passed."""
    return suspended and (until_ms is None or _millis(now) < until_ms)


def decide_account(
    command: SuspendAccount | ReinstateAccount,
    suspended: bool,
    until_ms: int | None,
    active_stream_id: str | None,
) -> list[Event]:
    if not command.platform_moderator:
        raise Rejection("not-platform-moderator", "only the platform's moderation team can do this")
    now = command.issued_at
    if isinstance(command, SuspendAccount):
        if command.until is not None and command.until <= now:
            raise Rejection("suspension-in-past", "`until` must be in the future")
        return [
            AccountSuspended(
                reason=command.reason,
                until=command.until,
                suspended_by=command.actor_id,
                suspended_at=now,
                stream_id=active_stream_id,
                report_id=command.report_id,
            )
        ]
    if not is_suspended(suspended, until_ms, now):
        return []  # not suspended (or the suspension ran out): nothing to lift
    return [AccountReinstated(reinstated_by=command.actor_id, reinstated_at=now)]


def evolve_account(event: AccountSuspended | AccountReinstated) -> tuple[bool, int | None]:
    """(suspended, until in ms) after the event."""
    if isinstance(event, AccountReinstated):
        return False, None
    return True, None if event.until is None else _millis(event.until)
