"""The compatibility check: may the current models replace the committed event contracts?

The log is never rewritten (DESIGN §2), so every event ever written must still decode, and a
consumer reading a published version must still understand new records of that version. Against
the committed schema of the same version, these changes are refused (docs/events.md):

- a field removed (old records carry it, and the strict models refuse unknown fields),
- a field retyped (its type, format, constraints or nested shape changed; an enum may only grow),
- a new required field, or an optional one made required (old records lack it).

Such a change needs a new `schema_version` and a registered upcaster from the old one
(`events.base.register_upcaster`); the old version's file then stays committed next to the new.
A new optional field (with a default) is compatible. Removing an event type, or lowering a
version, is refused too: the log still holds those events.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from spaktok.events.base import EVENT_TYPES, UPCASTERS
from spaktok.events.contracts import ENVELOPE_FILE, NOISE, file_name

FILE = re.compile(r"^(?P<type>.+)\.v(?P<version>\d+)\.json$")
DESCRIPTIVE = (*NOISE, "description", "examples", "default")


def incompatibilities(old: Mapping[str, Any], new: Mapping[str, Any], path: str = "") -> list[str]:
    """How `new` breaks records valid under `old` (empty: compatible). Schemas are inlined (no $ref)."""
    if _is_object(old) and _is_object(new):
        return _object_changes(old, new, path)
    if "enum" in old and "enum" in new and _bare(old, "enum") == _bare(new, "enum"):
        lost = [v for v in old["enum"] if v not in new["enum"]]
        return [f"{path or 'value'}: enum values removed {lost}"] if lost else []
    if (
        old.get("type") == "array"
        and new.get("type") == "array"
        and _bare(old, "items") == _bare(new, "items")
    ):
        return incompatibilities(old.get("items", {}), new.get("items", {}), f"{path}[]")
    if _bare(old) != _bare(new):
        return [f"{path or 'value'}: retyped from {_shape(old)} to {_shape(new)}"]
    return []


def _object_changes(old: Mapping[str, Any], new: Mapping[str, Any], path: str) -> list[str]:
    problems = []
    old_props, new_props = old.get("properties", {}), new.get("properties", {})
    for name, schema in old_props.items():
        where = f"{path}.{name}" if path else name
        if name not in new_props:
            problems.append(f"{where}: field removed")
        else:
            problems.extend(incompatibilities(schema, new_props[name], where))
    was_required = set(old.get("required", []))
    for name in new.get("required", []):
        if name not in was_required:
            where = f"{path}.{name}" if path else name
            problems.append(f"{where}: {'new required field' if name not in old_props else 'made required'}")
    return problems


def check(
    committed: Mapping[str, Mapping[str, Any]], generated: Mapping[str, Mapping[str, Any]]
) -> list[str]:
    """Every reason the generated schemas may not replace the committed ones (file name -> schema)."""
    problems = []
    versions: dict[str, list[int]] = {}
    for name in committed:
        match = FILE.match(name)
        if match:
            versions.setdefault(match["type"], []).append(int(match["version"]))
        elif name != ENVELOPE_FILE:
            problems.append(f"{name}: not an event schema file (<type>.v<N>.json)")
    if ENVELOPE_FILE in committed and ENVELOPE_FILE in generated:
        problems.extend(
            f"envelope: {p}" for p in incompatibilities(committed[ENVELOPE_FILE], generated[ENVELOPE_FILE])
        )
    for event_type, published in sorted(versions.items()):
        cls = EVENT_TYPES.get(event_type)
        if cls is None:
            problems.append(f"{event_type}: event type removed, but the log still holds it (keep the model)")
            continue
        current = cls.schema_version
        if max(published) > current:
            problems.append(f"{event_type}: schema_version lowered from {max(published)} to {current}")
            continue
        same = file_name(event_type, current)
        if same in committed and same in generated:
            changes = incompatibilities(committed[same], generated[same])
            problems.extend(
                f"{event_type} v{current}: {c} (raise schema_version to {current + 1} and register an "
                f"upcaster from v{current})"
                for c in changes
            )
        for version in published:
            problems.extend(_upcast_gaps(event_type, version, current))
    return problems


def _upcast_gaps(event_type: str, version: int, current: int) -> list[str]:
    """Events of an older published version must be liftable to the current one step by step."""
    return [
        f"{event_type}: v{step} is published but no upcaster lifts it to v{step + 1} "
        f"(@register_upcaster({event_type!r}, {step}))"
        for step in range(version, current)
        if (event_type, step) not in UPCASTERS
    ]


def _is_object(schema: Mapping[str, Any]) -> bool:
    return schema.get("type") == "object" and "properties" in schema


def _bare(schema: Mapping[str, Any], *also: str) -> dict[str, Any]:
    """The schema's constraints only: what makes a value valid or not."""
    return {k: v for k, v in schema.items() if k not in DESCRIPTIVE and k not in also}


def _shape(schema: Mapping[str, Any]) -> str:
    bare = _bare(schema)
    if "anyOf" in bare:
        return " | ".join(_shape(s) for s in bare["anyOf"])
    kind = str(bare.get("type", "any"))
    fmt = bare.get("format")
    return f"{kind} ({fmt})" if fmt else kind
