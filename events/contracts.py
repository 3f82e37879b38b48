"""The published event contracts: one JSON Schema per event type and version, and the envelope's.

Generated from the pydantic models (STYLE: a wire schema is never written twice by hand) into
`schemas/events/` by `spaktok contracts generate`; `tests/unit/test_contracts.py` regenerates them
and fails on any difference, and `spaktok.events.compat` refuses an incompatible change to a
version already published (docs/events.md, "Compatibility").

A type's schema describes the whole Kafka record value as a consumer receives it: the envelope
with `type`, `schema_version` and `aggregate_type` fixed, and the payload (the model's fields
without `type`). Each file is self-contained (no `$ref`), so any JSON Schema 2020-12 validator
can use it alone, and each carries an example record that validates.

Published payloads are open (no `additionalProperties: false`, unlike the strict models): a new
optional field within one version must not make a consumer's validation refuse new records.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from spaktok.events.base import EVENT_TYPES, Event
from spaktok.events.catalog import EVENT_TYPES as _COMPLETE  # noqa: F401 - every module registered
from spaktok.events.envelope import Envelope
from spaktok.events.examples import example_envelope, wire_name
from spaktok.events.streams import GiftReceived

DRAFT = "https://json-schema.org/draft/2020-12/schema"
ID_BASE = "https://spaktok.dev/schemas/events/"
ROOT = Path(__file__).resolve().parents[1]
SCHEMA_DIR = ROOT / "schemas" / "events"
ENVELOPE_FILE = "envelope.json"
# keywords that describe, not constrain: ignored by the compatibility check, dropped from fields
NOISE = ("title",)


def file_name(event_type: str, version: int) -> str:
    return f"{event_type}.v{version}.json"


def envelope_schema() -> dict[str, Any]:
    """The envelope every event travels in, whatever its type: what to read before dispatching."""
    schema = clean(Envelope.model_json_schema(mode="validation"))
    schema["properties"]["payload"] = {
        "type": "object",
        "description": "the event's fields; their schema is `<type>.v<schema_version>.json`",
    }
    example = example_envelope(GiftReceived).model_dump(mode="json")
    return {
        "$schema": DRAFT,
        "$id": ID_BASE + ENVELOPE_FILE,
        "title": "Event envelope",
        "description": (
            "One event as one Kafka record value (JSON, UTF-8). `event_id` is deterministic (a retried "
            "command yields the same ids): de-duplicate by it. `sequence` is gap-free per aggregate; "
            "0 for refusals (`*.CommandRejected`) and notices, which change no aggregate."
        ),
        **{k: v for k, v in schema.items() if k not in ("title", "description")},
        "examples": [example],
    }


def event_schema(cls: type[Event]) -> dict[str, Any]:
    """The schema of one event type's records at its current version, with an example."""
    wire, version = wire_name(cls), cls.schema_version
    envelope = clean(Envelope.model_json_schema(mode="validation"))
    payload = clean(cls.model_json_schema(mode="validation"))
    payload.pop("title", None)
    payload["properties"].pop("type", None)
    payload["required"] = [name for name in payload.get("required", []) if name != "type"]
    properties = envelope["properties"]
    properties["type"] = {"const": wire, "type": "string"}
    properties["schema_version"] = {"const": version, "type": "integer"}
    properties["aggregate_type"] = {"const": cls.aggregate_type, "type": "string"}
    properties["payload"] = payload
    return {
        "$schema": DRAFT,
        "$id": ID_BASE + file_name(wire, version),
        "title": f"{wire} v{version}",
        "description": " ".join((cls.__doc__ or wire).split()),
        "type": "object",
        "properties": properties,
        "required": envelope["required"],
        "examples": [example_envelope(cls).model_dump(mode="json")],
    }


def generate() -> dict[str, dict[str, Any]]:
    """File name -> schema for the envelope and every event type's current version."""
    files = {ENVELOPE_FILE: envelope_schema()}
    for wire in sorted(EVENT_TYPES):
        cls = EVENT_TYPES[wire]
        files[file_name(wire, cls.schema_version)] = event_schema(cls)
    return files


def dumps(document: dict[str, Any]) -> str:
    """The committed text of a document: stable key order from generation, two-space indent."""
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def committed(directory: Path = SCHEMA_DIR) -> dict[str, dict[str, Any]]:
    """Every schema file in `directory` (current and older versions), by file name."""
    if not directory.is_dir():
        return {}
    return {p.name: json.loads(p.read_text("utf-8")) for p in sorted(directory.glob("*.json"))}


def write(directory: Path = SCHEMA_DIR) -> list[str]:
    """Write the generated schemas; older versions' files stay (the log still holds such events).
    Returns the names of the files that changed."""
    directory.mkdir(parents=True, exist_ok=True)
    changed = []
    for name, schema in generate().items():
        path = directory / name
        text = dumps(schema)
        if not path.exists() or path.read_text("utf-8") != text:
            path.write_text(text, "utf-8")
            changed.append(name)
    return changed


def stale(directory: Path = SCHEMA_DIR) -> list[str]:
    """Generated files whose committed text differs or is missing (older versions' files are kept)."""
    names = []
    for name, schema in generate().items():
        path = directory / name
        if not path.exists() or path.read_text("utf-8") != dumps(schema):
            names.append(name)
    return names


def clean(schema: dict[str, Any]) -> dict[str, Any]:
    """Inline every `$ref`, drop field titles and closed-object markers (see the module doc)."""
    defs = schema.get("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, list):
            return [walk(item) for item in node]
        if not isinstance(node, dict):
            return node
        if "$ref" in node:
            name = node["$ref"].removeprefix("#/$defs/")
            if name == node["$ref"]:
                raise ValueError(f"unexpected reference {node['$ref']!r}")
            return walk({**copy.deepcopy(defs[name]), **{k: v for k, v in node.items() if k != "$ref"}})
        out = {}
        for key, value in node.items():
            if key == "$defs" or (key == "additionalProperties" and value is False):
                continue
            if key == "properties":
                out[key] = {name: _untitled(walk(field)) for name, field in value.items()}
            else:
                out[key] = walk(value)
        return out

    result: dict[str, Any] = walk(schema)
    return result


def _untitled(field: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in field.items() if k not in NOISE}
