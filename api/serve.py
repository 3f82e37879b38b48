"""`spaktok api`: uvicorn on the public port, shared by several API processes, plus a private port.

Several API processes share one public port with `SO_REUSEPORT`: the kernel hands each new
connection to one of the processes listening, so no proxy sits between clients and the API on the
embedded stack (issue #20; in production a load balancer does it, deploy/). A process starts
listening only after its lifespan ran (uvicorn listens on the sockets it is given after start-up),
so a process still starting is never handed a connection, and one that died is no longer asked.

The private port reaches one process in particular: the processes that forward ClickHouse routes
use the chDB holder's (api/clickhouse_host.py), tests and operators use them to put traffic and
feed subscribers on a given process (`<data dir>/processes.json`).
"""

from __future__ import annotations

import socket

import uvicorn
from fastapi import FastAPI


def listening_socket(host: str, port: int, *, reuse_port: bool) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


def serve(
    app: FastAPI, host: str, port: int, *, reuse_port: bool, private_port: int | None, log_level: str
) -> None:
    """Blocks until SIGINT/SIGTERM. No permessage-deflate: the feed writes one message to thousands of
    sockets, and deflate would compress it once per socket (docs/realtime.md "Compression")."""
    sockets = [listening_socket(host, port, reuse_port=reuse_port)]
    if private_port is not None:
        sockets.append(listening_socket(host, private_port, reuse_port=False))
    config = uvicorn.Config(
        app, log_level=log_level, access_log=False, ws_per_message_deflate=False, host=host, port=port
    )
    uvicorn.Server(config).run(sockets=sockets)
