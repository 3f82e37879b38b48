"""The AsyncAPI 3.0 document of every topic in the registry (infra/topics.py), for consumers.

Built from the topic registry, the event registry and the generated event schemas
(`events.contracts`), so it cannot drift from what is produced; `spaktok contracts generate` writes
it to `schemas/asyncapi.json`, the API serves it at `GET /asyncapi.json` and renders it at
`/docs/events`, and `tests/unit/test_contracts.py` fails when the committed copy differs.

What a record is, per kind of topic (docs/events.md):
- event topics and `spaktok.notifications`: one event envelope per record, keyed by the aggregate
  id, header `event-type`. Never bundled.
- command topics: one command object, or a bundle (a JSON array of commands for one partition,
  header `command-type: bundle`), keyed by the (first) command's aggregate id. Internal.
- `spaktok.outcomes`: one outcome object or an array of them. Internal.
- `spaktok.deadletter`: the original bytes untouched, the reason in `dlq-*` headers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from spaktok.commands.base import COMMAND_TYPES, Command
from spaktok.commands.catalog import COMMAND_TYPES as _COMPLETE  # noqa: F401 - every command registered
from spaktok.commands.outcome import Outcome
from spaktok.events import contracts
from spaktok.events.base import EVENT_TYPES
from spaktok.events.envelope import TYPE_HEADER
from spaktok.events.examples import COMMAND, STREAM, example_model, wire_name
from spaktok.infra import topics
from spaktok.infra.bundles import BUNDLE_TYPE, MAX_MEMBERS
from spaktok.processors.deadletter import DLQ_HEADERS

DOCUMENT_FILE = contracts.ROOT / "schemas" / "asyncapi.json"
KAFKA_BINDING = "0.5.0"
SCHEMA_FORMAT = "application/schema+json;version=draft-2020-12"
EVENT_TOPIC_BY_AGGREGATE = {
    "stream": topics.EVENTS_STREAMS,
    "broadcaster": topics.EVENTS_BROADCASTERS,
    "audience": topics.EVENTS_AUDIENCES,
    "schedule": topics.EVENTS_SCHEDULES,
    "wallet": topics.EVENTS_WALLETS,
    "earnings": topics.EVENTS_EARNINGS,
    "battle": topics.EVENTS_BATTLES,
    "stream_shard": topics.EVENTS_STREAM_SHARDS,
}
# the command shown as each command topic's example
SAMPLE_COMMANDS = {
    "stream": "streams.SendComment",
    "broadcaster": "broadcasters.StartStream",
    "audience": "audiences.AddFollower",
    "schedule": "schedules.SetReminder",
    "wallet": "wallets.PurchaseCoins",
    "earnings": "earnings.RequestPayout",
    "battle": "battles.InviteBattle",
    "stream_shard": "stream_shards.RecordShardLikes",
}
PARTITIONING = (
    "Partitioned by key: murmur2 of the key's UTF-8 bytes, as the Java client hashes, so every record "
    "of one key is on one partition, in order. The partition count is deployment configuration."
)


def topic_of(event_type: str) -> topics.TopicSpec:
    """Where an event type is published: notices on `spaktok.notifications`, the rest on their
    aggregate's events topic (processors/*.py AggregateSpec)."""
    cls = EVENT_TYPES[event_type]
    return topics.NOTIFICATIONS if cls.notice else EVENT_TOPIC_BY_AGGREGATE[cls.aggregate_type]


def channel_id(spec: topics.TopicSpec) -> str:
    return spec.name.replace(".", "-")


