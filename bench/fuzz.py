"""Fuzz the HTTP API from its own OpenAPI document with schemathesis, and list every 5xx.

    python bench/fuzz.py                                  # starts its own embedded stack
    python bench/fuzz.py --max-examples 40 --seed 7       # more cases per operation, another seed
    python bench/fuzz.py --api http://127.0.0.1:8000 --token USER_JWT --admin-token ADMIN_JWT

It runs `st run` (every phase: examples, coverage with its negative cases, fuzzing, stateful) twice:
as a plain user over every operation but the admin ones, then as an admin over those. A live stream,
a comment and a schedule are created first and offered to the generator as likely path values (half
of the draws), so requests reach behaviour (owner, viewer, moderation paths) and not only 404s.
Checks: `not_a_server_error` and `response_schema_conformance` (the document declares problem+json
for the 4xx it can answer). Rate limits are switched off on the stack it starts (they would turn
most of the run into 429s); against `--api` a 429 is counted as the 4xx it is.

Every request and answer is read back from schemathesis's HAR report: the table shows requests per
status class and operation count, then every 5xx with a curl line to reproduce it. The last line is
one JSON object; the exit code is 1 when any 5xx was seen.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from load import console
from rich.table import Table
from spaktok.api.auth import mint_token
from spaktok.infra.devstack import DevStack, free_port
from spaktok.settings import Settings

ADMIN_PATHS = r"^/v1/(admin|audit)/|^/v1/payouts/[^/]+/(complete|fail)$|^/v1/wallet/purchases$|^/metrics$"
ST = str(Path(sys.executable).with_name("st"))


@dataclass
class Seeds:
    """Ids that exist on the stack, offered to the generator as path values."""

    streams: list[str] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)
    schedules: list[str] = field(default_factory=list)
    users: list[str] = field(default_factory=list)


@dataclass
class Pass:
    name: str
    requests: int = 0
    classes: Counter[str] = field(default_factory=Counter)
    operations: int = 0
    server_errors: list[dict[str, Any]] = field(default_factory=list)
    exit_code: int = 0
    summary: str = ""


def seed(api: str, user_token: str, admin_token: str) -> Seeds:
    """A stream per token (the admin's is the one the user watches), a comment, a schedule."""
    seeds = Seeds(users=["fuzz-user", "fuzz-admin"])
    for token in (user_token, admin_token):
        client = httpx.Client(base_url=api, headers={"Authorization": f"Bearer {token}"}, timeout=30)
        r = client.post("/v1/streams", json={"title": "fuzz", "category": "chat", "tags": ["fuzz"]})
        if r.status_code == 201:
            seeds.streams.append(r.json()["streamId"])
        when = (datetime.now(UTC) + timedelta(days=3)).isoformat()
        r = client.post("/v1/schedules", json={"title": "fuzz", "category": "chat", "scheduledFor": when})
        if r.status_code in (200, 201) and "scheduleId" in r.json():
            seeds.schedules.append(r.json()["scheduleId"])
    if seeds.streams:
        viewer = httpx.Client(base_url=api, headers={"Authorization": f"Bearer {user_token}"}, timeout=30)
        target = seeds.streams[-1]
        viewer.post(f"/v1/streams/{target}/viewers")
        r = viewer.post(f"/v1/streams/{target}/comments", json={"text": "hello from the fuzzer"})
        if r.status_code == 201 and r.json().get("commentId"):
            seeds.comments.append(r.json()["commentId"])
    return seeds


def config_file(seeds: Seeds, directory: Path) -> Path:
    """schemathesis.toml: the seeds as dictionaries, drawn for half of the matching path values."""
    lines: list[str] = []
    bindings = {
        "stream_id": seeds.streams,
        "comment_id": seeds.comments,
        "schedule_id": seeds.schedules,
        "user_id": seeds.users,
    }
    for name, values in bindings.items():
        if values:
            lines += [f"[dictionaries.{name}]", f"values = {json.dumps(values)}", ""]
    lines.append("[parameters]")
    for name, values in bindings.items():
        if values:
            lines.append(f'"path.{name}" = {{ dictionary = "{name}", probability = 0.5 }}')
    path = directory / "schemathesis.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def curl(request: dict[str, Any]) -> str:
    """A curl line for one HAR request; the bearer token is left as $TOKEN."""
    parts = ["curl", "-X", request["method"]]
    for header in request["headers"]:
        name = header["name"]
        if name.lower() in {"user-agent", "accept-encoding", "connection", "content-length", "x-schemathesis-testcaseid"}:
            continue
        value = "Bearer $TOKEN" if name.lower() == "authorization" else header["value"]
        parts += ["-H", f"{name}: {value}"]
    body = (request.get("postData") or {}).get("text")
    if body:
        parts += ["--data-raw", body]
    parts.append(request["url"])
    return " ".join(shlex.quote(p) if "$TOKEN" not in p else f'"{p}"' for p in parts)


def run_pass(name: str, api: str, token: str, args: argparse.Namespace, cfg: Path, where: list[str], out: Path) -> Pass:
    har = out / f"{name}.har"
    command = [
        ST, "--config-file", str(cfg), "run", f"{api}/openapi.json",
        "-H", f"Authorization: Bearer {token}",
        "--checks", "not_a_server_error,response_schema_conformance",
        "--max-examples", str(args.max_examples), "--seed", str(args.seed),
        "--workers", str(args.workers), "--request-timeout", "30",
        "--report", "har", "--report-har-path", str(har),
        "--no-color", "--output-truncate", "true", *where,
    ]
    with console.status(f"schemathesis: {name} pass"):
        done = subprocess.run(command, capture_output=True, text=True, cwd=out)
    (out / f"{name}.log").write_text(done.stdout + done.stderr)
    result = Pass(name, exit_code=done.returncode)
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    result.summary = lines[-1].strip("= ") if lines else done.stderr.strip()[-300:]
    for line in done.stdout.splitlines():
        if line.strip().startswith("Tested:"):
            result.operations = int(line.split(":")[1])
    entries = json.loads(har.read_text())["log"]["entries"] if har.exists() else []
    for entry in entries:
        status = entry["response"]["status"]
        result.requests += 1
        result.classes[f"{status // 100}xx"] += 1
        if status >= 500:
            result.server_errors.append(
                {
                    "method": entry["request"]["method"],
                    "url": entry["request"]["url"],
                    "status": status,
                    "curl": curl(entry["request"]),
                    "body": (entry["response"].get("content") or {}).get("text", "")[:300],
                }
            )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--api", help="a running API (default: start an embedded stack)")
    parser.add_argument("--token", help="a user's bearer token for --api")
    parser.add_argument("--admin-token", help="an admin's bearer token for --api (admin operations)")
    parser.add_argument("--max-examples", type=int, default=25, help="per operation and phase")
    parser.add_argument("--seed", type=int, default=1)
    # 2 is faster; with 2, hypothesis 6.170 sometimes trips on its own lambda-source cache
    # ("AST constructor recursion depth mismatch"): a tool error, shown in the table, not an API answer
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    stack = None
    if args.api:
        if not (args.token and args.admin_token):
            parser.error("--api needs --token and --admin-token")
        api, user_token, admin_token = args.api.rstrip("/"), args.token, args.admin_token
    else:
        data_dir = Path(tempfile.mkdtemp(prefix="spaktok-fuzz-"))
        stack = DevStack(data_dir=data_dir, api_port=free_port(), partitions=4)
        stack.extra_env["SPAKTOK_RATE_LIMITS_ENABLED"] = "false"
        with console.status("starting the embedded stack"):
            stack.start()
        api, settings = stack.api_url, Settings()
        user_token = mint_token(settings, "fuzz-user")
        admin_token = mint_token(settings, "fuzz-admin", roles=["admin"])
    started = time.monotonic()
    try:
        seeds = seed(api, user_token, admin_token)
        out = Path(tempfile.mkdtemp(prefix="spaktok-fuzz-report-"))
        cfg = config_file(seeds, out)
        passes = [
            run_pass("user", api, user_token, args, cfg, ["--exclude-path-regex", ADMIN_PATHS], out),
            run_pass("admin", api, admin_token, args, cfg, ["--include-path-regex", ADMIN_PATHS], out),
        ]
    finally:
        if stack is not None:
            stack.stop()
    seconds = time.monotonic() - started

    table = Table(title=f"schemathesis over /openapi.json (seed {args.seed}, max-examples {args.max_examples})")
    for column in ("pass", "operations", "requests", "2xx", "3xx", "4xx", "5xx", "schemathesis says"):
        table.add_column(column, justify="right" if column not in ("pass", "schemathesis says") else "left")
    for p in passes:
        table.add_row(
            p.name, str(p.operations), f"{p.requests:,}",
            *(f"{p.classes.get(c, 0):,}" for c in ("2xx", "3xx", "4xx", "5xx")), p.summary,
        )
    console.print(table)
    errors = [e for p in passes for e in p.server_errors]
    if errors:
        failures = Table(title="5xx answers")
        for column in ("status", "method", "url", "reproduce"):
            failures.add_column(column, overflow="fold")
        for e in errors:
            failures.add_row(str(e["status"]), e["method"], e["url"], e["curl"])
        console.print(failures)
    console.print(f"reports and schemathesis logs: {out}")
    figures = {
        "requests": sum(p.requests for p in passes),
        "server_errors": len(errors),
        "operations": sum(p.operations for p in passes),
        "seconds": round(seconds, 1),
        "by_class": dict(sum((p.classes for p in passes), Counter())),
        "seed": args.seed,
        "max_examples": args.max_examples,
        "schemathesis_exit_codes": [p.exit_code for p in passes],
    }
    print(json.dumps(figures))  # noqa: T201 - the last line is the machine-readable result
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    main()
