"""The one topic registry: every topic's name, key, contents, retention and single writer."""

from __future__ import annotations

from dataclasses import dataclass

from confluent_kafka.admin import AdminClient, NewTopic

from spaktok.settings import Settings

DAY_MS = 24 * 3600 * 1000


@dataclass(frozen=True)
class TopicSpec:
    name: str
    key: str
    contents: str
    writer: str
    retention_ms: int  # -1 keeps forever
    cleanup: str = "delete"
    partitions: int | None = None  # None: settings.partitions (the unit of parallelism)


COMMANDS_STREAMS = TopicSpec(
    "spaktok.commands.streams",
    "stream id",
    "stream commands (JSON)",
    "api, broadcaster processor",
    7 * DAY_MS,
)
COMMANDS_BROADCASTERS = TopicSpec(
    "spaktok.commands.broadcasters", "user id", "broadcaster commands", "api, stream processor", 7 * DAY_MS
)
EVENTS_STREAMS = TopicSpec("spaktok.events.streams", "stream id", "stream events", "stream processor", -1)
EVENTS_BROADCASTERS = TopicSpec(
    "spaktok.events.broadcasters", "user id", "broadcaster events", "broadcaster processor", -1
)
COMMANDS_AUDIENCES = TopicSpec(
    "spaktok.commands.audiences",
    "channel id:shard",
    "audience-shard commands (follow bookkeeping, notify)",
    "channel and stream processors",
    7 * DAY_MS,
)
EVENTS_AUDIENCES = TopicSpec(
    "spaktok.events.audiences", "channel id:shard", "audience-shard events", "audience processor", -1
)
COMMANDS_SCHEDULES = TopicSpec(
    "spaktok.commands.schedules", "schedule id", "schedule commands", "api, processors", 7 * DAY_MS
)
EVENTS_SCHEDULES = TopicSpec(
    "spaktok.events.schedules", "schedule id", "schedule events", "schedule processor", -1
)
COMMANDS_WALLETS = TopicSpec(
    "spaktok.commands.wallets",
    "user id",
    "wallet commands (purchases, gift sends, refunds)",
    "api, stream processor",
    7 * DAY_MS,
)
EVENTS_WALLETS = TopicSpec(
    "spaktok.events.wallets", "user id", "every coin movement of a wallet", "wallet processor", -1
)
COMMANDS_EARNINGS = TopicSpec(
    "spaktok.commands.earnings",
    "broadcaster id",
    "earnings commands (credits, payouts)",
    "api, stream processor",
    7 * DAY_MS,
)
EVENTS_EARNINGS = TopicSpec(
    "spaktok.events.earnings", "broadcaster id", "broadcaster credits and payouts", "earnings processor", -1
)
COMMANDS_BATTLES = TopicSpec(
    "spaktok.commands.battles",
    "battle id",
    "PK battle commands (invite, answers, link results, scores, closes)",
    "api, stream processor, battle timer",
    7 * DAY_MS,
)
EVENTS_BATTLES = TopicSpec(
    "spaktok.events.battles", "battle id", "PK battles: lifecycle, scores, result", "battle processor", -1
)
COMMANDS_STREAM_SHARDS = TopicSpec(
    "spaktok.commands.stream_shards",
    "stream id:shard",
    "a hot stream's like shards: likes from the API, open/close/bans from the stream",
    "api, stream processor",
    7 * DAY_MS,
)
EVENTS_STREAM_SHARDS = TopicSpec(
    "spaktok.events.stream_shards",
    "stream id:shard",
    "likes counted by a hot stream's shards",
    "stream-shard processor",
    -1,
)
NOTIFICATIONS = TopicSpec(
    "spaktok.notifications",
    "channel id:shard",
    "notification notices, one per batch of up to 1,000 recipients: the hook for push services",
    "audience and schedule processors",
    30 * DAY_MS,
)
OUTCOMES = TopicSpec(
    "spaktok.outcomes", "correlation id", "final command outcomes for waiting API calls", "processors", DAY_MS
)
DEADLETTER = TopicSpec(
    "spaktok.deadletter",
    "original key",
    "undecodable or unhandled records, original bytes + error headers",
    "processors, projectors",
    -1,
)

