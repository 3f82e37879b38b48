"""Rebuilding the ClickHouse tables from the log where the ClickHouse projector runs (admin).

With chDB only this process may open the ClickHouse directory, so `spaktok replay` asks this API to
rebuild: the projector it hosts pauses, the tables are rebuilt and exchanged, and a new projector
resumes after the rebuilt rows (docs/replay.md).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from spaktok.api.clickhouse_host import on_clickhouse_host
from spaktok.api.deps import CurrentUser, ServicesDep
from spaktok.api.problems import Problem
from spaktok.projections.clickhouse import events_runner
from spaktok.projections.replay_clickhouse import ClickHouseReplay
from spaktok.projections.runner import ProjectionRunner

log = logging.getLogger(__name__)
router = APIRouter(tags=["admin"])


@dataclass
class ReplayJob:
    status: str = "running"  # running | done | failed
    phase: str = "starting"
    done: int = 0
    total: int = 0
    database: str = ""
    error: str | None = None
    started: float = field(default_factory=time.monotonic)
    figures: dict[str, Any] = field(default_factory=dict)
    tables: dict[str, dict[str, int]] = field(default_factory=dict)

    def document(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "phase": self.phase,
            "done": self.done,
            "total": self.total,
            "database": self.database,
            "error": self.error,
            "seconds": round(time.monotonic() - self.started, 3),
            "figures": self.figures,
            "tables": self.tables,
        }


def _run(app: Any, job: ReplayJob, verify: bool, drop_old: bool) -> None:
    services = app.state.services
    runner: ProjectionRunner = app.state.clickhouse_runner
    replay = ClickHouseReplay(services.clickhouse, services.settings.broker)
    job.database = replay.database
    switched = False
    try:
        job.phase = "pausing the ClickHouse projector"
        runner.stop(timeout=60)  # it finishes the batch it is inserting, then stops
        if runner._thread is not None and runner._thread.is_alive():
            raise RuntimeError("the ClickHouse projector did not stop within 60 s; nothing was changed")
        job.phase = "creating " + replay.database
        replay.create()
        job.total = sum(replay.end_offsets().values())
        job.phase = "replaying"

        def advance(n: int) -> None:
            job.done += n

        replay.build(advance)
        job.phase = "exchanging tables"
        replay.switch()
        switched = True
        if verify:
            job.phase = "verifying"
            job.tables = {t: {"rows": n, "differs": d} for t, (n, d) in replay.compare().items()}
        if drop_old:
            replay.drop()
        s = replay.stats
        job.figures = {
            "records": s.records,
            "rows": s.rows,
            "undecodable": s.undecodable,
            "seconds_read": s.seconds_read,
            "seconds_apply": s.seconds_apply,
            "seconds_switch": s.seconds_switch,
        }
        job.status, job.phase = "done", "done"
    except Exception as exc:  # noqa: BLE001 - reported to the caller, who says what to do
        log.exception("ClickHouse replay failed")
        job.status, job.error = "failed", f"{type(exc).__name__}: {exc}"
        if not switched:
            job.phase = (
                f"failed before the switch: the live tables are untouched ({replay.database} can be dropped)"
            )
    finally:
        replay.close()
        if runner._thread is None or not runner._thread.is_alive():  # else it never stopped: keep it
            resumed = events_runner(services.settings, services.clickhouse, runner.producer)
            resumed.start()
            app.state.clickhouse_runner = resumed


@router.post("/v1/admin/replay/clickhouse", status_code=202)
@on_clickhouse_host
async def start_clickhouse_replay(
    request: Request, user: CurrentUser, services: ServicesDep, verify: bool = False, dropOld: bool = False
) -> JSONResponse:
    """Start rebuilding the ClickHouse tables from the log; poll the GET for progress."""
    if "admin" not in user.roles:
        raise Problem(403, "forbidden", "replaying the log needs the admin role")
    if getattr(request.app.state, "clickhouse_runner", None) is None:
        raise Problem(
            409,
            "clickhouse-projector-elsewhere",
            "this API does not run the ClickHouse projector (ClickHouse is a server): stop "
            "`spaktok project` and run `spaktok replay` without --api instead",
        )
    current: ReplayJob | None = getattr(request.app.state, "clickhouse_replay", None)
    if current is not None and current.status == "running":
        raise Problem(409, "replay-running", "a ClickHouse replay is already running", job=current.document())
    job = ReplayJob()
    request.app.state.clickhouse_replay = job
    threading.Thread(
        target=_run, args=(request.app, job, verify, dropOld), name="clickhouse-replay", daemon=True
    ).start()
    return JSONResponse(job.document(), status_code=202)


@router.get("/v1/admin/replay/clickhouse")
@on_clickhouse_host
async def clickhouse_replay_status(request: Request, user: CurrentUser) -> dict[str, Any]:
    """The last ClickHouse replay of this process: phase, records done of total, figures."""
    if "admin" not in user.roles:
        raise Problem(403, "forbidden", "replaying the log needs the admin role")
    job: ReplayJob | None = getattr(request.app.state, "clickhouse_replay", None)
    if job is None:
        raise Problem(404, "no-replay", "no ClickHouse replay has run in this API process")
    return job.document()
