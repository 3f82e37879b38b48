"""`spaktok report`: one stream's analytics drawn as a PNG and a self-contained HTML page.

The input is the getStreamAnalytics answer (`projections/analytics.py`, or the API's JSON): nothing
here queries. Figures are drawn with matplotlib's Agg canvas directly, never pyplot, so no display
backend is chosen and no global figure state is kept in the process. Layout in docs/analytics.md.
"""

from __future__ import annotations

import base64
import html
import io
import re
from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.dates import AutoDateLocator, DateFormatter
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

Format = Literal["png", "html"]
WIDTH_IN, HEIGHT_IN, DPI = 12, 9, 100  # the PNG is 1200 x 900 pixels
MINUTE = timedelta(minutes=1)
SHORTEST = timedelta(minutes=5)  # a shorter time axis would have ticks between minutes
VIEWERS, BROADCASTER, PLATFORM, GIFTERS = "#3b6fd8", "#2a9d6f", "#e0a030", "#c0457a"
THOUSANDS = FuncFormatter(lambda value, _: f"{value:,.0f}")
# the page needs nothing outside itself: even a string that escaped escaping could not run or load
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
NAME_CHARS = 24  # longer names are cut in the chart (the HTML shows them whole)


def clock(seconds: float) -> str:
    """A duration as H:MM:SS (whole seconds)."""
    return str(timedelta(seconds=int(round(seconds))))


def when(iso: str | None) -> str:
    """An ISO-8601 UTC time from the analytics answer, to the second."""
    return "live" if iso is None else f"{datetime.fromisoformat(iso):%Y-%m-%d %H:%M:%S}"


def rows_of_totals(a: dict[str, Any]) -> list[tuple[str, str]]:
    """The totals table, as (label, value) pairs: the same in the HTML and the PNG header."""
    t, rev, growth = a["totals"], a["revenue"], a["followerGrowth"]
    return [
        ("Status", a["status"]),
        ("Started (UTC)", when(a["startedAt"])),
        ("Ended (UTC)", when(a["endedAt"])),
        ("Duration", clock(a["durationSeconds"])),
        ("Unique viewers", f"{a['uniqueViewers']:,}"),
        ("Visits", f"{t['visits']:,}"),
        ("Peak viewers", f"{a['peakViewers']:,}"),
        ("Total watch time", clock(a["totalWatchTimeSeconds"])),
        ("Average watch time", clock(a["averageWatchTimeSeconds"])),
        ("Engaged viewers", f"{a['engagement']['engagedViewers']:,}"),
        ("Engagement rate", f"{a['engagement']['rate']:.1%}"),
        ("Likes", f"{t['likes']:,}"),
        ("Comments", f"{t['comments']:,}"),
        ("Gift sends", f"{t['giftSends']:,}"),
        ("Gifts", f"{t['gifts']:,}"),
        ("Revenue (coins)", f"{rev['coins']:,}"),
        ("Broadcaster share (coins)", f"{rev['broadcasterCoins']:,}"),
        ("Platform share (coins)", f"{rev['platformCoins']:,}"),
        ("Revenue (USD)", rev["usd"]),
        ("Followers gained / lost / net", f"{growth['gained']:,} / {growth['lost']:,} / {growth['net']:+,}"),
    ]


def render_png(a: dict[str, Any]) -> bytes:
    """The chart: header with totals, viewers per minute, gift revenue per minute, top gifters."""
    fig = Figure(figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI, layout="constrained")
    grid = fig.add_gridspec(3, 3, height_ratios=[0.55, 1.5, 1.5])
    _header(fig.add_subplot(grid[0, :]), a)
    viewers = fig.add_subplot(grid[1, :])
    revenue = fig.add_subplot(grid[2, :2], sharex=viewers)
    gifters = fig.add_subplot(grid[2, 2])
    minutes = [datetime.fromisoformat(m["minute"]) for m in a["viewerTimeline"]]
    span = _span(a, minutes)
    _viewers(viewers, a["viewerTimeline"], minutes, span)
    _revenue(revenue, a["viewerTimeline"], minutes, span)
    _gifters(gifters, a["topGifters"])
    buffer = io.BytesIO()
    FigureCanvasAgg(fig).print_png(buffer)
    return buffer.getvalue()


def _span(a: dict[str, Any], minutes: list[datetime]) -> tuple[datetime, datetime]:
    """From the start's minute to the end (a live stream: now), at least SHORTEST long."""
    started = datetime.fromisoformat(a["startedAt"])
    start = started.replace(second=0, microsecond=0)
    end = started + timedelta(seconds=a["durationSeconds"])  # a live stream's duration runs to now
    if minutes:
        end = max(end, minutes[-1] + MINUTE)
    return start, max(end, start + SHORTEST)


