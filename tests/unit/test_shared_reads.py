"""The API's per-process copies of read models (api/suspension.py, api/readable.py): requests that
find a copy stale while it is being read wait for that one read instead of each starting their own."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from spaktok.api import readable, suspension


def _slow(result: Any, calls: list[str], release: threading.Event) -> Any:
    def read(engine: object, *args: Any) -> Any:
        calls.append("read")
        release.wait(5)
        return result

    return read


async def _concurrently(n: int, call: Any, calls: list[str], release: threading.Event) -> list[Any]:
    tasks = [asyncio.ensure_future(call()) for _ in range(n)]
    while not calls:
        await asyncio.sleep(0.001)
    await asyncio.sleep(0.02)  # the others arrive while the read runs
    release.set()
    return await asyncio.gather(*tasks)


def test_the_suspended_accounts_are_read_once_for_all_who_find_them_stale(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[str] = []
    release = threading.Event()
    monkeypatch.setattr(suspension, "suspended_accounts", _slow({"eve": None}, calls, release))
    accounts = suspension.SuspendedAccounts()

    async def check() -> bool:
        await accounts.refresh_if_stale(engine=None)  # type: ignore[arg-type]
        return accounts.is_suspended("eve")

    assert asyncio.run(_concurrently(20, check, calls, release)) == [True] * 20
    assert calls == ["read"]
    assert not accounts.is_suspended("ann")
    accounts._read_at = time.monotonic() - suspension.SNAPSHOT_TTL_S  # stale again: read again
    asyncio.run(accounts.refresh_if_stale(engine=None))  # type: ignore[arg-type]
    assert calls == ["read", "read"]


def test_a_streams_facts_are_read_once_for_all_who_find_them_stale(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    release = threading.Event()
    doc = {"streamId": "s1", "userId": "host", "privacy": "public"}
    monkeypatch.setattr(readable.streams_views, "get_stream", _slow(doc, calls, release))
    engine = object()

    async def facts() -> Any:
        return await readable.shared_facts(engine, "s1")  # type: ignore[arg-type]

    got = asyncio.run(_concurrently(20, facts, calls, release))
    assert calls == ["read"] and {f.stream_id for f in got} == {"s1"} and not readable._reading
    assert asyncio.run(facts()).owner_id == "host" and calls == ["read"]  # fresh: no read at all
