"""The edge check of account suspension for actions other aggregates decide (comments, gifts).

Going live is refused by the channel aggregate itself, exactly. A comment or a gift is decided by
the stream and the wallet, which know nothing of the account, so the API refuses them from the
`account_suspensions` read model. That model trails the log by the projector's lag (normally well
under a second): an action sent within that window after a suspension may still pass, and one sent
just after a reinstatement may still be refused (docs/security.md, "Platform enforcement").
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime

from fastapi.concurrency import run_in_threadpool
from sqlalchemy import Engine

from spaktok import clock
from spaktok.api.auth import Principal
from spaktok.api.deps import Services
from spaktok.api.problems import Problem
from spaktok.projections.enforcement import suspended_accounts

SNAPSHOT_TTL_S = 1.0  # how long the process trusts its copy of the suspended accounts


class SuspendedAccounts:
    """A per-process copy of the suspended accounts, read again at most once per `SNAPSHOT_TTL_S`.

    Suspended accounts are few, comments and gifts are many: one small read a second for the whole
    process instead of one read per comment or gift on the hot path. The copy adds at most
    `SNAPSHOT_TTL_S` to the projector's lag.

    One read at a time: the requests that find the copy stale while it is being read wait for that
    read instead of starting their own (under load, dozens started at each expiry)."""

    def __init__(self) -> None:
        self._read_at = float("-inf")
        self._until: dict[str, datetime | None] = {}
        self._reading: asyncio.Future[None] | None = None

    async def refresh_if_stale(self, engine: Engine) -> None:
        if time.monotonic() - self._read_at < SNAPSHOT_TTL_S:
            return
        reading = self._reading
        if reading is None or reading.get_loop() is not asyncio.get_running_loop():
            reading = self._reading = asyncio.ensure_future(self._read(engine))
        await asyncio.shield(reading)

    async def _read(self, engine: Engine) -> None:
        """Read the copy. It starts after the old one expired: what it returns is fresher than any
        copy the TTL lets a request use."""
        try:
            until = await run_in_threadpool(suspended_accounts, engine)
            self._until, self._read_at = until, time.monotonic()
        finally:
            if self._reading is asyncio.current_task():
                self._reading = None

    def is_suspended(self, user_id: str, now: datetime | None = None) -> bool:
        """`now` None: the clock, read only for a user in the copy (a stat of the offset file)."""
        if user_id not in self._until:
            return False
        until = self._until[user_id]
        return until is None or until > (now or clock.now())


_accounts = SuspendedAccounts()


async def account_suspended(services: Services, user: Principal) -> bool:
    await _accounts.refresh_if_stale(services.engine)
    return _accounts.is_suspended(user.user_id)


async def refuse_if_suspended(services: Services, user: Principal, doing: str) -> None:
    """403 `account-suspended` while the caller's account is suspended."""
    if await account_suspended(services, user):
        raise Problem(403, "account-suspended", f"your account is suspended: you cannot {doing}")