def _header(ax: Any, a: dict[str, Any]) -> None:
    ax.axis("off")
    ended = f"ended {when(a['endedAt'])}" if a["endedAt"] else "live"
    ax.text(0, 1, f"Stream {a['streamId']}", fontsize=16, weight="bold", va="top", parse_math=False)
    ax.text(
        0,
        0.62,
        f"broadcaster {a['broadcasterId']} · started {when(a['startedAt'])} · {ended} (UTC)",
        fontsize=10,
        color="#555555",
        va="top",
        parse_math=False,
    )
    tiles = [
        ("duration", clock(a["durationSeconds"])),
        ("unique viewers", f"{a['uniqueViewers']:,}"),
        ("peak viewers", f"{a['peakViewers']:,}"),
        ("avg watch time", clock(a["averageWatchTimeSeconds"])),
        ("engagement rate", f"{a['engagement']['rate']:.1%}"),
        ("revenue", f"{a['revenue']['coins']:,} coins"),
    ]
    for i, (label, value) in enumerate(tiles):
        x = i / len(tiles)
        ax.text(x, 0.3, value, fontsize=15, weight="bold", va="center")
        ax.text(x, 0.0, label, fontsize=9, color="#555555", va="center")


def _time_axis(ax: Any, span: tuple[datetime, datetime]) -> None:
    ax.set_xlim(*span)
    ax.xaxis.set_major_locator(AutoDateLocator(minticks=3, maxticks=9))
    ax.xaxis.set_major_formatter(DateFormatter("%H:%M", tz=span[0].tzinfo))
    ax.grid(axis="y", alpha=0.3)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def _viewers(ax: Any, timeline: list[dict[str, Any]], minutes: list[datetime], span: Any) -> None:
    ax.set_title("Viewers (most at once in each minute)", loc="left", fontsize=11)
    _time_axis(ax, span)
    counts = [m["peakViewers"] for m in timeline]
    if not any(counts):
        ax.text(0.5, 0.5, "no viewers", transform=ax.transAxes, ha="center", color="#777777")
        ax.set_yticks([])
        return
    # each value holds for its minute; repeat the last so its minute has a width
    xs, ys = [*minutes, minutes[-1] + MINUTE], [*counts, counts[-1]]
    ax.step(xs, ys, where="post", color=VIEWERS, linewidth=1.6)
    ax.fill_between(xs, ys, step="post", color=VIEWERS, alpha=0.15)
    peak = max(counts)
    at = minutes[counts.index(peak)]
    ax.plot([at + MINUTE / 2], [peak], "o", color="#d03030", zorder=3)
    ax.annotate(
        f"peak {peak:,} at {at:%H:%M}",
        (at + MINUTE / 2, peak),
        xytext=(6, 4),
        textcoords="offset points",
        fontsize=9,
        color="#d03030",
    )
    ax.set_ylim(0, max(peak * 1.18, 1))
    ax.set_ylabel("viewers")


def _revenue(ax: Any, timeline: list[dict[str, Any]], minutes: list[datetime], span: Any) -> None:
    _time_axis(ax, span)
    ax.set_xlabel(f"time (UTC), {span[0]:%Y-%m-%d %H:%M} to {span[1]:%Y-%m-%d %H:%M}")
    gifts = sum(m["gifts"] for m in timeline)
    ax.set_title(f"Gift revenue per minute (coins; {gifts:,} gifts)", loc="left", fontsize=11)
    if not any(m["revenue"] for m in timeline):
        ax.text(0.5, 0.5, "no gifts", transform=ax.transAxes, ha="center", color="#777777")
        ax.set_yticks([])
        return
    width = MINUTE * 0.85
    if all("broadcasterRevenue" in m for m in timeline):
        broadcaster = [m["broadcasterRevenue"] for m in timeline]
        platform = [m["platformRevenue"] for m in timeline]
        ax.bar(minutes, broadcaster, width=width, align="edge", color=BROADCASTER, label="broadcaster share")
        ax.bar(
            minutes,
            platform,
            width=width,
            align="edge",
            bottom=broadcaster,
            color=PLATFORM,
            label="platform share",
        )
    else:  # an API from before the per-minute split: the whole revenue, unsplit
        revenue = [m["revenue"] for m in timeline]
        ax.bar(minutes, revenue, width=width, align="edge", color=GIFTERS, label="revenue (no split)")
    ax.set_ylabel("coins")
    ax.yaxis.set_major_formatter(THOUSANDS)
    # beside the title, so it never covers a bar
    ax.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), ncols=2, fontsize=8, frameon=False)


