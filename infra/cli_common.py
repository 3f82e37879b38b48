"""What the `spaktok` commands share: their consoles and the reading of the API's problem answers."""

from __future__ import annotations

from typing import Any

from rich.console import Console

console = Console(stderr=True)
out = Console()


def problem_type(response: Any) -> str:
    try:
        return str(response.json().get("type", ""))
    except ValueError:  # not JSON: not our API's problem answer (a wrong --api URL?)
        return ""


def detail(response: Any) -> str:
    try:
        return str(response.json().get("detail", response.text))
    except ValueError:
        return response.text or str(response.status_code)


def clickhouse(dsn: str) -> tuple[Any, str]:
    from spaktok.projections.clickhouse import ClickHouse

    return ClickHouse(dsn), dsn
