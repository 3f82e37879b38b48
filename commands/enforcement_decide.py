"""The stream's part of platform enforcement: suspension by the platform team and the reports queue.

Reports are grouped in rounds: every report joins the open round `state.report_round`; resolving
it (`ReportsResolved`) closes the round, and the next report by someone who has not reported the
stream before opens the next one. The report's id is `<stream id>-<round>`.
"""

from __future__ import annotations

from spaktok.commands.base import Command, Rejection
from spaktok.commands.enforcement import ResolveReports, SuspendStream
from spaktok.commands.stream_state import StreamState
from spaktok.events.base import Event
from spaktok.events.streams import ReportsResolved, StreamSuspended

ENFORCEMENT_COMMANDS = (SuspendStream, ResolveReports)
UPHELD = "reports upheld by the platform team"  # the suspension reason when a resolution gives none


def report_id(stream_id: str, report_round: int) -> str:
    return f"{stream_id}-{report_round}"


def parse_report_id(value: str) -> tuple[str, int] | None:
    """(stream id, round) of a report id, or None when it is not one (the last `-` splits)."""
    stream_id, _, round_text = value.rpartition("-")
    if not stream_id or not (round_text.isascii() and round_text.isdigit()):
        return None
    if not 0 < int(round_text) < 2**31:
        return None
    return stream_id, int(round_text)


def open_reporters(state: StreamState) -> int:
    """Distinct reporters of the open round (0: no open report)."""
    return sum(1 for r in state.reported_by.values() if r == state.report_round)


def decide_enforcement(command: Command, state: StreamState) -> list[Event]:
    match command:
        case SuspendStream():
            return _suspend(command, state)
        case ResolveReports():
            return _resolve(command, state)
    raise Rejection("unsupported-command", f"no enforcement rule for {command.type}")


def _platform_only(command: SuspendStream | ResolveReports) -> None:
    if not command.platform_moderator:
        raise Rejection("not-platform-moderator", "only the platform's moderation team can do this")


def _suspend(command: SuspendStream, state: StreamState) -> list[Event]:
    _platform_only(command)
    if state.status == "none":
        raise Rejection("stream-not-found", "no stream with this id")
    if state.status != "live":
        raise Rejection("stream-not-live", "the stream has ended")
    return suspension(command, state, command.reason)


def suspension(command: Command, state: StreamState, reason: str) -> list[Event]:
    """Suspended, the broadcaster and the team told, and the stream ended with reason `suspended`."""
    from spaktok.commands.stream_decide import (  # the stream decider imports this module
        MODERATION_TEAM,
        _moderation_notice,
        ending,
    )

    now = command.issued_at
    return [
        StreamSuspended(suspended_at=now, reason=reason, suspended_by=command.actor_id),
        _moderation_notice(command, state, "stream_suspended", [state.user_id, MODERATION_TEAM]),
        *ending(state, now, "suspended"),
    ]


def _resolve(command: ResolveReports, state: StreamState) -> list[Event]:
    _platform_only(command)
    if state.status == "none":
        raise Rejection("stream-not-found", "no stream with this id")
    if command.report_round < state.report_round:
        raise Rejection("report-resolved", "this report was resolved already")
    reporters = open_reporters(state)
    if command.report_round > state.report_round or reporters == 0:
        raise Rejection("report-not-found", "no such report of this stream")
    resolved = ReportsResolved(
        report_id=report_id(command.stream_id, command.report_round),
        report_round=command.report_round,
        action=command.action,
        note=command.note,
        resolved_by=command.actor_id,
        reporters=reporters,
        resolved_at=command.issued_at,
    )
    if command.action == "suspend-stream" and state.status == "live":
        return [resolved, *suspension(command, state, command.note or UPHELD)]
    # suspend-user: the channel suspends the account (a follow-up), which ends the stream if live
    return [resolved]
