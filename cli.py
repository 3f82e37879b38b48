"""The `spaktok` command: run the dev stack, mint tokens, run each process alone."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import typer

from spaktok.infra import cli_common, replay_cli
from spaktok.infra.cli_common import console, out
from spaktok.infra.contracts_cli import app as contracts_app
from spaktok.settings import get_settings

app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="Spaktok Live: event-sourced live streaming."
)


def _logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@app.command()
def dev(
    port: Annotated[int, typer.Option(help="API port")] = 8000,
    data_dir: Annotated[Path, typer.Option(help="where Postgres, chDB and logs live")] = Path(".spaktok"),
    partitions: Annotated[int, typer.Option(help="partitions per topic")] = 4,
    workers: Annotated[
        int, typer.Option(min=1, max=16, help="Faust worker processes sharing the partitions (one group)")
    ] = 1,
    projectors: Annotated[
        int, typer.Option(min=1, max=16, help="Postgres projector processes sharing the partitions")
    ] = 1,
    apis: Annotated[
        int, typer.Option(min=1, max=16, help="API processes sharing --port; each has a private port too")
    ] = 1,
    media: Annotated[
        bool, typer.Option("--media", help="also run nginx-rtmp: RTMP ingest, signed HLS, recordings")
    ] = False,
    rtmp_port: Annotated[int, typer.Option(help="RTMP port with --media")] = 1935,
    media_port: Annotated[int, typer.Option(help="HLS/recordings HTTP port with --media")] = 8080,
    restore_from: Annotated[
        Path | None,
        typer.Option("--restore", help="republish this archive (`spaktok log export`) into the fresh broker"),
    ] = None,
) -> None:
    """Start broker, Postgres, ClickHouse (chDB), worker, projector and API; Ctrl-C stops them all.

    With --media also nginx with the RTMP module (when installed; otherwise it says how to install it).
    """
    from spaktok.api.auth import mint_token
    from spaktok.infra import nginx
    from spaktok.infra.devstack import DevStack

    if media and nginx.missing_media_tools():
        console.print(f"[yellow]--media: missing {', '.join(nginx.missing_media_tools())}[/yellow]")
        console.print(f"{nginx.INSTALL_HINT}; starting without the media server.")
        media = False
    stack = DevStack(
        data_dir=data_dir,
        api_port=port,
        partitions=partitions,
        workers=workers,
        projectors=projectors,
        apis=apis,
        media=media,
        rtmp_port=rtmp_port if media else None,
        media_http_port=media_port if media else None,
        restore_from=restore_from,
    )
    stopping = threading.Event()

    def _stop(*_: object) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        with console.status("starting the embedded stack (broker, Postgres, chDB, worker, projector, API)…"):
            stack.start()
    except Exception as exc:  # noqa: BLE001 - say what failed and where to look
        stack.stop()
        console.print(f"[red]the dev stack did not start:[/red] {exc}")
        console.print(f"logs: {stack.log_dir}")
        raise typer.Exit(1) from exc
    token = mint_token(get_settings(), "dev-user", name="Dev User")
    out.print(f"API: {stack.api_url}", highlight=False, soft_wrap=True)
    if apis > 1:
        out.print(f"API processes (each alone): {' '.join(stack.api_urls())}", highlight=False)
    out.print(f"Token: {token}", highlight=False, soft_wrap=True)
    out.print(
        f"Broker: {stack.broker}  Postgres: {stack.postgres_dsn}  Logs: {stack.log_dir}",
        highlight=False,
        soft_wrap=True,
    )
    if media:
        out.print(
            f"RTMP ingest: {stack.rtmp_url} (stream key from POST /v1/streams)  "
            f"HLS/replays: {stack.media_http_url} (signed URLs from the API)",
            highlight=False,
            soft_wrap=True,
        )
    else:
        console.print(
            f"no media server (run with --media; it needs nginx-rtmp and ffmpeg: {nginx.INSTALL_HINT})"
        )
    console.print(
        "[yellow]The dev broker keeps its log in memory: read models were reset at start and are "
        "consistent with this run only.[/yellow] Ctrl-C to stop."
    )
    sys.stdout.flush()
    while not stopping.wait(0.5):
        for name, proc in list(stack.processes.items()):
            if proc.poll() is not None:
                console.print(f"[red]{name} exited with code {proc.returncode}[/red]; see {stack.log_dir}")
                stopping.set()
    with console.status("stopping…"):
        stack.stop()
    console.print("stopped.")


@app.command()
def token(
    user_id: str,
    name: Annotated[str | None, typer.Option()] = None,
    picture: Annotated[str | None, typer.Option()] = None,
    role: Annotated[list[str] | None, typer.Option(help="admin, moderation; repeatable")] = None,
    premium: Annotated[bool, typer.Option("--premium")] = False,
    birth_year: Annotated[int | None, typer.Option()] = None,
    country: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Print a bearer token the API (with the same settings) accepts."""
    from spaktok.api.auth import mint_token

    out.print(
        mint_token(
            get_settings(),
            user_id,
            name=name,
            picture=picture,
            roles=role or [],
            premium=premium,
            birth_year=birth_year,
            country=country,
        ),
        highlight=False,
        soft_wrap=True,
    )


