"""The published event contracts over HTTP (docs/events.md): the AsyncAPI document and a page of it.

Public, like the OpenAPI document: they describe the log's shape, never its data. Built once per
process from the models (`infra.asyncapi`), which the suite holds equal to the committed
schemas/asyncapi.json. The page is rendered here, with no script and nothing fetched from outside
(nothing outside the machine is reachable in the dev stack). Neither route is in the OpenAPI
document, as /openapi.json is not: the fuzz has nothing to learn from them.
"""

from __future__ import annotations

import json
from functools import lru_cache
from html import escape
from typing import Any

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response

router = APIRouter(include_in_schema=False)


@lru_cache(maxsize=1)
def _document() -> bytes:
    from spaktok.infra import asyncapi  # loads every model: only when first asked

    return json.dumps(asyncapi.document(), ensure_ascii=False).encode()


@lru_cache(maxsize=1)
def _page() -> str:
    return render(json.loads(_document()))


@router.get("/asyncapi.json")
async def asyncapi_document() -> Response:
    return Response(await run_in_threadpool(_document), media_type="application/json")


@router.get("/docs/events")
async def events_page() -> HTMLResponse:
    return HTMLResponse(await run_in_threadpool(_page))


STYLE = """body{font:15px/1.5 system-ui,sans-serif;max-width:70rem;margin:2rem auto;padding:0 1rem;color:#222}
code,pre{font:13px ui-monospace,monospace}pre{background:#f5f5f5;padding:.6rem;overflow:auto;max-height:24rem}
table{border-collapse:collapse;margin:.4rem 0}td,th{border:1px solid #ddd;padding:.2rem .5rem;text-align:left}
details{margin:.3rem 0 .3rem 1rem}summary{cursor:pointer}h2{border-top:2px solid #333;padding-top:.8rem}"""


def render(document: dict[str, Any]) -> str:
    """The document as one HTML page: servers, then each channel with its messages' fields."""
    info = document["info"]
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{escape(info['title'])}: event contracts</title><style>{STYLE}</style></head><body>",
        f"<h1>{escape(info['title'])}</h1><p>{escape(info['description'])}</p>",
        "<p>Machine-readable: <a href='/asyncapi.json'>/asyncapi.json</a> (AsyncAPI "
        f"{escape(document['asyncapi'])}). Compatibility rules, keys, headers and bundles: "
        "docs/events.md.</p>",
        "<h2 id='servers'>Servers</h2><ul>",
    ]
    for name, server in document["servers"].items():
        parts.append(
            f"<li><b>{escape(name)}</b> <code>{escape(server['host'])}</code> "
            f"({escape(server['protocol'])}): {escape(server['description'])}</li>"
        )
    parts.append("</ul><h2>Channels</h2><ul>")
    for cid, channel in document["channels"].items():
        parts.append(f"<li><a href='#{escape(cid)}'><code>{escape(channel['address'])}</code></a></li>")
    parts.append("</ul>")
    messages = document["components"]["messages"]
    schemas = document["components"]["schemas"]
    for cid, channel in document["channels"].items():
        parts.append(f"<h2 id='{escape(cid)}'><code>{escape(channel['address'])}</code></h2>")
        parts.append(f"<p>{escape(channel['description'])}</p>")
        for ref in channel["messages"].values():
            message_id = ref["$ref"].rsplit("/", 1)[1]
            parts.append(_message(messages[message_id], schemas.get(message_id, {}).get("schema")))
    parts.append("</body></html>")
    return "".join(parts)


def _message(message: dict[str, Any], schema: dict[str, Any] | None) -> str:
    key = message.get("bindings", {}).get("kafka", {}).get("key", {}).get("description", "")
    headers = ", ".join(f"<code>{escape(h)}</code>" for h in message.get("headers", {}).get("properties", {}))
    parts = [
        f"<details><summary><b>{escape(message['title'])}</b> — "
        f"{escape(message.get('summary', ''))}</summary>",
        f"<p>Key: {escape(key)}. Headers: {headers or 'none'}. Content type: "
        f"<code>{escape(message.get('contentType', ''))}</code>.</p>",
    ]
    payload = (schema or {}).get("properties", {}).get("payload")
    if payload and "properties" in payload:
        parts.append("<table><tr><th>payload field</th><th>type</th><th>required</th></tr>")
        required = set(payload.get("required", []))
        for name, field in payload["properties"].items():
            parts.append(
                f"<tr><td><code>{escape(name)}</code></td><td>{escape(_type(field))}</td>"
                f"<td>{'yes' if name in required else 'no'}</td></tr>"
            )
        parts.append("</table>")
    for example in message.get("examples", []):
        body = json.dumps(example.get("payload"), indent=2, ensure_ascii=False)
        parts.append(f"<p>Example ({escape(example.get('name', ''))}):</p><pre>{escape(body)}</pre>")
    parts.append("</details>")
    return "".join(parts)


def _type(field: dict[str, Any]) -> str:
    """A field's type in a few words: `string (date-time)`, `integer | null`, one of the enum's values."""
    if "anyOf" in field:
        return " | ".join(_type(branch) for branch in field["anyOf"])
    if "enum" in field:
        return "one of " + ", ".join(json.dumps(v) for v in field["enum"])
    if "const" in field:
        return json.dumps(field["const"])
    kind = str(field.get("type", "any"))
    if kind == "array":
        return f"array of {_type(field.get('items', {}))}"
    return f"{kind} ({field['format']})" if "format" in field else kind
