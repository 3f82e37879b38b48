"""The movable dev clock: a moved clock is seen by the very next read, in every process."""

from __future__ import annotations

from pathlib import Path

from spaktok import clock
from spaktok.settings import Settings


def test_a_moved_clock_is_seen_by_the_next_read(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    assert clock.offset_seconds(settings) == 0.0  # no offset file: no offset
    clock.ensure_offset_file(tmp_path)
    assert clock.offset_seconds(settings) == 0.0
    for seconds in (20, 60, 60.5, 0):  # each replaces the file right after a read cached it
        clock.set_offset(tmp_path, seconds)
        assert clock.offset_seconds(settings) == seconds
    clock.ensure_offset_file(tmp_path)  # an offset already set is kept
    clock.set_offset(tmp_path, 7)
    clock.ensure_offset_file(tmp_path)
    assert clock.offset_seconds(settings) == 7
    assert clock.offset_seconds(Settings(data_dir=tmp_path / "elsewhere")) == 0.0  # per data dir
    secrets = {name: "x" * 40 for name in ("jwt_secret", "stream_key_secret", "media_link_secret")}
    production = Settings(data_dir=tmp_path, env="prod", **secrets)
    assert clock.offset_seconds(production) == 0.0  # never in production
