"""`spaktok replay`, `spaktok log export` and `spaktok restore`: rebuilding the read models from the
log, archiving the log and putting an archive back (docs/replay.md). Registered on `spaktok` by cli.py."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from spaktok.infra import cli_common
from spaktok.infra.cli_common import console, out
from spaktok.settings import get_settings


def replay(
    broker: Annotated[str | None, typer.Option(help="default: SPAKTOK_BROKER")] = None,
    postgres_dsn: Annotated[str | None, typer.Option(help="default: SPAKTOK_POSTGRES_DSN")] = None,
    switch: Annotated[
        bool, typer.Option(help="swap the rebuilt schema in as `public` (--no-switch: build and keep it)")
    ] = True,
    verify: Annotated[
        bool, typer.Option("--verify", help="after the switch, compare every table with the old one")
    ] = False,
    drop_old: Annotated[
        bool, typer.Option("--drop-old", help="drop the replaced schema (kept as old_<ts> by default)")
    ] = False,
    chunk: Annotated[int, typer.Option(help="events per build transaction")] = 20_000,
    stats_file: Annotated[Path | None, typer.Option(help="also write the figures here as JSON")] = None,
    handlers_only: Annotated[
        bool,
        typer.Option("--handlers-only", help="apply every event with the live projector's SQL (slower)"),
    ] = False,
    postgres: Annotated[bool, typer.Option(help="rebuild the Postgres read models")] = True,
    clickhouse: Annotated[bool, typer.Option(help="rebuild the ClickHouse tables")] = True,
    api: Annotated[
        str | None,
        typer.Option(
            help="with chDB: the API that hosts the ClickHouse projector (e.g. http://127.0.0.1:8000)"
        ),
    ] = None,
    token: Annotated[
        str | None, typer.Option(envvar="SPAKTOK_TOKEN", help="admin bearer token for --api")
    ] = None,
    clickhouse_dsn: Annotated[str | None, typer.Option(help="default: SPAKTOK_CLICKHOUSE_DSN")] = None,
) -> None:
    """Rebuild the Postgres read models and the ClickHouse tables from the event topics and switch over.

    Postgres: into a fresh schema while the live projector runs; it pauses for the switch only.
    ClickHouse: where its projector runs (with chDB: through --api), which pauses meanwhile.
    See docs/replay.md.
    """
    settings = get_settings()
    ch_dsn = clickhouse_dsn or settings.clickhouse_dsn
    if clickhouse and ch_dsn.startswith("chdb:") and not (api and token):
        console.print(
            "[red]ClickHouse is embedded (chDB): only the API process may open it.[/red] Pass --api URL "
            "--token ADMIN_TOKEN (`spaktok token admin-1 --role admin`), or --no-clickhouse."
        )
        raise typer.Exit(2)
    if clickhouse and api is not None and switch:
        # the API process rebuilds ClickHouse while this one rebuilds Postgres: two cores, two stores
        _start_clickhouse_job(api, token, verify, drop_old)
    if postgres:
        _replay_postgres(broker, postgres_dsn, switch, verify, drop_old, chunk, stats_file, handlers_only)
    if clickhouse:
        _replay_clickhouse(broker or settings.broker, ch_dsn, api, token, verify, drop_old, switch)


def _replay_postgres(
    broker: str | None,
    postgres_dsn: str | None,
    switch: bool,
    verify: bool,
    drop_old: bool,
    chunk: int,
    stats_file: Path | None,
    handlers_only: bool,
) -> None:
    from rich.table import Table

    from spaktok.projections.replay import PostgresReplay, compare_schemas

    settings = get_settings()
    job = PostgresReplay(
        postgres_dsn or settings.postgres_dsn, broker or settings.broker, chunk=chunk, fold=not handlers_only
    )
    started = time.perf_counter()
    try:
        job.create_schema()
        total = sum(job.end_offsets().values())
        with events_progress() as progress:
            task = progress.add_task(f"replaying into {job.schema}", total=total or None, rate="-")

            def advance(n: int) -> None:
                elapsed = time.perf_counter() - started
                progress.update(task, advance=n, rate=f"{job.stats.records / max(elapsed, 1e-9):,.0f}")

            job.build(advance)
        if switch:
            with console.status("switching over (the live projector pauses for this)…"):
                job.switch()
        else:
            job.keep_built()
    except Exception as exc:  # noqa: BLE001 - say what failed and what to do
        console.print(f"[red]replay failed:[/red] {exc}")
        console.print(
            f"nothing was switched; the partial schema {job.schema} can be dropped "
            f'(DROP SCHEMA "{job.schema}" CASCADE). Is the stack running? (`spaktok dev`), '
            "or pass --broker / --postgres-dsn"
        )
        job.close()
        raise typer.Exit(1) from exc
    elapsed = time.perf_counter() - started
    s = job.stats
    table = Table(title="replay", show_header=False)
    table.add_row("events read", f"{s.records:,}")
    table.add_row("events applied", f"{s.applied:,} ({s.records - s.applied:,} duplicates/rejections)")
    table.add_row("row writes (as the live projector counts them)", f"{s.rows:,}")
    table.add_row("rows copied (fold) · read back", f"{s.rows_copied:,} · {s.rows_loaded:,}")
    table.add_row(
        "seconds",
        f"{elapsed:.1f} (read {s.seconds_read:.1f}, apply {s.seconds_apply:.1f}, "
        f"switch {s.seconds_switch:.2f})",
    )
    table.add_row("events/s", f"{s.records / max(elapsed, 1e-9):,.0f}")
    table.add_row("applied by SQL handlers", f"{s.sql_events:,} (the rest folded in memory)")
    table.add_row("caught up at the switch", f"{s.caught_up_at_switch:,}")
    table.add_row("refused by a handler", f"{s.failed:,}")
    table.add_row("undecodable", f"{s.undecodable:,}")
    out.print(table)
    if stats_file is not None:
        figures = {k: v for k, v in vars(s).items() if k != "failures"}
        stats_file.write_text(json.dumps({**figures, "seconds": elapsed}))
    for failure in s.failures[:20]:
        out.print(f"[yellow]![/yellow] {failure}", highlight=False)
    problems = 0
    if switch and verify:
        for name, (rows, only_new, only_old) in compare_schemas(job.admin, "public", job.old_schema).items():
            if only_new or only_old:
                problems += 1
                out.print(f"[red]✗[/red] {name}: {rows} rows, {only_new} only rebuilt, {only_old} only live")
        if not problems:
            out.print(f"[green]✓ every table equals the live one it replaced ({job.old_schema})[/green]")
    if switch and drop_old:
        with job.admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{job.old_schema}" CASCADE')
    elif switch:
        out.print(f"switched: the previous read models are kept as schema {job.old_schema}", highlight=False)
    else:
        out.print(f"built schema {job.schema}; nothing switched", highlight=False)
    job.close()
    if problems:
        raise typer.Exit(1)


def _replay_clickhouse(
    broker: str, dsn: str, api: str | None, token: str | None, verify: bool, drop_old: bool, switch: bool
) -> None:
    """Through the API that hosts the ClickHouse projector (chDB), or directly (a ClickHouse server)."""
    if not switch:
        console.print("ClickHouse: --no-switch applies to Postgres only; ClickHouse skipped")
        return
    started = time.perf_counter()
    try:
        with events_progress() as progress:
            task = progress.add_task("ClickHouse: starting", total=None, rate="-")
            if api is not None:
                job = _clickhouse_through_api(api, token, verify, drop_old, progress, task, started)
            else:
                job = _clickhouse_direct(broker, dsn, verify, drop_old, progress, task, started)
    except Exception as exc:  # noqa: BLE001 - say what failed and what to do
        console.print(f"[red]ClickHouse replay failed:[/red] {exc}")
        raise typer.Exit(1) from exc
    if job["status"] != "done":
        console.print(f"[red]ClickHouse replay failed:[/red] {job['error']} ({job['phase']})")
        raise typer.Exit(1)
    figures = job["figures"]
    out.print(
        f"ClickHouse: {figures['records']:,} events read, {figures['rows']:,} rows in {job['seconds']:.1f} s "
        f"(exchange {figures['seconds_switch']:.2f} s); previous tables kept in {job['database']}"
        + (" (dropped)" if drop_old else ""),
        highlight=False,
    )
    if verify:
        differing = [name for name, t in job["tables"].items() if t["differs"]]
        for name in differing:
            out.print(f"[red]✗[/red] ClickHouse {name} differs from the table it replaced")
        if differing:
            raise typer.Exit(1)
        out.print("[green]✓ ClickHouse: every table equals the one it replaced[/green]")


def _clickhouse_through_api(
    api: str, token: str | None, verify: bool, drop_old: bool, progress: Any, task: Any, started: float
) -> dict[str, Any]:
    import httpx

    client = httpx.Client(base_url=api, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    path = "/v1/admin/replay/clickhouse"
    while True:
        job: dict[str, Any] = client.get(path).json()
        rate = job["done"] / max(time.perf_counter() - started, 1e-9)
        progress.update(
            task,
            description=f"ClickHouse: {job['phase']}",
            total=job["total"] or None,
            completed=job["done"],
            rate=f"{rate:,.0f}",
        )
        if job["status"] != "running":
            return job
        time.sleep(0.2)


def _start_clickhouse_job(api: str, token: str | None, verify: bool, drop_old: bool) -> None:
    import httpx

    response = httpx.post(
        f"{api}/v1/admin/replay/clickhouse",
        params={"verify": verify, "dropOld": drop_old},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    if response.status_code != 202:
        console.print(
            f"[red]the API did not start the ClickHouse replay:[/red] {response.status_code} {response.text}"
        )
        raise typer.Exit(1)


def _clickhouse_direct(
    broker: str, dsn: str, verify: bool, drop_old: bool, progress: Any, task: Any, started: float
) -> dict[str, Any]:
    from spaktok.projections.clickhouse import ClickHouse
    from spaktok.projections.replay_clickhouse import ClickHouseReplay

    replay = ClickHouseReplay(ClickHouse(dsn), broker)
    replay.create()
    progress.update(task, description=f"ClickHouse: replaying into {replay.database}")
    progress.update(task, total=sum(replay.end_offsets().values()) or None)

    def advance(n: int) -> None:
        rate = replay.stats.records / max(time.perf_counter() - started, 1e-9)
        progress.update(task, advance=n, rate=f"{rate:,.0f}")

    replay.build(advance)
    replay.switch()
    tables = {t: {"rows": n, "differs": d} for t, (n, d) in replay.compare().items()} if verify else {}
    if drop_old:
        replay.drop()
    replay.close()
    s = replay.stats
    figures = {"records": s.records, "rows": s.rows, "seconds_switch": s.seconds_switch}
    return {
        "status": "done",
        "phase": "done",
        "database": replay.database,
        "seconds": time.perf_counter() - started,
        "figures": figures,
        "tables": tables,
        "error": None,
    }


def events_progress() -> Any:
    """A progress bar of events replayed, with their rate (a task's `rate` field) and the time."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = [
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]} events/s"),
        TimeElapsedColumn(),
    ]
    return Progress(*columns, console=console)


