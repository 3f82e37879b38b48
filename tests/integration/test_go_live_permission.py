"""The permission to go live over HTTP (spec §3.1, issue #18), on a stack of its own started with
`SPAKTOK_STREAMING_MIN_AGE=18`: an unknown age and a minor are refused with 403
`streaming-not-permitted`, an adult goes live, a suspended adult gets 403 `account-suspended`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from harness import Api, eventually, problem, start_stack, uid

from spaktok.api.auth import mint_token
from spaktok.settings import Settings

pytestmark = pytest.mark.integration

ADULT = {"birth_year": datetime.now(UTC).year - 30}
MINOR = {"birth_year": datetime.now(UTC).year - 15}
BODY = {"title": "Hello", "category": "chat"}


@pytest.fixture(scope="module")
def user() -> Iterator[Callable[..., Api]]:
    stack, cleanup = start_stack("permission", env={"SPAKTOK_STREAMING_MIN_AGE": "18"})

    def make(user_id: str, **claims: Any) -> Api:
        return Api(stack.api_url, mint_token(Settings(), user_id, **claims))

    try:
        yield make
    finally:
        cleanup()


def test_an_unknown_age_or_a_minor_may_not_go_live(user: Callable[..., Api]) -> None:
    unknown = user(uid("unknown")).post("/v1/streams", json=BODY)
    problem(unknown, 403, "streaming-not-permitted")
    assert "add your date of birth" in unknown.json()["detail"]
    minor = user(uid("minor"), **MINOR).post("/v1/streams", json=BODY)
    problem(minor, 403, "streaming-not-permitted")
    assert "aged 18 or over" in minor.json()["detail"]


def test_an_adult_goes_live_unless_suspended(user: Callable[..., Api]) -> None:
    adult_id = uid("adult")
    adult, admin = user(adult_id, **ADULT), user(uid("admin"), roles=["admin"])
    started = adult.post("/v1/streams", json=BODY)
    assert started.status_code == 201, started.text
    sid = started.json()["streamId"]
    suspended = admin.put(f"/v1/admin/users/{adult_id}/suspension", json={"reason": "abuse"})
    assert suspended.status_code == 200, suspended.text

    def refused() -> None:
        again = adult.post("/v1/streams", json=BODY)
        problem(again, 403, "account-suspended")
        assert "until reinstated" in again.json()["detail"]

    eventually(refused)  # refused while suspended, whether or not the slot is free again

    def ended() -> None:
        assert adult.get(f"/v1/streams/{sid}").json()["status"] == "ended"

    eventually(ended)  # a suspension while live ends the live stream