ALL_TOPICS = (
    COMMANDS_STREAMS,
    COMMANDS_BROADCASTERS,
    COMMANDS_AUDIENCES,
    COMMANDS_SCHEDULES,
    COMMANDS_WALLETS,
    COMMANDS_EARNINGS,
    COMMANDS_BATTLES,
    COMMANDS_STREAM_SHARDS,
    EVENTS_STREAMS,
    EVENTS_BROADCASTERS,
    EVENTS_AUDIENCES,
    EVENTS_SCHEDULES,
    EVENTS_WALLETS,
    EVENTS_EARNINGS,
    EVENTS_BATTLES,
    EVENTS_STREAM_SHARDS,
    NOTIFICATIONS,
    OUTCOMES,
    DEADLETTER,
)
EVENT_TOPICS = (
    EVENTS_STREAMS,
    EVENTS_BROADCASTERS,
    EVENTS_AUDIENCES,
    EVENTS_SCHEDULES,
    EVENTS_WALLETS,
    EVENTS_EARNINGS,
    EVENTS_BATTLES,
    EVENTS_STREAM_SHARDS,
    NOTIFICATIONS,
)
COMMAND_TOPIC_BY_AGGREGATE = {
    "stream": COMMANDS_STREAMS,
    "broadcaster": COMMANDS_BROADCASTERS,
    "audience": COMMANDS_AUDIENCES,
    "schedule": COMMANDS_SCHEDULES,
    "wallet": COMMANDS_WALLETS,
    "earnings": COMMANDS_EARNINGS,
    "battle": COMMANDS_BATTLES,
    "stream_shard": COMMANDS_STREAM_SHARDS,
}


# The Faust worker's state tables (processors/app.py: app "spaktok-worker", one table
# "<aggregate>-state" per aggregate) are changelogged in topics Faust names "<app>-<table>-changelog".
# Faust would create them itself, but with the worker's replication factor 1; listing them here lets
# `spaktok topics apply` create them first with the cluster's replication (Faust keeps what exists).
# tests/unit/test_topics_plan.py checks these names against the tables the worker declares.
WORKER_APP_ID = "spaktok-worker"


def _changelog(aggregate: str) -> TopicSpec:
    return TopicSpec(
        f"{WORKER_APP_ID}-{aggregate}-state-changelog",
        "aggregate id (raw bytes)",
        f"the {aggregate} aggregate's state snapshots and command positions, latest per key",
        "the worker owning the command partition",
        -1,
        cleanup="compact",
    )


CHANGELOG_TOPICS = tuple(_changelog(aggregate) for aggregate in COMMAND_TOPIC_BY_AGGREGATE)
FAUST_LEADER = TopicSpec(
    f"{WORKER_APP_ID}-__assignor-__leader",
    "none",
    "no records: Faust's leader is whichever worker is assigned its one partition",
    "Faust",
    7 * DAY_MS,
    partitions=1,
)
# what `spaktok topics apply` manages: ours, plus the worker's Faust topics
APPLIED_TOPICS = (*ALL_TOPICS, *CHANGELOG_TOPICS, FAUST_LEADER)


def partitions_of(spec: TopicSpec, settings: Settings) -> int:
    return spec.partitions or settings.partitions


# The biggest record batch a producer of ours sends (the worker's aiokafka `max_request_size`), and
# so what every topic must take (`max.message.bytes`; Kafka's default is 1 MB). By design a record
# stays far below it (parted-map segments and parts, bundles of at most 512 KiB, time-outs in events
# of 1,000 visits); the topic's limit only has to match the producer's, so that what the worker may
# send is never refused by a production broker after the dev broker took it.
MAX_RECORD_BYTES = 4 * 1024 * 1024


def topic_config(spec: TopicSpec, settings: Settings) -> dict[str, str]:
    """The topic-level configs we own; anything else stays the broker's default."""
    config = {
        "retention.ms": str(spec.retention_ms),
        "cleanup.policy": spec.cleanup,
        "max.message.bytes": str(MAX_RECORD_BYTES),
    }
    if settings.min_insync_replicas is not None:
        config["min.insync.replicas"] = str(settings.min_insync_replicas)
    return config


def new_topic(spec: TopicSpec, settings: Settings) -> NewTopic:
    return NewTopic(
        spec.name,
        num_partitions=partitions_of(spec, settings),
        replication_factor=settings.topic_replication,
        config=topic_config(spec, settings),
    )


def ensure_topics(settings: Settings, timeout: float = 15.0) -> None:
    """Create every topic that is missing; existing topics are left as they are
    (`spaktok topics apply` is what compares and changes them)."""
    admin = AdminClient({"bootstrap.servers": settings.broker})
    existing = set(admin.list_topics(timeout=timeout).topics)
    missing = [new_topic(spec, settings) for spec in ALL_TOPICS if spec.name not in existing]
    if not missing:
        return
    for name, future in admin.create_topics(missing, request_timeout=timeout).items():
        try:
            future.result()
        except Exception as exc:  # noqa: BLE001 - a concurrent creator is fine, anything else is not
            if "TOPIC_ALREADY_EXISTS" not in str(exc) and "already exists" not in str(exc):
                raise RuntimeError(f"could not create topic {name}: {exc}") from exc


def partition_counts(settings: Settings, timeout: float = 15.0) -> dict[str, int]:
    """How many partitions each of our topics has on the broker (bundles are hashed by them)."""
    admin = AdminClient({"bootstrap.servers": settings.broker})
    metadata = admin.list_topics(timeout=timeout).topics
    return {spec.name: len(metadata[spec.name].partitions) for spec in ALL_TOPICS if spec.name in metadata}
