"""The published event contracts (docs/events.md): committed files equal what the models generate,
every event type has a schema whose example validates and decodes, and the AsyncAPI document
describes every topic of the registry with messages that point at those schemas."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema_rs
import orjson
import pytest

from spaktok.events import compat, contracts
from spaktok.events.catalog import EVENT_TYPES
from spaktok.events.envelope import decode_projectable
from spaktok.infra import asyncapi, topics

GENERATED = contracts.generate()


def validator(schema: dict[str, Any]) -> Any:
    return jsonschema_rs.Draft202012Validator(schema, validate_formats=True)


def test_committed_schemas_and_asyncapi_equal_what_the_models_generate() -> None:
    assert contracts.stale() == [], "run `spaktok contracts generate` and commit schemas/"
    assert not asyncapi.is_stale(), "run `spaktok contracts generate` and commit schemas/asyncapi.json"


def test_committed_contracts_are_compatible_with_the_models() -> None:
    assert compat.check(contracts.committed(), GENERATED) == []


def test_a_hand_edited_schema_file_is_found_stale(tmp_path: Path) -> None:
    """The regenerate-and-compare check can fail: one committed file changed by hand."""
    contracts.write(tmp_path)
    assert contracts.stale(tmp_path) == []
    path = tmp_path / "streams.GiftReceived.v1.json"
    schema = json.loads(path.read_text("utf-8"))
    schema["properties"]["payload"]["properties"]["coin_cost"] = {"type": "string"}
    path.write_text(contracts.dumps(schema), "utf-8")
    (tmp_path / "envelope.json").unlink()
    assert sorted(contracts.stale(tmp_path)) == ["envelope.json", "streams.GiftReceived.v1.json"]


def test_a_hand_edited_asyncapi_document_is_found_stale(tmp_path: Path) -> None:
    path = tmp_path / "asyncapi.json"
    path.write_text(contracts.dumps(asyncapi.document()), "utf-8")
    assert not asyncapi.is_stale(path)
    path.write_text(path.read_text("utf-8").replace("spaktok.events.streams", "spaktok.events.stream"))
    assert asyncapi.is_stale(path)


def test_every_event_type_has_a_schema_at_its_version() -> None:
    names = {contracts.file_name(t, cls.schema_version) for t, cls in EVENT_TYPES.items()}
    assert names <= set(GENERATED)
    assert set(GENERATED) - names == {contracts.ENVELOPE_FILE}
    assert len(names) == len(EVENT_TYPES) > 80


@pytest.mark.parametrize("name", sorted(GENERATED))
def test_each_example_validates_against_its_schema_and_decodes(name: str) -> None:
    schema = GENERATED[name]
    validator(json.loads(json.dumps(schema)))  # a well-formed 2020-12 schema
    assert schema["$schema"] == contracts.DRAFT and schema["examples"]
    envelope = validator(GENERATED[contracts.ENVELOPE_FILE])
    for example in schema["examples"]:
        errors = [e.message for e in validator(schema).iter_errors(example)]
        assert errors == [], errors
        assert envelope.is_valid(example)  # every record is an envelope, whatever its type
        assert decode_projectable(orjson.dumps(example)).event()  # and what the projectors accept


def test_a_record_that_breaks_its_schema_is_refused() -> None:
    """The schemas constrain: a wrong type, a missing field, another type's payload all fail."""
    schema = GENERATED["streams.GiftReceived.v1.json"]
    good = schema["examples"][0]
    check = validator(schema)
    assert check.is_valid(good)
    assert not check.is_valid({**good, "payload": {**good["payload"], "coin_cost": "60"}})
    assert not check.is_valid(
        {**good, "payload": {k: v for k, v in good["payload"].items() if k != "gift_tx"}}
    )
    assert not check.is_valid({**good, "type": "streams.GiftRefused"})
    assert not check.is_valid({**good, "occurred_at": "last night"})
    # open payloads: a field added later within the version does not invalidate the record
    assert check.is_valid({**good, "payload": {**good["payload"], "sticker": "heart"}})