def document(schemas: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """The whole AsyncAPI 3.0 document; `schemas`: the generated event schemas (file name -> schema)."""
    schemas = schemas if schemas is not None else contracts.generate()
    messages: dict[str, Any] = {}
    component_schemas: dict[str, Any] = {}
    per_topic: dict[str, list[str]] = {spec.name: [] for spec in topics.ALL_TOPICS}
    for event_type in sorted(EVENT_TYPES):
        cls = EVENT_TYPES[event_type]
        message_id = contracts.file_name(event_type, cls.schema_version).removesuffix(".json")
        schema = schemas[message_id + ".json"]
        component_schemas[message_id] = {"schemaFormat": SCHEMA_FORMAT, "schema": schema}
        messages[message_id] = _event_message(message_id, schema, topic_of(event_type))
        per_topic[topic_of(event_type).name].append(message_id)
    for aggregate, spec in topics.COMMAND_TOPIC_BY_AGGREGATE.items():
        message_id = f"{aggregate}-command"
        component_schemas[message_id] = {"schemaFormat": SCHEMA_FORMAT, "schema": _command_schema(aggregate)}
        messages[message_id] = _command_message(message_id, aggregate, spec)
        per_topic[spec.name].append(message_id)
    component_schemas["outcome"] = {"schemaFormat": SCHEMA_FORMAT, "schema": _outcome_schema()}
    messages["outcome"] = _outcome_message()
    per_topic[topics.OUTCOMES.name].append("outcome")
    messages["dead-letter"] = _deadletter_message()
    per_topic[topics.DEADLETTER.name].append("dead-letter")
    return {
        "asyncapi": "3.0.0",
        "info": _info(),
        "defaultContentType": "application/json",
        "servers": _servers(),
        "channels": {channel_id(s): _channel(s, per_topic[s.name]) for s in topics.ALL_TOPICS},
        "operations": {
            f"consume-{channel_id(s)}": _operation(s, per_topic[s.name]) for s in topics.ALL_TOPICS
        },
        "components": {"messages": messages, "schemas": component_schemas},
    }


def is_stale(path: Path = DOCUMENT_FILE) -> bool:
    """The committed document differs from the one the code builds (or is missing)."""
    return not path.exists() or path.read_text("utf-8") != contracts.dumps(document())


def write() -> bool:
    """Write the document to schemas/asyncapi.json; True when its text changed."""
    text = contracts.dumps(document())
    if DOCUMENT_FILE.exists() and DOCUMENT_FILE.read_text("utf-8") == text:
        return False
    DOCUMENT_FILE.write_text(text, "utf-8")
    return True


def _info() -> dict[str, Any]:
    return {
        "title": "Spaktok Live event log",
        "version": "1",
        "description": (
            "Every Kafka topic of Spaktok Live. The `spaktok.events.*` topics are the source of truth "
            "(retained forever) and the public contract: one JSON event envelope per record, keyed by "
            "the aggregate id, schema per type and version under schemas/events/ (docs/events.md). "
            "Command, outcome and dead-letter topics are internal and described for operators."
        ),
    }


def _servers() -> dict[str, Any]:
    return {
        "dev": {
            "host": "127.0.0.1:9092",
            "protocol": "kafka",
            "description": (
                "The embedded dev broker (Tansu, `spaktok dev`; the port may differ, see the data "
                "folder's processes.json). Clients known to work: confluent-kafka/librdkafka 2.x in "
                "Python, aiokafka, kafkajs 2.2.4. Debian's kcat 1.7.1 (librdkafka 2.0.2) fails its "
                "ApiVersions request against it. Address it as 127.0.0.1 (IPv4 listener)."
            ),
        },
        "production": {
            "host": "{bootstrap}",
            "protocol": "kafka",
            "description": "A Kafka cluster (any Kafka client works), set by SPAKTOK_BROKER.",
            "variables": {"bootstrap": {"default": "kafka:9092"}},
        },
    }


def _channel(spec: topics.TopicSpec, message_ids: list[str]) -> dict[str, Any]:
    retention = "forever" if spec.retention_ms < 0 else f"{spec.retention_ms // topics.DAY_MS} days"
    return {
        "address": spec.name,
        "title": spec.name,
        "description": (
            f"{spec.contents[:1].upper()}{spec.contents[1:]}. Key: {spec.key}. Written by: {spec.writer}. "
            f"Retention: {retention} ({spec.cleanup}). {PARTITIONING}"
        ),
        "messages": {m: {"$ref": f"#/components/messages/{m}"} for m in message_ids},
        "bindings": {
            "kafka": {
                "topic": spec.name,
                "topicConfiguration": {"retention.ms": spec.retention_ms, "cleanup.policy": [spec.cleanup]},
                "bindingVersion": KAFKA_BINDING,
            }
        },
    }


def _operation(spec: topics.TopicSpec, message_ids: list[str]) -> dict[str, Any]:
    cid = channel_id(spec)
    return {
        "action": "receive",
        "channel": {"$ref": f"#/channels/{cid}"},
        "summary": f"Consume {spec.name}",
        "messages": [{"$ref": f"#/channels/{cid}/messages/{m}"} for m in message_ids],
    }


def _key_binding(description: str) -> dict[str, Any]:
    return {"kafka": {"key": {"type": "string", "description": description}, "bindingVersion": KAFKA_BINDING}}


def _event_message(message_id: str, schema: dict[str, Any], spec: topics.TopicSpec) -> dict[str, Any]:
    event_type = schema["properties"]["type"]["const"]
    example = schema["examples"][0]
    notice = EVENT_TYPES[event_type].notice
    key = "the deciding aggregate's id (`aggregate_id`)" if notice else "the aggregate id (`aggregate_id`)"
    return {
        "name": event_type,
        "title": schema["title"],
        "summary": schema["description"],
        "contentType": "application/json",
        "headers": {
            "type": "object",
            "required": [TYPE_HEADER],
            "properties": {
                TYPE_HEADER: {"type": "string", "const": event_type, "description": "the event type"}
            },
        },
        "payload": {"$ref": f"#/components/schemas/{message_id}"},
        "bindings": _key_binding(f"UTF-8 {spec.key}: {key}"),
        "examples": [
            {"name": "example", "headers": {TYPE_HEADER: event_type}, "payload": example},
        ],
    }


def _command_schema(aggregate: str) -> dict[str, Any]:
    kinds = sorted(t for t, cls in COMMAND_TYPES.items() if cls.aggregate_type == aggregate)
    one = contracts.clean(Command.model_json_schema(mode="validation"))
    one.pop("title", None)
    one["properties"]["type"] = {"type": "string", "enum": kinds}
    one["required"] = sorted({"type", *one.get("required", [])})
    one["description"] = "One command; its other fields depend on `type` (commands/*.py)."
    return {
        "$schema": contracts.DRAFT,
        "title": f"{aggregate} command or bundle",
        "oneOf": [one, {"type": "array", "items": one, "minItems": 2, "maxItems": MAX_MEMBERS}],
    }


def _command_message(message_id: str, aggregate: str, spec: topics.TopicSpec) -> dict[str, Any]:
    sample = example_model(COMMAND_TYPES[SAMPLE_COMMANDS[aggregate]]).model_dump(mode="json")
    return {
        "name": message_id,
        "title": f"{aggregate} command or bundle (internal)",
        "summary": (
            f"A command, or a bundle: a JSON array of up to {MAX_MEMBERS} commands whose keys hash to "
            "this record's partition, keyed by the first member's aggregate id (infra/bundles.py)."
        ),
        "contentType": "application/json",
        "headers": {
            "type": "object",
            "properties": {
                "command-type": {"type": "string", "description": f"the command's type, or `{BUNDLE_TYPE}`"}
            },
        },
        "payload": {"$ref": f"#/components/schemas/{message_id}"},
        "bindings": _key_binding(f"UTF-8 {spec.key}"),
        "examples": [{"name": "one command", "headers": {"command-type": sample["type"]}, "payload": sample}],
    }


def _outcome_schema() -> dict[str, Any]:
    one = contracts.clean(Outcome.model_json_schema(mode="validation"))
    one.pop("title", None)
    return {
        "$schema": contracts.DRAFT,
        "title": "outcome or outcomes",
        "oneOf": [one, {"type": "array", "items": one}],
    }


def _outcome_message() -> dict[str, Any]:
    sample = Outcome(
        command_id=COMMAND,
        correlation_id=COMMAND,
        command_type="streams.SendComment",
        aggregate_id=STREAM,
        status="accepted",
        events=[{"type": wire_name(EVENT_TYPES["streams.CommentPosted"]), "sequence": 43, "payload": {}}],
    ).model_dump(mode="json")
    return {
        "name": "outcome",
        "title": "command outcome (internal)",
        "summary": "The final answer to a command for the API call waiting on it; outcomes of one worker "
        "batch travel as one JSON array.",
        "contentType": "application/json",
        "payload": {"$ref": "#/components/schemas/outcome"},
        "bindings": _key_binding(f"UTF-8 {topics.OUTCOMES.key}"),
        "examples": [{"name": "accepted", "payload": sample}],
    }


def _deadletter_message() -> dict[str, Any]:
    headers = {name: {"type": "string"} for name in (*DLQ_HEADERS, "dlq-source-key", "bundle-member")}
    return {
        "name": "dead-letter",
        "title": "dead letter",
        "summary": "A record that could not be decoded or handled: its original value byte for byte "
        "(a bundle member: that member alone), the reason and origin in headers (processors/deadletter.py).",
        "contentType": "application/octet-stream",
        "headers": {"type": "object", "required": list(DLQ_HEADERS), "properties": headers},
        "payload": {"description": "the original record value, untouched"},
        "bindings": _key_binding(f"UTF-8 {topics.DEADLETTER.key}"),
        "examples": [
            {
                "name": "undecodable",
                "headers": {
                    "dlq-error": "ValueError: unknown event type 'streams.Nope'",
                    "dlq-stage": "project:postgres",
                    "dlq-source-topic": topics.EVENTS_STREAMS.name,
                    "dlq-source-partition": "2",
                    "dlq-source-offset": "1187",
                },
                "payload": '{"type": "streams.Nope"}',
            }
        ],
    }
