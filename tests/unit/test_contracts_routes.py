"""GET /asyncapi.json and /docs/events, served by the contracts router alone (no stack needed: they
read no store); tests/integration/test_authorization_matrix.py holds them public on the real app."""

from __future__ import annotations

import json
import re

from fastapi import FastAPI
from fastapi.testclient import TestClient

from spaktok.api.routes import contracts as routes
from spaktok.events.catalog import EVENT_TYPES
from spaktok.infra import asyncapi, topics


def client() -> TestClient:
    app = FastAPI()
    app.include_router(routes.router)
    return TestClient(app)


def test_the_document_is_served_as_committed() -> None:
    answer = client().get("/asyncapi.json")
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/json"
    assert answer.json() == json.loads(asyncapi.DOCUMENT_FILE.read_text("utf-8"))


def test_the_page_lists_every_topic_and_event_type_and_loads_nothing_from_outside() -> None:
    answer = client().get("/docs/events")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/html")
    page = answer.text
    for spec in topics.ALL_TOPICS:
        assert f"<code>{spec.name}</code>" in page
    for event_type in EVENT_TYPES:
        assert f"<b>{event_type} v" in page
    assert "<td><code>coin_cost</code></td><td>integer</td><td>yes</td>" in page
    assert "<script" not in page and not re.search(r"(src|href)=['\"]?https?:", page)