def _gifters(ax: Any, top: list[dict[str, Any]]) -> None:
    ax.set_title("Top gifters (coins)", loc="left", fontsize=11)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    if not top:
        ax.axis("off")
        ax.text(0.5, 0.5, "no gifts", transform=ax.transAxes, ha="center", color="#777777")
        ax.set_yticks([])
        return
    names = [_short(g["username"] or g["userId"]) for g in top]
    coins = [g["coins"] for g in top]
    positions = list(range(len(top)))
    ax.barh(positions, coins, color=GIFTERS)
    # user-provided names: plain text, never mathtext ("$" would be parsed as TeX)
    ax.set_yticks(positions, labels=names, parse_math=False, fontsize=8)
    ax.set_ylim(max(len(top), 6) - 0.5, -0.5)  # the biggest gifter on top; bars keep their height
    ax.set_xlim(0, max(coins) * 1.3)
    for y, value in zip(positions, coins, strict=True):
        ax.text(value, y, f" {value:,}", va="center", fontsize=8)
    ax.xaxis.set_major_locator(MaxNLocator(4))
    ax.xaxis.set_major_formatter(THOUSANDS)
    ax.tick_params(axis="x", labelsize=8)


def _short(name: str) -> str:
    name = " ".join(name.split())  # no newlines or tabs in a tick label
    return name if len(name) <= NAME_CHARS else name[: NAME_CHARS - 1] + "…"


def render_html(a: dict[str, Any], png: bytes) -> str:
    """A single self-contained page: the chart inline (base64), the totals and the top lists."""
    e = html.escape
    totals = "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in rows_of_totals(a))
    gifters = _table(
        "top-gifters",
        ["#", "Username", "User id", "Coins", "Gifts"],
        (
            [i, g["username"], g["userId"], f"{g['coins']:,}", f"{g['gifts']:,}"]
            for i, g in _ranked(a["topGifters"])
        ),
    )
    viewers = _table(
        "top-viewers",
        ["#", "User id", "Watch time"],
        ([i, v["userId"], clock(v["watchTimeSeconds"])] for i, v in _ranked(a["topViewers"])),
    )
    by_gift = _table(
        "revenue-by-gift",
        ["Gift", "Sends", "Gifts", "Coins"],
        (
            [g["giftName"], f"{g['sends']:,}", f"{g['gifts']:,}", f"{g['coins']:,}"]
            for g in a["revenue"]["byGift"]
        ),
    )
    image = base64.b64encode(png).decode("ascii")
    alt = e(f"viewers, gift revenue and top gifters of stream {a['streamId']}")
    title = e(f"Stream {a['streamId']}: analytics")
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1240px; color: #222; }}
img {{ max-width: 100%; height: auto; border: 1px solid #ddd; }}
table {{ border-collapse: collapse; margin: 0.5em 0 1.5em; }}
th, td {{ padding: 0.25em 0.8em; border-bottom: 1px solid #eee; text-align: left; }}
td {{ font-variant-numeric: tabular-nums; }}
.lists {{ display: flex; gap: 3em; flex-wrap: wrap; }}
</style>
</head>
<body>
<h1>{title}</h1>
<p>Broadcaster {e(a["broadcasterId"])}. All times UTC.</p>
<img alt="{alt}" src="data:image/png;base64,{image}">
<h2>Totals</h2>
<table id="totals">{totals}</table>
<div class="lists">
<section><h2>Top gifters</h2>{gifters}</section>
<section><h2>Top viewers</h2>{viewers}</section>
<section><h2>Revenue by gift</h2>{by_gift}</section>
</div>
</body>
</html>
"""


def _ranked(items: list[dict[str, Any]]) -> Iterable[tuple[int, dict[str, Any]]]:
    return enumerate(items, start=1)


def _table(table_id: str, header: list[str], rows: Iterable[list[Any]]) -> str:
    e = html.escape
    body = "".join("<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    head = "".join(f"<th>{e(h)}</th>" for h in header)
    return f'<table id="{table_id}"><tr>{head}</tr>{body or "<tr><td>none</td></tr>"}</table>'


def file_stem(stream_id: str) -> str:
    """A file name from a stream id that cannot leave the output directory."""
    return "stream-" + re.sub(r"[^A-Za-z0-9._-]", "_", stream_id).lstrip(".") + "-report"


def write(a: dict[str, Any], out_dir: Path, formats: Iterable[Format]) -> list[Path]:
    """Write the report files (each to `.partial`, then renamed) and return their paths."""
    formats = list(formats)
    out_dir.mkdir(parents=True, exist_ok=True)
    png = render_png(a)
    contents: dict[str, bytes] = {}
    if "png" in formats:
        contents["png"] = png
    if "html" in formats:
        contents["html"] = render_html(a, png).encode("utf-8")
    written = []
    for suffix, data in contents.items():
        target = out_dir / f"{file_stem(a['streamId'])}.{suffix}"
        staging = target.with_name(target.name + ".partial")
        staging.write_bytes(data)
        staging.replace(target)
        written.append(target)
    return written