@app.command()
def api(
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8000,
    log_level: Annotated[str, typer.Option()] = "warning",
    reuse_port: Annotated[
        bool, typer.Option("--reuse-port", help="share --port with other API processes (SO_REUSEPORT)")
    ] = False,
    private_port: Annotated[
        int | None, typer.Option(help="also listen here: this process alone (docs/operations.md)")
    ] = None,
) -> None:
    """Run the API alone (hosts the ClickHouse projector when the DSN is chdb:)."""
    from spaktok.api.app import create_app
    from spaktok.api.serve import serve

    _logging(log_level)
    app_ = create_app(get_settings())
    serve(app_, host, port, reuse_port=reuse_port, private_port=private_port, log_level=log_level)


@app.command()
def worker(log_level: Annotated[str, typer.Option(envvar="SPAKTOK_WORKER_LOG_LEVEL")] = "warn") -> None:
    """Run the Faust worker alone (deciders for every aggregate)."""
    from spaktok.processors.app import run_worker

    sys.argv = [sys.argv[0]]  # Faust's worker parses argv itself
    run_worker(get_settings(), loglevel=log_level)


@app.command()
def project(log_level: Annotated[str, typer.Option()] = "warning") -> None:
    """Run the Postgres projector (and the ClickHouse one when ClickHouse is a server)."""
    from spaktok.projections.main import run_projectors

    _logging(log_level)
    run_projectors(get_settings())


app.add_typer(contracts_app, name="contracts")  # docs/events.md
ledger_app = typer.Typer(no_args_is_help=True, help="Audit the coin ledger (DESIGN §3).")
app.add_typer(ledger_app, name="ledger")


@ledger_app.command("check")
def ledger_check(
    broker: Annotated[str | None, typer.Option(help="default: SPAKTOK_BROKER")] = None,
    postgres_dsn: Annotated[str | None, typer.Option(help="default: SPAKTOK_POSTGRES_DSN")] = None,
    wait: Annotated[
        float, typer.Option(help="seconds to wait for in-flight gifts and lagging read models")
    ] = 0.0,
    log_only: Annotated[
        bool, typer.Option("--log-only", help="check the event log, not the read models")
    ] = False,
    receipts: Annotated[
        Path | None,
        typer.Option(help="a client's receipts (JSON lines, docs/money.md) to reconcile with the log"),
    ] = None,
    receipts_complete: Annotated[
        bool,
        typer.Option("--receipts-complete", help="the receipts name every transaction: fail on any other"),
    ] = False,
) -> None:
    """Replay every coin movement from the log, check the invariants and compare the read models.

    Exits 1 on any difference (with each one listed), 2 when gifts are still in flight.
    """
    from rich.table import Table
    from sqlalchemy import create_engine

    from spaktok.projections import ledger

    settings = get_settings()
    kept = _read_receipts(receipts) if receipts is not None else None
    engine = None if log_only else create_engine(postgres_dsn or settings.postgres_dsn)
    try:
        with console.status("reading the money events from the log…"):
            report, differences = ledger.check(broker or settings.broker, engine, wait_s=wait)
    except Exception as exc:  # noqa: BLE001 - say what to do next
        console.print(f"[red]could not audit:[/red] {exc}")
        console.print("is the stack running? (`spaktok dev`), or pass --broker / --postgres-dsn")
        raise typer.Exit(1) from exc
    table = Table(title="coin ledger", show_header=False)
    for name, value in ledger.summary_rows(report):
        table.add_row(name, f"{value:,}")
    out.print(table)
    problems = report.problems + differences
    if kept is not None:
        problems += _reconcile_receipts(kept, report.transactions, receipts_complete)
    for problem in problems[:200]:
        out.print(f"[red]✗[/red] {problem}", highlight=False)
    if len(problems) > 200:
        out.print(f"… and {len(problems) - 200} more")
    if problems:
        raise typer.Exit(1)
    if not report.settled:
        pending = len(report.in_flight) + len(report.awaiting_refund) + len(report.awaiting_credit)
        out.print(f"[yellow]{pending} gift(s) still in flight[/yellow]; run again, or pass --wait 30")
        raise typer.Exit(2)
    out.print("[green]✓ every coin accounted for[/green]")


