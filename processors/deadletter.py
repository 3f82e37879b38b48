"""Dead-letter records: the original bytes untouched, the reason and origin in headers.

A record on `spaktok.deadletter` is keyed by the original key (as text) and its value is the
original value, byte for byte (a bundle member: that member's JSON alone, header `bundle-member`).
Headers: `dlq-error` (the exception, one line), `dlq-stage` (where it failed: `decode`, `validate`
and `decide` in the worker, `project:<projector>` in a projector, `outcomes` in an API process),
`dlq-source-topic`, `dlq-source-partition`, `dlq-source-offset` and, when the original had a key,
`dlq-source-key` (its exact bytes, which the text key cannot always carry). See docs/decisions.md,
"Dead letters".
"""

from __future__ import annotations

import traceback

DLQ_HEADERS = ("dlq-error", "dlq-stage", "dlq-source-topic", "dlq-source-partition", "dlq-source-offset")


def deadletter_headers(
    error: BaseException,
    *,
    stage: str,
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None = None,
) -> list[tuple[str, bytes]]:
    """The headers of one dead letter; `key`: the original record's key, if it had one."""
    reason = "".join(traceback.format_exception_only(type(error), error)).strip()[:2000]
    headers = [
        ("dlq-error", reason.encode()),
        ("dlq-stage", stage.encode()),
        ("dlq-source-topic", topic.encode()),
        ("dlq-source-partition", str(partition).encode()),
        ("dlq-source-offset", str(offset).encode()),
    ]
    if key is not None:
        headers.append(("dlq-source-key", key))
    return headers


def text_key(key: bytes | None) -> str:
    """The dead letter's own key: the original as text (undecodable bytes replaced; the exact bytes
    travel in `dlq-source-key`), so it lands on a partition by the same key."""
    return (key or b"").decode("utf-8", "replace")