log_app = typer.Typer(no_args_is_help=True, help="Archive the log to a file (docs/replay.md).")


@log_app.command("export")
def log_export(
    out_path: Annotated[Path, typer.Option("--out", help="archive to write (.gz: compressed); replaced")],
    broker: Annotated[str | None, typer.Option(help="default: SPAKTOK_BROKER")] = None,
    events_only: Annotated[
        bool, typer.Option("--events-only", help="only the event topics (not commands, worker state, …)")
    ] = False,
) -> None:
    """Write every topic of the broker (or only the event topics) to an archive file, in offset order."""
    from rich.progress import Progress, SpinnerColumn, TextColumn

    from spaktok.infra import archive

    try:
        columns = [
            SpinnerColumn(),
            TextColumn("{task.description}"),
            TextColumn("{task.completed:,.0f} records"),
        ]
        with Progress(*columns, console=console, transient=True) as progress:
            task = progress.add_task(f"exporting the log to {out_path}", total=None)
            written = archive.export(
                broker or get_settings().broker,
                out_path,
                not events_only,
                lambda n: progress.advance(task, n),
            )
    except Exception as exc:  # noqa: BLE001 - say what failed and what to do
        console.print(f"[red]export failed:[/red] {exc}")
        console.print("is the stack running? (`spaktok dev`), or pass --broker")
        raise typer.Exit(1) from exc
    out.print(f"[green]✓[/green] {written:,} records written to {out_path}", highlight=False)


