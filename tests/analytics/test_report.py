"""`spaktok report` on chDB: the files it writes, checked against the simulation's own books."""

from __future__ import annotations

import base64
import html
import random
import re
import struct
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import matplotlib.image
import pytest
from history import START, Positions, StreamSim, build, play_stream, project
from typer.testing import CliRunner

from spaktok.cli import app
from spaktok.projections import analytics_report
from spaktok.projections.analytics import stream_analytics
from spaktok.projections.clickhouse import ClickHouse

SEED = 31
EVIL = ['<script>alert("x")</script>', "$\\frac{", "Tom & Jerry's"]


@pytest.fixture(scope="module")
def history(ch: ClickHouse) -> tuple[StreamSim, StreamSim]:
    ended, live, _ = build(SEED, ch)
    return ended, live


@pytest.fixture(scope="module")
def hostile(ch: ClickHouse) -> StreamSim:
    """A stream whose biggest gifters chose names that are markup, TeX and entities."""
    rng = random.Random(5)
    sim = StreamSim("s-report-names", "host-names", int(START.timestamp() * 1000), rng, Positions())
    play_stream(sim, rng, minutes=10, audience=[f"n-{i}" for i in range(8)], end=False)
    for i, name in enumerate(EVIL):
        for _ in range(3):
            sim.now_ms += 1000
            sim.gift(f"evil-{i}", name=name)
    sim.now_ms += 1000
    sim.end()
    project(ch, sim.records, rng)
    return sim