def test_asyncapi_describes_every_topic_and_every_event_type() -> None:
    document = asyncapi.document(GENERATED)
    assert document["asyncapi"] == "3.0.0"
    channels = document["channels"]
    assert sorted(c["address"] for c in channels.values()) == sorted(s.name for s in topics.ALL_TOPICS)
    listed = {ref["$ref"].rsplit("/", 1)[1] for c in channels.values() for ref in c["messages"].values()}
    messages = document["components"]["messages"]
    assert listed == set(messages)
    for event_type, cls in EVENT_TYPES.items():
        message_id = f"{event_type}.v{cls.schema_version}"
        channel = channels[asyncapi.channel_id(asyncapi.topic_of(event_type))]
        assert message_id in channel["messages"], event_type
        message = messages[message_id]
        schema = document["components"]["schemas"][message_id]["schema"]
        assert schema == GENERATED[f"{message_id}.json"]
        assert message["headers"]["properties"]["event-type"]["const"] == event_type
        assert validator(schema).is_valid(message["examples"][0]["payload"])
    for channel in channels.values():
        assert "Key:" in channel["description"] and "murmur2" in channel["description"]
        for operation_ref in document["operations"].values():
            assert operation_ref["action"] == "receive"


def test_internal_topics_describe_bundles_and_their_examples_validate() -> None:
    document = asyncapi.document(GENERATED)
    schemas = document["components"]["schemas"]
    for aggregate, spec in topics.COMMAND_TOPIC_BY_AGGREGATE.items():
        message = document["components"]["messages"][f"{aggregate}-command"]
        check = validator(schemas[f"{aggregate}-command"]["schema"])
        one = message["examples"][0]["payload"]
        assert check.is_valid(one) and check.is_valid([one, one])  # a command, or a bundle
        assert not check.is_valid([one])  # a lone command travels as itself, never as a bundle
        assert spec.name in document["channels"][asyncapi.channel_id(spec)]["address"]
    outcome = validator(schemas["outcome"]["schema"])
    example = document["components"]["messages"]["outcome"]["examples"][0]["payload"]
    assert outcome.is_valid(example) and outcome.is_valid([example, example])


def test_notices_are_published_on_the_notifications_topic() -> None:
    notices = {t for t, cls in EVENT_TYPES.items() if cls.notice}
    assert notices and all(asyncapi.topic_of(t) is topics.NOTIFICATIONS for t in notices)
    assert asyncapi.topic_of("streams.GiftReceived") is topics.EVENTS_STREAMS


def test_the_documented_topic_of_each_aggregate_is_where_its_processor_publishes() -> None:
    """infra/asyncapi.py names each aggregate's events topic; the worker's processors are the truth."""
    from spaktok.processors.app import AGGREGATES

    specs = [spec for spec, _ in AGGREGATES]
    assert {s.aggregate_type: s.events_topic for s in specs} == {
        aggregate: spec.name for aggregate, spec in asyncapi.EVENT_TOPIC_BY_AGGREGATE.items()
    }
    for spec in specs:
        if spec.notice_topic is not None:
            assert spec.notice_topic == topics.NOTIFICATIONS.name


CATALOG_PROBE = """
import importlib, json, pkgutil
import spaktok.commands, spaktok.events
from spaktok.commands.catalog import COMMAND_TYPES
from spaktok.events.catalog import EVENT_TYPES
before = set(COMMAND_TYPES) | set(EVENT_TYPES)
for package in (spaktok.commands, spaktok.events):
    for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        importlib.import_module(module.name)
print(json.dumps(sorted((set(COMMAND_TYPES) | set(EVENT_TYPES)) - before)))
"""


def test_the_catalogs_hold_every_registered_type() -> None:
    """The contracts list what the catalogs import: a command or event module left out of its
    catalog would make the document depend on what else a process happened to import (it did:
    commands/enforcement.py was missing). In a fresh interpreter, so nothing here is polluted."""
    done = subprocess.run([sys.executable, "-c", CATALOG_PROBE], capture_output=True, text=True, check=True)
    assert json.loads(done.stdout) == []