def _read_receipts(path: Path) -> Any:
    """The receipts file parsed, or exit 1 saying which line is wrong."""
    from spaktok.projections.receipts import read_receipts

    try:
        with path.open("rb") as lines:
            return read_receipts(lines)
    except (OSError, ValueError) as exc:
        console.print(f"[red]cannot read the receipts:[/red] {exc}")
        raise typer.Exit(1) from exc


def _reconcile_receipts(kept: Any, transactions: Any, complete: bool) -> list[str]:
    """Print how the receipts matched the log; the failures, each with its transaction ids."""
    from rich.table import Table

    from spaktok.projections.receipts import reconcile

    result = reconcile(kept, transactions, complete=complete)
    table = Table(title="receipts", show_header=False)
    table.add_row("receipts", f"{result.receipts:,}")
    for outcome, n in sorted(result.counts.items()):
        table.add_row(outcome, f"{n:,}")
    out.print(table)
    return result.problems()


app.command()(replay_cli.replay)
app.add_typer(replay_cli.log_app, name="log")
app.command()(replay_cli.restore)


audit_app = typer.Typer(no_args_is_help=True, help="Audit gifts and moderation from the event log.")
app.add_typer(audit_app, name="audit")


class AuditKind(StrEnum):
    gifts = "gifts"
    moderation = "moderation"


class ExportFormat(StrEnum):
    csv = "csv"
    parquet = "parquet"


