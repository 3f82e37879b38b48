"""What `spaktok topics apply` would change: the topic registry against what a broker holds.

Pure (no broker): `desired_topics` reads the registry and settings, `plan` compares them with what
`topics_apply.observe` saw. Kept apart from the I/O so every rule (partitions only grow, replication
is reported and never changed, configs are set key by key) is tested without a broker.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from spaktok.infra import topics
from spaktok.infra.topics import TopicSpec
from spaktok.settings import Settings

DAY_MS = topics.DAY_MS


@dataclass(frozen=True)
class Desired:
    """A topic as the registry and settings want it."""

    name: str
    partitions: int
    replication: int
    config: dict[str, str]


@dataclass(frozen=True)
class Observed:
    """A topic as the broker has it; `config` None when the broker would not describe its configs."""

    partitions: int
    replication: int
    config: dict[str, str] | None


@dataclass(frozen=True)
class TopicChange:
    """One topic's difference: what apply will do (create, set configs, add partitions) and what it
    only reports (fewer partitions wanted, another replication factor, configs it could not read)."""

    desired: Desired
    observed: Observed | None
    config_changes: dict[str, tuple[str | None, str]] = field(default_factory=dict)  # key: (now, wanted)
    grow_to: int | None = None
    notes: tuple[str, ...] = ()

    @property
    def create(self) -> bool:
        return self.observed is None

    @property
    def has_work(self) -> bool:
        return self.create or bool(self.config_changes) or self.grow_to is not None

    def action(self) -> str:
        """The plan's words for this topic, e.g. `set retention.ms 604800000 → -1; grow 2 → 4`."""
        if self.create:
            return "create"
        steps = [
            f"set {key} {now or '(unset)'} → {wanted}" for key, (now, wanted) in self.config_changes.items()
        ]
        if self.grow_to is not None and self.observed is not None:
            steps.append(f"grow partitions {self.observed.partitions} → {self.grow_to}")
        steps += [f"note: {note}" for note in self.notes]
        return "; ".join(steps) or "nothing to do"


def desired_topics(settings: Settings, specs: Iterable[TopicSpec] = topics.APPLIED_TOPICS) -> list[Desired]:
    return [
        Desired(
            spec.name,
            topics.partitions_of(spec, settings),
            settings.topic_replication,
            topics.topic_config(spec, settings),
        )
        for spec in specs
    ]


def plan(
    desired: Iterable[Desired], observed: Mapping[str, Observed], *, grow_partitions: bool = False
) -> list[TopicChange]:
    """One change per desired topic, in registry order (topics the registry does not name are not
    ours: left alone and not listed). Partitions are added only with `grow_partitions`."""
    return [_compare(want, observed.get(want.name), grow_partitions) for want in desired]


def _compare(want: Desired, have: Observed | None, grow_partitions: bool) -> TopicChange:
    if have is None:
        return TopicChange(want, None)
    notes: list[str] = []
    grow_to = None
    if have.partitions < want.partitions and grow_partitions:
        grow_to = want.partitions
    elif have.partitions < want.partitions:
        # a key's partition is murmur2(key) modulo the count: after growing, an aggregate's commands
        # reach a partition whose changelog holds none of its state, and its events continue on another
        # partition than its history (docs/deploy.md "Choosing partition counts")
        notes.append(
            f"{have.partitions} partitions on the broker, {want.partitions} configured: adding partitions "
            "moves keys to other partitions; pass --grow-partitions to add them (only before traffic, or "
            "with every worker and projector stopped and the state rebuilt)"
        )
    elif have.partitions > want.partitions:
        # a key's partition is its hash modulo the count: removing partitions would strand records
        # and move keys, and Kafka cannot do it anyway
        notes.append(
            f"{have.partitions} partitions on the broker, {want.partitions} configured: partitions are never "
            f"removed; set SPAKTOK_PARTITIONS={have.partitions} to match"
        )
    if have.replication != want.replication:
        notes.append(
            f"replication {have.replication} on the broker, {want.replication} configured: not changed here "
            "(a partition reassignment does that: kafka-reassign-partitions)"
        )
    changes: dict[str, tuple[str | None, str]] = {}
    if have.config is None:
        notes.append("configs not compared: the broker does not answer DescribeConfigs")
    else:
        changes = {
            key: (have.config.get(key), value)
            for key, value in want.config.items()
            if have.config.get(key) != value
        }
    return TopicChange(want, have, changes, grow_to, tuple(notes))


def retention_words(retention_ms: str | int | None) -> str:
    """`-1` → `forever`, a whole number of days → `7 d`, else hours or ms."""
    if retention_ms is None:
        return "(broker default)"
    ms = int(retention_ms)
    if ms < 0:
        return "forever"
    if ms % DAY_MS == 0:
        return f"{ms // DAY_MS} d"
    if ms % 3_600_000 == 0:
        return f"{ms // 3_600_000} h"
    return f"{ms} ms"
