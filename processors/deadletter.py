"""Dead-letter records: the original bytes untouched, the reason and origin in headers."""

from __future__ import annotations

import traceback

DLQ_HEADERS = ("dlq-error", "dlq-stage", "dlq-source-topic", "dlq-source-partition", "dlq-source-offset")


def deadletter_headers(
    error: BaseException, *, stage: str, topic: str, partition: int, offset: int
) -> list[tuple[str, bytes]]:
    reason = "".join(traceback.format_exception_only(type(error), error)).strip()[:2000]
    return [
        ("dlq-error", reason.encode()),
        ("dlq-stage", stage.encode()),
        ("dlq-source-topic", topic.encode()),
        ("dlq-source-partition", str(partition).encode()),
        ("dlq-source-offset", str(offset).encode()),
    ]