@audit_app.command("export")
def audit_export(
    kind: Annotated[AuditKind, typer.Option(help="which audit")],
    fmt: Annotated[ExportFormat, typer.Option("--format", help="file format")],
    out: Annotated[Path, typer.Option(help="file to write (replaced)")],
    stream: Annotated[str | None, typer.Option(help="only this stream")] = None,
    user: Annotated[
        str | None, typer.Option(help="gifts: sender or receiver; moderation: target or actor")
    ] = None,
    since: Annotated[datetime | None, typer.Option(help="from this time, inclusive (UTC if no zone)")] = None,
    until: Annotated[
        datetime | None, typer.Option(help="up to this time, exclusive (UTC if no zone)")
    ] = None,
    api: Annotated[
        str | None,
        typer.Option(help="read through this API (e.g. http://127.0.0.1:8000) instead of ClickHouse"),
    ] = None,
    token: Annotated[str | None, typer.Option(envvar="SPAKTOK_TOKEN", help="bearer token for --api")] = None,
    clickhouse_dsn: Annotated[str | None, typer.Option(help="default: SPAKTOK_CLICKHOUSE_DSN")] = None,
) -> None:
    """Export the gift or moderation audit to CSV or Parquet, oldest first (docs/analytics.md)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn

    from spaktok.projections import audit, audit_export

    def utc(value: datetime | None) -> datetime | None:
        return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value

    flt = audit.AuditFilter(stream_id=stream, user_id=user, since=utc(since), until=utc(until))
    out.parent.mkdir(parents=True, exist_ok=True)
    columns = [SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn()]
    try:
        with Progress(*columns, console=console, transient=True) as progress:
            if api is not None:
                pages, total, source = _api_pages(api, token, kind.value, flt), None, api
            else:
                ch, source = cli_common.clickhouse(clickhouse_dsn or get_settings().clickhouse_dsn)
                total = audit.count(ch, kind.value, flt)
                pages = audit_export.clickhouse_pages(ch, kind.value, flt)
            task = progress.add_task(f"exporting the {kind.value} audit from {source}", total=total)
            written = audit_export.write(
                pages, kind.value, fmt.value, out, lambda n: progress.advance(task, n)
            )
    except Exception as exc:  # noqa: BLE001 - say what failed and what to do
        console.print(f"[red]export failed:[/red] {exc}")
        if api is None and "lock" in str(exc).lower():
            console.print("the API process holds the chDB directory: pass --api URL --token TOKEN (admin)")
        raise typer.Exit(1) from exc
    console.print(f"[green]✓[/green] {written:,} {kind.value} rows written to {out} ({fmt.value})")


class SqlFormat(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


@app.command()
def sql(
    query: Annotated[str, typer.Argument(help="one reading statement (SELECT, WITH, SHOW, DESCRIBE, …)")],
    fmt: Annotated[SqlFormat, typer.Option("--format", help="how to print the result")] = SqlFormat.table,
    api: Annotated[str | None, typer.Option(help="ask this API (e.g. http://127.0.0.1:8000)")] = None,
    token: Annotated[
        str | None, typer.Option(envvar="SPAKTOK_TOKEN", help="bearer token for --api (analyst or admin)")
    ] = None,
    clickhouse: Annotated[
        str | None, typer.Option(help="ask this ClickHouse (DSN) directly; not chDB while the API runs")
    ] = None,
    max_rows: Annotated[int, typer.Option(min=1, help="refuse a bigger result")] = 10_000,
    max_seconds: Annotated[float, typer.Option(min=0.001, help="stop the query after this long")] = 10.0,
) -> None:
    """Read-only SQL on the analytics store (docs/analytics.md "Analysts' SQL")."""
    from spaktok.projections import sql_client
    from spaktok.projections.clickhouse_sql import SqlLimits, SqlRefused

    limits = SqlLimits(max_rows=max_rows, max_seconds=max_seconds)
    try:
        if api:
            result = sql_client.via_api(api, token, query, limits)
        else:
            result = sql_client.via_clickhouse(clickhouse or get_settings().clickhouse_dsn, query, limits)
    except SqlRefused as refused:
        console.print(f"[red]{refused.kind}:[/red] {refused.detail}", highlight=False)
        raise typer.Exit(1) from refused
    sql_client.write(result, fmt.value, out)


class ReportFormat(StrEnum):
    png = "png"
    html = "html"
    both = "both"


class StreamNotFound(LookupError):
    """The analytics store has no such stream (yet)."""


@app.command()
def report(
    stream_id: Annotated[str, typer.Argument(help="the stream to report on")],
    out_dir: Annotated[Path, typer.Option("--out", help="directory for the files")] = Path("."),
    fmt: Annotated[ReportFormat, typer.Option("--format", help="which files")] = ReportFormat.both,
    api: Annotated[
        str | None,
        typer.Option(help="read through this API (e.g. http://127.0.0.1:8000) instead of ClickHouse"),
    ] = None,
    token: Annotated[
        str | None, typer.Option(envvar="SPAKTOK_TOKEN", help="bearer token for --api (broadcaster or admin)")
    ] = None,
    clickhouse_dsn: Annotated[str | None, typer.Option(help="default: SPAKTOK_CLICKHOUSE_DSN")] = None,
) -> None:
    """Write a PNG and/or HTML report of a stream's analytics: viewers, gift revenue, top gifters."""
    from rich.table import Table

    from spaktok.projections import analytics_report

    source = api or clickhouse_dsn or get_settings().clickhouse_dsn
    try:
        with console.status(f"reading the analytics of {stream_id} from {source}…"):
            data = _report_analytics(stream_id, api, token, clickhouse_dsn)
    except StreamNotFound as exc:
        console.print(f"[red]no stream {stream_id!r}[/red] in the analytics store of {source}: {exc}")
        console.print("check the id (GET /v1/streams/ID); a stream just started appears within seconds")
        raise typer.Exit(1) from exc
    except Exception as exc:  # noqa: BLE001 - say what failed and what to do
        import httpx

        console.print(f"[red]could not read the analytics:[/red] {exc}")
        if isinstance(exc, httpx.TransportError):
            console.print(
                f"is the API running at {api}? (`spaktok dev` prints its address), or read ClickHouse "
                "directly with --clickhouse-dsn"
            )
        elif api is None and "lock" in str(exc).lower():
            console.print("the API process holds the chDB directory: pass --api URL --token TOKEN")
        raise typer.Exit(1) from exc
    formats = ["png", "html"] if fmt is ReportFormat.both else [fmt.value]
    with console.status("drawing the report…"):
        written = analytics_report.write(data, out_dir, formats)  # type: ignore[arg-type]
    table = Table(title=f"stream {data['streamId']}", show_header=False)
    for name, value in analytics_report.rows_of_totals(data):
        table.add_row(name, value)
    out.print(table)
    for path in written:
        console.print(f"[green]✓[/green] {path}", highlight=False)


