"""The answer to one command, published on `spaktok.outcomes` for the API call that waits for it."""

from __future__ import annotations

from typing import Any, Literal

import orjson
from pydantic import BaseModel


class Outcome(BaseModel):
    """`accepted` with the events it produced, `rejected` with a problem slug, or `noop`."""

    command_id: str
    correlation_id: str
    command_type: str
    aggregate_id: str
    status: Literal["accepted", "rejected", "noop"]
    actor_id: str | None = None  # who asked (None in outcomes recorded before it was carried)
    reason: str | None = None
    detail: str | None = None
    events: list[dict[str, Any]] = []  # the last events decided (type, sequence, payload)
    stats: dict[str, Any] = {}
    # an edge batch's answer to each member (user id -> {"status", ...}); a member not named was a
    # no-op (e.g. a viewer already watching)
    answers: dict[str, dict[str, Any]] = {}

    def to_bytes(self) -> bytes:
        return orjson.dumps(self.model_dump(mode="json"))

    @classmethod
    def from_bytes(cls, raw: bytes) -> Outcome:
        return cls.model_validate(orjson.loads(raw))
