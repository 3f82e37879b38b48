"""The time every process stamps commands with, movable in dev and tests.

Rules that depend on time (a viewer silent for 2 minutes is dropped, slow mode, timeouts) must be
testable without sleeping minutes. Outside production, the clock adds the number of seconds
written in `<data_dir>/clock-offset-seconds`; the API and the worker of one stack share that data
dir, so moving it moves time for both. In production (`SPAKTOK_ENV=prod`) the file is ignored.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path

from spaktok.settings import Settings, get_settings

OFFSET_FILE = "clock-offset-seconds"

_cache: dict[str, tuple[tuple[int, int], float]] = {}  # file -> ((inode, mtime ns), offset seconds)


def offset_seconds(settings: Settings | None = None) -> float:
    settings = settings or get_settings()
    if settings.env == "prod":
        return 0.0
    path = _offset_file(settings.data_dir)  # joined once: the join cost more than the stat
    try:
        # a stat per call (~2.5 µs here; ~6 µs when the file is missing, for the exception, so the
        # dev stack writes it at start): a moved clock is seen at once, never a moment late
        stat = os.stat(path)
        modified = (stat.st_ino, stat.st_mtime_ns)  # set_offset replaces the file: a new inode
    except OSError:
        return 0.0
    cached = _cache.get(path)
    if cached is not None and cached[0] == modified:
        return cached[1]
    try:
        offset = float(Path(path).read_text().strip() or 0)
    except (OSError, ValueError):
        offset = 0.0
    _cache[path] = (modified, offset)
    return offset


@lru_cache(maxsize=64)
def _offset_file(data_dir: Path) -> str:
    return str(data_dir / OFFSET_FILE)


def now(settings: Settings | None = None) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=offset_seconds(settings))


def ensure_offset_file(data_dir: Path) -> None:
    """A zero offset where none is set yet (a stat that finds the file is the cheap case)."""
    if not (data_dir / OFFSET_FILE).exists():
        set_offset(data_dir, 0)


def set_offset(data_dir: Path, seconds: float) -> None:
    """Move the clock of the stack that uses `data_dir` (dev and tests); atomic for readers."""
    target = data_dir / OFFSET_FILE
    staging = target.with_suffix(".tmp")
    staging.write_text(f"{seconds}\n")
    os.replace(staging, target)
