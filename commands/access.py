"""Who may watch a private stream besides its staff: the `allowedUserIds` list (issue #15)."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field

MAX_ALLOWED_USERS = 200  # a private stream is for a circle, not an audience

UserId = Annotated[str, Field(min_length=1, max_length=128)]


def _distinct(user_ids: list[str]) -> list[str]:
    """Each user once, in the order given: the list is compared and shown as a set."""
    return list(dict.fromkeys(user_ids))


AllowedUsers = Annotated[list[UserId], Field(max_length=MAX_ALLOWED_USERS), AfterValidator(_distinct)]
