"""Per-user maps stored in parts (`commands.parts`): streams, audience shards, schedules."""

from __future__ import annotations

import orjson
from spaktok.commands import parts
from spaktok.commands.audience_decide import AudienceState
from spaktok.commands.audience_decide import join as join_audience
from spaktok.commands.audience_decide import split as split_audience
from spaktok.commands.schedule_decide import ScheduleState
from spaktok.commands.schedule_decide import join as join_schedule
from spaktok.commands.schedule_decide import split as split_schedule


def test_a_map_gets_a_power_of_two_of_parts_of_about_two_thousand_users() -> None:
    assert [parts.part_count(n) for n in (0, 2_000, 2_001, 4_500, 100_000)] == [1, 1, 2, 4, 64]
    assert parts.part_count(10_000_000) == parts.MAX_PARTS


def test_a_map_split_by_user_joins_back_and_keeps_each_user_in_one_part() -> None:
    column = {f"user-{i}": i for i in range(5_000)}
    split = parts.by_user("fans", column)
    assert sorted(split) == [f"fans-4-{i}" for i in range(4)]
    assert sum(len(p) for p in split.values()) == 5_000
    assert parts.joined(split, "fans") == column
    assert parts.by_user("fans", column) == split  # the hash is stable
    assert parts.by_user("fans", {}) == {}


def test_a_map_stored_whole_under_its_name_joins_too() -> None:
    assert parts.joined({"fans": {"a": 1}, "other-1-0": {"b": 2}}, "fans") == {"a": 1}


def test_a_big_audience_shard_is_stored_in_parts_that_a_broker_accepts() -> None:
    state = AudienceState(version=5_000, followers={f"fan-{i:06d}": i for i in range(100_000)})
    main, contents = split_audience(state)
    assert main == {"version": 5_000} and len(contents) == 64
    assert max(len(orjson.dumps(p)) for p in contents.values()) < 100_000  # whole: 1.9 MB (5.3 with uuids)
    assert join_audience(main, orjson.loads(orjson.dumps(contents))) == state


def test_a_schedules_reminder_holders_are_stored_in_parts() -> None:
    state = ScheduleState(
        version=3, status="scheduled", user_id="host", reminders={f"u{i}": i for i in range(3_000)}
    )
    main, contents = split_schedule(state)
    assert "reminders" not in main and len(contents) == 2
    assert join_schedule(orjson.loads(orjson.dumps(main)), contents) == state


def test_a_map_that_fits_one_part_stays_in_the_record() -> None:
    small = AudienceState(version=2, followers={"ann": 1, "bob": 2})
    main, contents = split_audience(small)
    assert (main, contents) == ({"version": 2, "followers": {"ann": 1, "bob": 2}}, {})
    assert join_audience(main, contents) == small
    grown = AudienceState(version=9, followers={f"fan-{i}": i for i in range(parts.USERS_PER_PART + 1)})
    main, contents = split_audience(grown)
    assert "followers" not in main and len(contents) == 2
    assert join_audience(main, contents) == grown
