"""The HTTP floor of this machine: how many requests/s the API answers when it does no work at all.

    python bench/http_floor.py            # GET /healthz, 256 in flight for 10 s, same load generator

It starts the embedded stack (so the API shares the cores with everything else, as in
bench/gifts.py), then drives `GET /healthz` (no auth, no Kafka, no database) with the aiohttp client
bench/gifts.py uses. Any endpoint that does real work, like a gift send, answers at most this fast
on this machine; the CPU each side spends per request is printed too.
"""

from __future__ import annotations

import argparse
import asyncio
import time

import aiohttp
from load import console, cpu_rows, cpu_seconds, start_stack
from rich.table import Table


async def drive(url: str, seconds: float, concurrency: int) -> tuple[int, float]:
    done = 0
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(url, connector=connector) as client:
        started = time.monotonic()
        stop_at = started + seconds

        async def one() -> None:
            nonlocal done
            while time.monotonic() < stop_at:
                async with client.get("/healthz") as r:
                    await r.read()
                done += 1

        await asyncio.gather(*(one() for _ in range(concurrency)))
        return done, time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--concurrency", type=int, default=256)
    args = parser.parse_args()
    stack = start_stack()
    try:
        before = cpu_seconds(stack)
        with console.status("GET /healthz"):
            done, seconds = asyncio.run(drive(stack.api_url, args.seconds, args.concurrency))
        cpu = cpu_rows(before, cpu_seconds(stack), done, seconds, unit="request")
    finally:
        stack.stop()
    table = Table(title="HTTP floor: GET /healthz on the embedded stack")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("requests answered/s", f"{done / seconds:,.0f}  ({done:,} in {seconds:.1f} s)")
    for name, value in cpu:
        table.add_row(name, value)
    console.print(table)


if __name__ == "__main__":
    main()
