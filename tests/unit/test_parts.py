"""Per-user maps stored in parts (`commands.parts`): streams, audience shards, schedules."""

from __future__ import annotations

import orjson
from hypothesis import given
from hypothesis import strategies as st

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


@given(
    st.lists(st.tuples(st.sampled_from(["set", "del"]), st.integers(0, 6_000), st.integers()), max_size=300)
)
def test_a_parted_map_behaves_as_a_dict_and_its_thawed_copy_leaves_it_alone(ops: list) -> None:
    from spaktok.commands.parts import PartedMap

    base = {f"u{i}": i for i in range(0, 4_500, 3)}  # 1,500 users: one part; grows past 2,000 below
    original, model = PartedMap(base), dict(base)
    copy = original.thawed()
    for op, user, value in ops + [("set", 10_000 + i, i) for i in range(700)]:
        key = f"u{user}"
        if op == "set":
            copy[key], model[key] = value, value
        elif key in model:
            del copy[key], model[key]
    assert dict(copy.items()) == model and len(copy) == len(model) and copy == model
    assert dict(original.items()) == base  # the original never saw a write


def test_a_thawed_parted_map_shares_every_part_it_did_not_write() -> None:
    from spaktok.commands.parts import PartedMap

    original = PartedMap({f"user-{i}": [i, i] for i in range(100_000)})
    before = original.parts("viewers")
    assert len(before) == 64
    copy = original.thawed()
    copy["user-7"] = [0, 1]
    after = copy.parts("viewers")
    changed = [name for name in after if after[name] is not before[name]]
    assert len(changed) == 1 and after[changed[0]]["user-7"] == [0, 1]
    assert original["user-7"] == [7, 7]
    # stored and loaded again, the same cut is adopted as it is: the loaded parts are the objects
    adopted = PartedMap.from_parts(after, "viewers")
    assert all(adopted.parts("viewers")[name] is part for name, part in after.items())
    # another layout (one part, as stored before) is re-cut
    assert PartedMap.from_parts({"viewers": {"a": 1}, "other": {"b": 2}}, "viewers") == {"a": 1}
