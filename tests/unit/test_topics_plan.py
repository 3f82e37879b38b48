"""The topic registry's retention rules and `spaktok topics apply`'s plan, without a broker."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from spaktok.infra import topics
from spaktok.infra.topics_plan import Desired, Observed, desired_topics, plan, retention_words
from spaktok.settings import Settings

WEEK_MS = 7 * topics.DAY_MS


def test_events_keep_forever_commands_a_week_changelogs_compacted() -> None:
    for spec in topics.EVENT_TOPICS:
        if spec is not topics.NOTIFICATIONS:  # notices for push services, not a source of truth
            assert (spec.retention_ms, spec.cleanup) == (-1, "delete"), spec.name
    for spec in topics.COMMAND_TOPIC_BY_AGGREGATE.values():
        assert (spec.retention_ms, spec.cleanup) == (WEEK_MS, "delete"), spec.name
    for spec in topics.CHANGELOG_TOPICS:
        assert spec.cleanup == "compact", spec.name
    assert topics.DEADLETTER.retention_ms == -1


def test_the_registry_names_every_changelog_the_worker_declares(tmp_path: Path) -> None:
    """Faust names changelogs itself; a renamed table or app would leave `topics apply` creating
    topics nobody uses while Faust makes its own with replication 1."""
    from spaktok.processors.app import create_app

    app = create_app(Settings(data_dir=tmp_path))
    declared = {table.changelog_topic.get_topic_name() for table in app.tables.values()}
    assert declared == {spec.name for spec in topics.CHANGELOG_TOPICS}
    assert topics.FAUST_LEADER.name == f"{app.conf.id}-__assignor-__leader"


def test_desired_topics_take_partitions_replication_and_min_insync_from_settings() -> None:
    settings = Settings(partitions=12, topic_replication=3, min_insync_replicas=2)
    desired = {d.name: d for d in desired_topics(settings)}
    events = desired[topics.EVENTS_STREAMS.name]
    assert (events.partitions, events.replication) == (12, 3)
    assert events.config == {
        "retention.ms": "-1",
        "cleanup.policy": "delete",
        "max.message.bytes": str(topics.MAX_RECORD_BYTES),
        "min.insync.replicas": "2",
    }
    assert desired[topics.FAUST_LEADER.name].partitions == 1
    assert "min.insync.replicas" not in desired_topics(Settings())[0].config  # unset: the broker's


def test_min_insync_above_replication_is_refused() -> None:
    with pytest.raises(ValidationError, match="cannot exceed"):
        Settings(topic_replication=1, min_insync_replicas=2)


WANT = Desired("t", 4, 3, {"retention.ms": "-1", "cleanup.policy": "delete"})


def test_a_missing_topic_is_created() -> None:
    [change] = plan([WANT], {})
    assert change.create and change.has_work and change.action() == "create"


def test_a_matching_topic_has_nothing_to_do() -> None:
    [change] = plan([WANT], {"t": Observed(4, 3, {**WANT.config, "segment.ms": "1"})})
    assert not change.has_work and not change.notes and change.action() == "nothing to do"


def test_differing_or_unset_configs_are_set_key_by_key() -> None:
    [change] = plan([WANT], {"t": Observed(4, 3, {"retention.ms": str(WEEK_MS)})})
    assert change.config_changes == {"retention.ms": (str(WEEK_MS), "-1"), "cleanup.policy": (None, "delete")}
    assert change.action() == f"set retention.ms {WEEK_MS} → -1; set cleanup.policy (unset) → delete"


def test_partitions_grow_only_when_asked_and_never_shrink() -> None:
    fewer = {"t": Observed(2, 3, dict(WANT.config))}
    [held] = plan([WANT], fewer)
    assert held.grow_to is None and not held.has_work and "--grow-partitions" in held.notes[0]
    [grown] = plan([WANT], fewer, grow_partitions=True)
    assert grown.grow_to == 4 and grown.action() == "grow partitions 2 → 4"
    [more] = plan([WANT], {"t": Observed(8, 3, dict(WANT.config))}, grow_partitions=True)
    assert more.grow_to is None and not more.has_work
    assert "never removed" in more.notes[0] and "SPAKTOK_PARTITIONS=8" in more.notes[0]


def test_another_replication_factor_is_reported_not_changed() -> None:
    [change] = plan([WANT], {"t": Observed(4, 1, dict(WANT.config))})
    assert not change.has_work and "replication 1 on the broker, 3 configured" in change.notes[0]


def test_configs_the_broker_would_not_describe_are_reported_as_not_compared() -> None:
    [change] = plan([WANT], {"t": Observed(4, 3, None)})
    assert not change.has_work and "not compared" in change.notes[0]


def test_retention_in_words() -> None:
    assert [retention_words(v) for v in ("-1", WEEK_MS, 3_600_000, 1500, None)] == [
        "forever",
        "7 d",
        "1 h",
        "1500 ms",
        "(broker default)",
    ]