class Tables(HTMLParser):
    """Every table of the page by id: rows of cell texts (entities decoded)."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.current: list[list[str]] | None = None
        self.cell: list[str] | None = None
        self.images: list[str] = []
        self.scripts = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self.current = self.tables.setdefault(dict(attrs)["id"] or "", [])
        elif tag == "tr" and self.current is not None:
            self.current.append([])
        elif tag in ("td", "th"):
            self.cell = []
        elif tag == "img":
            self.images.append(dict(attrs)["src"] or "")
        elif tag == "script":
            self.scripts += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self.cell is not None and self.current is not None:
            self.current[-1].append("".join(self.cell))
            self.cell = None
        elif tag == "table":
            self.current = None

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            self.cell.append(data)


def parse(path: Path) -> Tables:
    page = Tables()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def books(sim: StreamSim) -> tuple[dict[str, str], list[list[str]]]:
    """The totals and the top-gifters rows the report must show, from the simulation's own records."""
    watch = sim.watch_times()
    unique = len(watch)
    engaged = [
        u
        for u in watch
        if u in sim.commenters or sim.likes_by_user.get(u) or any(g["sender"] == u for g in sim.gifts)
    ]
    coins = sum(g["coins"] for g in sim.gifts)
    assert sim.end_ms is not None
    totals = {
        "Status": "ended",
        "Started (UTC)": f"{datetime.fromtimestamp(sim.start_ms / 1000, UTC):%Y-%m-%d %H:%M:%S}",
        "Duration": str(timedelta(seconds=(sim.end_ms - sim.start_ms) // 1000)),
        "Unique viewers": f"{unique:,}",
        "Visits": f"{sim.visits:,}",
        "Peak viewers": f"{sim.peak:,}",
        "Total watch time": str(timedelta(seconds=sum(watch.values()))),
        "Average watch time": str(timedelta(seconds=round(round(sum(watch.values()) / unique, 2)))),
        "Engaged viewers": f"{len(engaged):,}",
        "Engagement rate": f"{round(len(engaged) / unique, 4) * 100:.1f}%",
        "Likes": f"{sum(sim.likes_by_user.values()):,}",
        "Comments": f"{sim.comments:,}",
        "Gift sends": f"{len(sim.gifts):,}",
        "Gifts": f"{sum(g['count'] for g in sim.gifts):,}",
        "Revenue (coins)": f"{coins:,}",
        "Broadcaster share (coins)": f"{sum(g['broadcaster'] for g in sim.gifts):,}",
        "Platform share (coins)": f"{sum(g['platform'] for g in sim.gifts):,}",
    }
    gifters: dict[str, list[Any]] = {}
    for g in sim.gifts:
        row = gifters.setdefault(g["sender"], [g["username"], g["sender"], 0, 0])
        row[2] += g["coins"]
        row[3] += g["count"]
    ranked = sorted(gifters.values(), key=lambda r: (-r[2], r[1]))[:10]
    top = [[str(i), name, uid, f"{c:,}", f"{n:,}"] for i, (name, uid, c, n) in enumerate(ranked, start=1)]
    return totals, top


def test_the_cli_writes_a_png_and_an_html_page_with_the_books_figures(
    ch: ClickHouse, history: tuple[StreamSim, StreamSim], chdb_path: Path, tmp_path: Path
) -> None:
    ended, _ = history
    args = [
        "report",
        ended.stream_id,
        "--out",
        str(tmp_path / "out"),
        "--clickhouse-dsn",
        f"chdb://{chdb_path}",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    png_path = tmp_path / "out" / f"stream-{ended.stream_id}-report.png"
    html_path = png_path.with_suffix(".html")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted([png_path.name, html_path.name])
    png = png_path.read_bytes()
    assert png_size(png) == (1200, 900)
    assert matplotlib.image.imread(png_path).shape[:2] == (900, 1200)  # it decodes, not just a header
    page = parse(html_path)
    assert page.images == ["data:image/png;base64," + base64.b64encode(png).decode()]  # nothing external
    totals, top_gifters = books(ended)
    shown = {row[0]: row[1] for row in page.tables["totals"]}
    assert {k: shown[k] for k in totals} == totals
    assert page.tables["top-gifters"][1:] == top_gifters
    assert len(top_gifters) >= 3  # the history has gifters to rank
    # the terminal shows the same totals and where the files are
    assert html_path.name in "".join(result.output.split())  # rich may wrap a long path
    assert totals["Revenue (coins)"] in result.output
    assert ch.query("SELECT 1 AS ok")[0]["ok"] == 1  # the session's client still works


def test_a_live_stream_and_one_format(
    ch: ClickHouse, history: tuple[StreamSim, StreamSim], chdb_path: Path, tmp_path: Path
) -> None:
    _, live = history
    args = ["report", live.stream_id, "--out", str(tmp_path), "--format", "png"]
    result = CliRunner().invoke(app, [*args, "--clickhouse-dsn", f"chdb://{chdb_path}"])
    assert result.exit_code == 0, result.output
    assert [p.name for p in tmp_path.iterdir()] == [f"stream-{live.stream_id}-report.png"]
    assert png_size((tmp_path / f"stream-{live.stream_id}-report.png").read_bytes()) == (1200, 900)


def test_user_provided_names_are_escaped_and_drawn_as_plain_text(
    ch: ClickHouse, hostile: StreamSim, tmp_path: Path
) -> None:
    a = stream_analytics(ch, hostile.stream_id, now=START, coin_value_usd="0.01")
    assert a is not None
    [png_path, html_path] = analytics_report.write(a, tmp_path, ["png", "html"])  # "$\frac{" is no TeX
    assert png_size(png_path.read_bytes()) == (1200, 900)
    raw = html_path.read_text(encoding="utf-8")
    assert "<script" not in raw.lower()
    assert html.escape(EVIL[0]) in raw and "Tom &amp; Jerry&#x27;s" in raw
    page = parse(html_path)
    assert page.scripts == 0
    names = [row[1] for row in page.tables["top-gifters"][1:]]
    assert set(EVIL) <= set(names)  # each shown as written, once decoded
    _, top = books(hostile)
    assert page.tables["top-gifters"][1:] == top


def test_an_unknown_stream_is_an_error_and_writes_nothing(chdb_path: Path, tmp_path: Path) -> None:
    args = ["report", "no-such-stream", "--out", str(tmp_path), "--clickhouse-dsn", f"chdb://{chdb_path}"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1
    assert "no stream 'no-such-stream'" in " ".join(result.output.split())
    assert list(tmp_path.iterdir()) == []


def test_an_unreachable_api_says_what_to_do(tmp_path: Path) -> None:
    args = ["report", "s1", "--out", str(tmp_path), "--api", "http://127.0.0.1:9"]
    result = CliRunner().invoke(app, [*args, "--token", "t"])
    assert result.exit_code == 1
    flat = " ".join(result.output.split())
    assert "is the API running at http://127.0.0.1:9?" in flat and "--clickhouse-dsn" in flat
    result = CliRunner().invoke(app, args)  # no token
    assert result.exit_code == 1 and "--api needs --token" in " ".join(result.output.split())
    assert list(tmp_path.iterdir()) == []


def test_a_stream_id_cannot_put_the_files_elsewhere() -> None:
    stem = analytics_report.file_stem("../../etc/passwd")
    assert "/" not in stem and not stem.startswith(".") and re.fullmatch(r"[A-Za-z0-9._-]+", stem)


def test_a_stream_without_viewers_or_gifts_and_an_answer_without_the_split(
    ch: ClickHouse, hostile: StreamSim, tmp_path: Path
) -> None:
    rng = random.Random(6)
    quiet = StreamSim("s-report-quiet", "host-quiet", int(START.timestamp() * 1000), rng, Positions())
    quiet.open()
    project(ch, quiet.records, rng)
    a = stream_analytics(ch, quiet.stream_id, now=START + timedelta(minutes=3), coin_value_usd="0.01")
    assert a is not None and a["topGifters"] == [] and a["uniqueViewers"] == 0
    [png_path, html_path] = analytics_report.write(a, tmp_path / "quiet", ["png", "html"])
    assert png_size(png_path.read_bytes()) == (1200, 900)
    page = parse(html_path)
    assert page.tables["top-gifters"][1:] == [["none"]]
    assert {row[0]: row[1] for row in page.tables["totals"]}["Engagement rate"] == "0.0%"
    # an API from before the per-minute split still draws the revenue (unsplit)
    old = stream_analytics(ch, hostile.stream_id, now=START, coin_value_usd="0.01")
    assert old is not None
    for minute in old["viewerTimeline"]:
        del minute["broadcasterRevenue"], minute["platformRevenue"]
    assert png_size(analytics_report.render_png(old)) == (1200, 900)