def _report_analytics(
    stream_id: str, api: str | None, token: str | None, clickhouse_dsn: str | None
) -> dict[str, Any]:
    """The getStreamAnalytics answer, from ClickHouse or through the API."""
    if api is None:
        from spaktok import clock
        from spaktok.projections.analytics import stream_analytics

        settings = get_settings()
        ch, _ = cli_common.clickhouse(clickhouse_dsn or settings.clickhouse_dsn)
        found = stream_analytics(
            ch, stream_id, now=clock.now(settings), coin_value_usd=settings.coin_value_usd
        )
        if found is None:
            raise StreamNotFound("its log has no StreamStarted")
        return found
    import httpx

    if not token:
        raise ValueError("--api needs --token (the broadcaster's or an admin's: `spaktok token ID`)")
    with httpx.Client(base_url=api, headers={"Authorization": f"Bearer {token}"}, timeout=30) as client:
        response = client.get(f"/v1/streams/{quote(stream_id, safe='')}/analytics")
    detail = cli_common.detail(response)
    if response.status_code == 404 and cli_common.problem_type(response).endswith("/stream-not-found"):
        raise StreamNotFound(detail)
    if response.status_code != 200:
        raise ValueError(f"the API answered {response.status_code}: {detail}")
    return response.json()  # type: ignore[no-any-return]


def _api_pages(api: str, token: str | None, kind: str, flt: Any) -> Any:
    import httpx

    from spaktok.projections import audit_export

    if not token:
        raise ValueError("--api needs --token (an admin token: `spaktok token ID --role admin`)")
    client = httpx.Client(base_url=api, headers={"Authorization": f"Bearer {token}"}, timeout=30)

    def get(path: str, params: dict[str, Any]) -> dict[str, Any]:
        response = client.get(path, params=params)
        if response.status_code != 200:
            detail = (
                response.json().get("detail", response.text) if response.content else response.status_code
            )
            raise ValueError(f"{path} answered {response.status_code}: {detail}")
        return response.json()  # type: ignore[no-any-return]

    return audit_export.api_pages(get, kind, flt)  # type: ignore[arg-type]


topics_app = typer.Typer(no_args_is_help=True, help="The broker's topics, from the topic registry.")
app.add_typer(topics_app, name="topics")


@topics_app.command("apply")
def topics_apply(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="print the plan, change nothing")] = False,
    grow_partitions: Annotated[
        bool,
        typer.Option("--grow-partitions", help="add partitions where fewer than configured (moves keys)"),
    ] = False,
    broker: Annotated[str | None, typer.Option(help="default: SPAKTOK_BROKER")] = None,
) -> None:
    """Create missing topics, set differing configs, add partitions on request (never remove)."""
    from spaktok.infra import topics_apply as applier

    settings = get_settings() if broker is None else get_settings().model_copy(update={"broker": broker})
    raise typer.Exit(applier.run(settings, dry_run=dry_run, out=out, grow_partitions=grow_partitions))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
