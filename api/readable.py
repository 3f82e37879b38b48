"""The access policy as FastAPI dependencies: load the stream once, ask `api/access.py`, hand it on.

Every route that shows a stream's data takes one of the `Annotated` aliases below instead of
reading the stream itself, so no read path can forget the check. The follow relation is looked up
only when the answer depends on it (a followers-only stream and an ordinary viewer).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from typing import Annotated, Any

from fastapi import Depends
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import Engine

from spaktok import clock
from spaktok.api.access import (
    ADULT_AGE,
    Access,
    Purpose,
    StreamFacts,
    Viewer,
    moderator_access,
    needs_follow_relation,
    not_found,
    owner_access,
    stream_access,
)
from spaktok.api.auth import Principal
from spaktok.api.deps import CurrentUser, Services, ServicesDep, StreamPath
from spaktok.projections import social, streams_views

Rule = Callable[[StreamFacts, Viewer], Access]


def youngest_age(birth_year: int | None) -> int | None:
    """Only the birth year is known: the youngest age it allows (no birthday yet this year), so an
    age limit never lets a minor through."""
    return clock.now().year - birth_year - 1 if birth_year is not None else None


def is_known_minor(user: Principal) -> bool:
    age = youngest_age(user.birth_year)
    return age is not None and age < ADULT_AGE


def viewer_of(user: Principal, follows: bool = False) -> Viewer:
    return Viewer(user.user_id, user.roles, youngest_age(user.birth_year), follows)


@dataclass(frozen=True, slots=True)
class Admitted:
    """A stream the caller was allowed to see: its document, the facts decided on, the viewer."""

    doc: dict[str, Any]
    facts: StreamFacts
    viewer: Viewer


async def with_follows(engine: Engine, facts: StreamFacts, viewer: Viewer, *, always: bool = False) -> Viewer:
    """The viewer with the follow relation filled in when the policy needs it (or `always`: an open
    feed keeps it for a later switch to followers-only)."""
    if always or needs_follow_relation(facts, viewer):
        follows = await run_in_threadpool(
            social.follows_channel_of_stream, engine, viewer.user_id, facts.stream_id
        )
        return replace(viewer, follows=follows)
    return viewer


async def admit(
    services: Services, user: Principal, stream_id: str, rule: Rule, *, always_follows: bool = False
) -> Admitted:
    """The stream if `rule` allows the caller, else the rule's problem (404 for a missing stream)."""
    doc = await run_in_threadpool(streams_views.get_stream, services.engine, stream_id)
    if doc is None:
        raise not_found(stream_id).problem()
    facts = StreamFacts.from_document(doc)
    viewer = await with_follows(services.engine, facts, viewer_of(user), always=always_follows)
    rule(facts, viewer).check()
    return Admitted(doc, facts, viewer)


def _guard(rule: Rule) -> Callable[..., Any]:
    async def dependency(stream_id: StreamPath, user: CurrentUser, services: ServicesDep) -> Admitted:
        return await admit(services, user, stream_id, rule)

    return dependency


def policy(purpose: Purpose) -> Rule:
    return partial(stream_access, purpose=purpose)


ReadableStream = Annotated[Admitted, Depends(_guard(policy("document")))]
"""The stream's document: privacy, bans, followers-only and age apply; suspension does not."""
StreamContent = Annotated[Admitted, Depends(_guard(policy("content")))]
"""Comments, viewers, leaderboard: the document's rules plus suspension."""
WatchableStream = Annotated[Admitted, Depends(_guard(policy("watch")))]
"""Replay and playback URLs: the content's rules, and an age-restricted stream needs a known adult."""
AnalyticsStream = Annotated[Admitted, Depends(_guard(partial(owner_access, what="a stream's analytics")))]
HealthStream = Annotated[Admitted, Depends(_guard(partial(owner_access, what="a stream's ingest health")))]
EventLogStream = Annotated[Admitted, Depends(_guard(partial(owner_access, what="a stream's event log")))]
ModeratedStream = Annotated[Admitted, Depends(_guard(moderator_access))]


# -- the heartbeat asks at every beat: the stream's facts are shared for a moment ------------------

FACTS_TTL_S = 1.0  # a heartbeat's playback URL may lag a ban or privacy change by this much
FACTS_KEPT = 10_000
_recent: dict[tuple[int, str], tuple[float, StreamFacts | None]] = {}


def _fresh(key: tuple[int, str]) -> tuple[float, StreamFacts | None] | None:
    cached = _recent.get(key)
    return cached if cached is not None and time.monotonic() - cached[0] < FACTS_TTL_S else None


def _read_facts(engine: Engine, key: tuple[int, str]) -> StreamFacts | None:
    """Read the stream's facts and share them (blocking: runs in a worker thread)."""
    doc = streams_views.get_stream(engine, key[1])
    facts = StreamFacts.from_document(doc) if doc is not None else None
    if len(_recent) >= FACTS_KEPT:
        del _recent[next(iter(_recent))]
    _recent[key] = (time.monotonic(), facts)
    return facts


_reading: dict[tuple[int, str], asyncio.Future[StreamFacts | None]] = {}


async def shared_facts(engine: Engine, stream_id: str) -> StreamFacts | None:
    """The stream's facts read at most `FACTS_TTL_S` ago, shared by every request of this process
    (every comment, like batch, gift and heartbeat asks); no worker-thread hop while fresh.

    One read per stream at a time: requests that find the facts stale while they are being read
    wait for that read (started after the expiry, so fresher than the TTL asks) instead of each
    starting their own."""
    key = (id(engine), stream_id)
    cached = _fresh(key)
    if cached is not None:
        return cached[1]
    reading = _reading.get(key)
    if reading is None or reading.get_loop() is not asyncio.get_running_loop():
        reading = _reading[key] = asyncio.ensure_future(_read_shared(engine, key))
    return await asyncio.shield(reading)


async def _read_shared(engine: Engine, key: tuple[int, str]) -> StreamFacts | None:
    try:
        return await run_in_threadpool(_read_facts, engine, key)
    finally:
        if _reading.get(key) is asyncio.current_task():
            del _reading[key]


async def admit_participant(
    services: Services, user: Principal, stream_id: str, *, banned_may: bool = False
) -> None:
    """Speaking in a stream (a comment, likes, a gift, a report) needs what reading its content needs:
    a caller who may not see a stream may not post into it either (a stranger of a followers-only
    stream, a minor on an age-restricted one, an outsider of a private one: its 404).

    Asked of the stream's facts shared for `FACTS_TTL_S`, so a change of privacy or a ban reaches
    this edge check within that second (the stream's decider refuses banned users exactly). A stream
    not projected yet is the decider's to judge, as for a join. `banned_may`: a report goes to the
    platform, not the broadcaster, so a broadcaster cannot silence a reporter by banning them."""
    facts = await shared_facts(services.engine, stream_id)
    if facts is None:
        return
    viewer = await with_follows(services.engine, facts, viewer_of(user))
    access = stream_access(facts, viewer, "content")
    if not (banned_may and access.slug == "user-banned"):
        access.check()