def restore(
    source: Annotated[
        str, typer.Option("--from", help="`clickhouse` or an archive file (`spaktok log export`)")
    ],
    broker: Annotated[str | None, typer.Option(help="an empty broker; default: SPAKTOK_BROKER")] = None,
    clickhouse_dsn: Annotated[str | None, typer.Option(help="default: SPAKTOK_CLICKHOUSE_DSN")] = None,
) -> None:
    """Republish an archived log into an empty broker, record for record (docs/replay.md)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from spaktok.infra import archive

    settings = get_settings()
    try:
        with console.status(f"reading the archive ({source})…"):
            if source == "clickhouse":
                ch, _ = cli_common.clickhouse(clickhouse_dsn or settings.clickhouse_dsn)
                source_topics, records = archive.read_clickhouse(ch, settings.partitions)
                ch.close()
            else:
                source_topics, records = archive.read_file(Path(source))
        columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
        with Progress(*columns, console=console) as progress:
            task = progress.add_task("republishing", total=len(records))
            report = archive.restore(
                broker or settings.broker,
                source_topics,
                records,
                progress=lambda n: progress.advance(task, n),
            )
    except Exception as exc:  # noqa: BLE001 - say what failed and what to do
        console.print(f"[red]restore failed:[/red] {exc}")
        if "lock" in str(exc).lower():
            console.print("a running API holds the chDB directory: stop the old stack first")
        raise typer.Exit(1) from exc
    out.print(
        f"restored {report.records:,} records into {len(source_topics)} topics in {report.seconds:.1f} s",
        highlight=False,
    )
    for moved in report.moved[:20]:
        out.print(f"[yellow]![/yellow] {moved}", highlight=False)
    if report.moved:
        out.print(
            f"[red]{len(report.moved)} records did not land at their original partition and offset[/red]"
        )
        raise typer.Exit(1)
    out.print("[green]✓ every record is back at its original partition and offset[/green]")
