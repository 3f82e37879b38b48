"""Turning a command's outcome into the HTTP answer: result, problem, or 202 with a status URL."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi.responses import JSONResponse

from spaktok.api.problems import Problem
from spaktok.commands.outcome import Outcome


def answer(
    outcome: Outcome | None,
    command_id: str,
    build: Callable[[Outcome], dict[str, Any]],
    *,
    status: int = 200,
    extra: dict[str, Any] | None = None,
) -> JSONResponse:
    """`extra` (e.g. a gift's `transactionId`) is added to the 202 and to a rejection's problem too,
    so a client can name the intent in its receipt whatever the answer was."""
    if outcome is None:
        return JSONResponse(
            {
                "commandId": command_id,
                "status": "pending",
                "statusUrl": f"/v1/commands/{command_id}",
                **(extra or {}),
            },
            status_code=202,
            headers={"Location": f"/v1/commands/{command_id}"},
        )
    if outcome.status == "rejected":
        problem = Problem.from_rejection(outcome.reason, outcome.detail)
        problem.extra.update(extra or {})
        raise problem
    return JSONResponse(build(outcome), status_code=status)


def event_payload(outcome: Outcome, event_type: str) -> dict[str, Any] | None:
    for event in reversed(outcome.events):
        if event["type"] == event_type:
            return dict(event["payload"])
    return None
