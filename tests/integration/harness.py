"""Starting a real stack for tests and talking to it: shared by the integration test modules."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from spaktok.infra.devstack import DevStack, free_port

LIVE_VIEWER_COUNT_INTERVAL_MS = 1000
# a load test is a few users making the traffic of many (a bench in miniature): their per-user rate is
# raised, the per-stream like cap and the named classes keep their defaults (docs/security.md "Limits")
LOAD_TEST_LIMITS = {"SPAKTOK_RATE_LIMIT_DEFAULT": "100000/10 seconds"}


def _docker_available() -> bool:
    try:
        import docker

        docker.from_env().ping()
        return True
    except Exception:  # noqa: BLE001
        return False


def start_stack(
    name: str, env: dict[str, str] | None = None, **options: Any
) -> tuple[DevStack, Callable[[], None]]:
    """`options` go to DevStack (e.g. `media=True` also runs nginx-rtmp)."""
    data_dir = Path(tempfile.mkdtemp(prefix=f"spaktok-{name}-"))
    cleanups: list[Callable[[], None]] = []
    stack = DevStack(data_dir=data_dir, api_port=free_port(), partitions=4, **options)
    # the live feed's 5 s viewer-count throttle, shortened so tests can watch it work
    stack.extra_env.setdefault("SPAKTOK_LIVE_VIEWER_COUNT_INTERVAL_MS", str(LIVE_VIEWER_COUNT_INTERVAL_MS))
    stack.extra_env.update(env or {})
    if os.environ.get("SPAKTOK_TEST_STACK") == "containers":
        if not _docker_available():
            raise RuntimeError("SPAKTOK_TEST_STACK=containers needs a running Docker engine")
        from testcontainers.clickhouse import ClickHouseContainer
        from testcontainers.kafka import KafkaContainer
        from testcontainers.postgres import PostgresContainer

        kafka = KafkaContainer().with_kraft().start()
        pg = PostgresContainer("postgres:17", driver="psycopg").start()
        ch = ClickHouseContainer().start()
        cleanups += [kafka.stop, pg.stop, ch.stop]
        stack.external_broker = kafka.get_bootstrap_server()
        stack.postgres_dsn = pg.get_connection_url()
        stack.clickhouse_dsn = f"http://{ch.get_container_host_ip()}:{ch.get_exposed_port(8123)}"
    try:
        stack.start()
    except Exception:
        for name_ in stack.processes:
            log = stack.log_dir / f"{name_}.log"
            if log.exists():
                print(f"--- {name_} log ---\n{log.read_text()[-3000:]}")  # noqa: T201 - shown on failure
        stack.stop()
        raise

    def cleanup() -> None:
        stack.stop()
        for fn in cleanups:
            fn()
        if os.environ.get("SPAKTOK_KEEP_TEST_DATA"):
            print(f"kept test data (logs, databases) in {data_dir}")  # noqa: T201 - asked for
        else:
            shutil.rmtree(data_dir, ignore_errors=True)

    return stack, cleanup


class Api:
    """An HTTP client for one user of the running API."""

    def __init__(self, base_url: str, token: str | None) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.client = httpx.Client(base_url=base_url, headers=headers, timeout=15)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)


def eventually(check: Callable[[], Any], timeout: float = 20.0, interval: float = 0.05) -> Any:
    """Poll until `check` returns without AssertionError (read models are eventually consistent).

    A KeyError is retried too: a read of a stream the projection has not written yet answers a 404
    problem, whose body lacks the list the check indexes (a CI run failed on exactly that). Either
    error still raises once the timeout has passed."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except (AssertionError, KeyError):
            if time.monotonic() > deadline:
                raise
            time.sleep(interval)


def uid(prefix: str) -> str:
    """A fresh id for a test's user or stream: tests share one stack and must not collide."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def problem(response: Any, status: int, slug: str) -> None:
    """The answer is the problem `slug` with `status`."""
    assert response.status_code == status, response.text
    assert response.json()["type"].endswith(f"/{slug}")
