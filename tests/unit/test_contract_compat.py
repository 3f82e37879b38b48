"""The compatibility check can fail: each hand-made change below is built as a real model (a copy of
`streams.GiftReceived` with one field removed, retyped or added), put in the registry in place of
the real one, and its generated schema compared with the committed v1 (docs/events.md)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

import pytest
from pydantic import create_model

from spaktok.events import compat, contracts
from spaktok.events.base import EVENT_TYPES, UPCASTERS, Event
from spaktok.events.streams import GiftReceived, StreamStarted

WIRE = "streams.GiftReceived"
COMMITTED = contracts.committed()


def variant(
    base: type[Event] = GiftReceived, *, drop: tuple[str, ...] = (), version: int = 1, **fields: Any
) -> type[Event]:
    """A model like `base` with fields dropped, replaced or added (`name=(type, default or ...)`)."""
    kept: dict[str, Any] = {
        name: (f.annotation, f.default if not f.is_required() else ...)
        for name, f in base.model_fields.items()
        if name not in drop
    }
    kept.update(fields)
    cls = create_model(base.__name__, __base__=base.__mro__[1], **kept)  # type: ignore[call-overload]
    cls.schema_version = version
    return cls  # type: ignore[no-any-return]


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Swap a variant into the registry (and upcasters) for one test; restored after."""

    def install(cls: type[Event], upcasters: tuple[int, ...] = ()) -> list[str]:
        wire = cls.model_fields["type"].default
        monkeypatch.setitem(EVENT_TYPES, wire, cls)
        for version in upcasters:
            monkeypatch.setitem(UPCASTERS, (wire, version), lambda payload: payload)
        return compat.check(COMMITTED, contracts.generate())

    yield install


def test_the_committed_contracts_pass_unchanged(registry: Any) -> None:
    assert registry(GiftReceived) == []


def test_a_removed_field_is_refused(registry: Any) -> None:
    problems = registry(variant(drop=("combo_id",)))
    assert problems == [
        "streams.GiftReceived v1: payload.combo_id: field removed "
        "(raise schema_version to 2 and register an upcaster from v1)"
    ]


def test_a_retyped_field_is_refused(registry: Any) -> None:
    problems = registry(variant(coin_cost=(str, ...)))
    assert problems == [
        "streams.GiftReceived v1: payload.coin_cost: retyped from integer to string "
        "(raise schema_version to 2 and register an upcaster from v1)"
    ]


def test_a_new_required_field_is_refused(registry: Any) -> None:
    problems = registry(variant(currency=(str, ...)))
    assert len(problems) == 1 and "payload.currency: new required field" in problems[0]


def test_an_optional_field_made_required_is_refused(registry: Any) -> None:
    problems = registry(variant(sender_profile_image=(str | None, ...)))
    assert len(problems) == 1 and "payload.sender_profile_image: made required" in problems[0]


def test_a_narrowed_enum_is_refused_and_a_widened_one_is_not(registry: Any) -> None:
    narrowed = Literal["public", "followers"]
    problems = registry(variant(StreamStarted, privacy=(narrowed, ...)))
    assert len(problems) == 1 and "payload.privacy: enum values removed ['private']" in problems[0]
    widened = Literal["public", "followers", "private", "subscribers"]
    assert registry(variant(StreamStarted, privacy=(widened, ...))) == []


def test_a_new_optional_field_is_compatible(registry: Any) -> None:
    """Compatible, yet the committed file is now out of date: the regeneration check asks for it."""
    cls = variant(currency=(str, "COIN"), sticker=(str | None, None))
    assert registry(cls) == []
    assert contracts.stale() == ["streams.GiftReceived.v1.json"]


def test_a_breaking_change_with_a_new_version_and_an_upcaster_passes(registry: Any) -> None:
    cls = variant(drop=("combo_id",), coin_cost=(str, ...), version=2)
    assert registry(cls, upcasters=(1,)) == []
    assert "streams.GiftReceived.v2.json" in contracts.generate()  # v1's file stays next to it


def test_a_new_version_without_an_upcaster_is_refused(registry: Any) -> None:
    problems = registry(variant(drop=("combo_id",), version=2))
    assert problems == [
        "streams.GiftReceived: v1 is published but no upcaster lifts it to v2 "
        "(@register_upcaster('streams.GiftReceived', 1))"
    ]


def test_a_lowered_version_and_a_removed_type_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    committed = {**COMMITTED, "streams.GiftReceived.v2.json": COMMITTED["streams.GiftReceived.v1.json"]}
    assert compat.check(committed, contracts.generate()) == [
        "streams.GiftReceived: schema_version lowered from 2 to 1"
    ]
    monkeypatch.delitem(EVENT_TYPES, WIRE)
    assert compat.check(COMMITTED, contracts.generate()) == [
        "streams.GiftReceived: event type removed, but the log still holds it (keep the model)"
    ]


def test_an_incompatible_envelope_change_is_refused() -> None:
    envelope = COMMITTED[contracts.ENVELOPE_FILE]
    changed = {**envelope, "required": [*envelope["required"], "tenant_id"]}
    changed["properties"] = {**envelope["properties"], "tenant_id": {"type": "string"}}
    generated = {**contracts.generate(), contracts.ENVELOPE_FILE: changed}
    assert compat.check(COMMITTED, generated) == ["envelope: tenant_id: new required field"]


def test_incompatibilities_reach_into_nested_objects_and_lists() -> None:
    old = {
        "type": "object",
        "properties": {
            "top": {"type": "array", "items": {"type": "object", "properties": {"n": {"type": "integer"}}}}
        },
    }
    new = {
        "type": "object",
        "properties": {
            "top": {"type": "array", "items": {"type": "object", "properties": {"n": {"type": "number"}}}}
        },
    }
    assert compat.incompatibilities(old, new) == ["top[].n: retyped from integer to number"]
    described = {"type": "object", "properties": {"top": {**old["properties"]["top"], "description": "why"}}}
    assert compat.incompatibilities(old, described) == []
