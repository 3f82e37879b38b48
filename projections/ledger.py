"""`spaktok ledger check`: the money invariants of DESIGN §3, verified against the log and the read models.

The log is the truth. `audit` replays the wallet, stream-gift and earnings events (duplicates
dropped by aggregate sequence, as every consumer does) and checks, for every coin:

- per event: balances carried on the events equal the replayed ones and never go negative;
  every gift's `broadcaster_share + platform_share == coin_cost`; per aggregate, sequences are
  gap-free (a gap is a lost event);
- per gift saga: each debit has exactly one stream decision for the same coins; a taken gift is
  credited to its broadcaster exactly once with its share; a refused gift is refunded exactly once;
  nothing is decided, credited or refunded that was never debited;
- per PK battle: a winner's bonus is credited exactly once, to the winner, for the amount the result
  names; no bonus is credited that no battle result names;
- globally: coins purchased == coins in wallets + coins spent (debits − refunds), and coins spent ==
  broadcaster shares + platform shares (+ gifts still in flight, which a settled system has none of);
  earnings credited == gift shares credited + PK bonuses credited == available + reserved + paid out;
- per transaction id (projections/ledger_invariants.py): each send id debited once, each payment
  ref credited once, each gift saga in one final state, each payout reserved once and settled once.

`compare_read_models` then checks the Postgres read models hold exactly the replayed figures.
"""

from __future__ import annotations

import time
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from sqlalchemy import Engine, text

import spaktok.events.catalog  # noqa: F401 - every money event must be decodable here
from spaktok.commands.earnings import PK_BONUS_PREFIX
from spaktok.events.envelope import Envelope, decode_envelope
from spaktok.infra import topics
from spaktok.projections import ledger_invariants
from spaktok.projections.ledger_invariants import Kind, Transaction

LEDGER_TOPICS = (topics.EVENTS_WALLETS, topics.EVENTS_STREAMS, topics.EVENTS_EARNINGS, topics.EVENTS_BATTLES)
GIFT_EVENTS = {"streams.GiftReceived", "streams.GiftRefused"}
BATTLE_RESULT = "battles.BattleEnded"


@dataclass
class Wallet:
    balance: int = 0
    purchased: int = 0
    spent: int = 0
    refunded: int = 0


@dataclass
class Earnings:
    balance: int = 0
    reserved: int = 0
    earned: int = 0
    paid_out: int = 0
    payouts: dict[str, str] = field(default_factory=dict)  # id -> status


@dataclass
class StreamGifts:
    gifts: int = 0
    revenue: int = 0
    broadcaster_share: int = 0
    platform_share: int = 0
    rows: int = 0


@dataclass
class LedgerReport:
    """What the log says, and every way it breaks the invariants (`problems`)."""

    events: int = 0
    duplicates: int = 0
    undecodable: int = 0  # foreign records on the topics (the projectors dead-letter them too)
    wallets: dict[str, Wallet] = field(default_factory=lambda: defaultdict(Wallet))
    earnings: dict[str, Earnings] = field(default_factory=lambda: defaultdict(Earnings))
    streams: dict[str, StreamGifts] = field(default_factory=lambda: defaultdict(StreamGifts))
    in_flight: dict[str, int] = field(default_factory=dict)  # debited, not decided: tx -> coins
    awaiting_refund: dict[str, int] = field(default_factory=dict)  # refused, not refunded yet
    awaiting_credit: dict[str, int] = field(default_factory=dict)  # taken, not credited yet
    awaiting_bonus: dict[str, int] = field(default_factory=dict)  # battle won, bonus not credited yet
    gift_credits: int = 0
    pk_bonuses: int = 0
    problems: list[str] = field(default_factory=list)
    # (kind, transaction id) -> what the log holds under it (projections/ledger_invariants.py)
    transactions: dict[tuple[Kind, str], Transaction] = field(default_factory=dict)

    @property
    def settled(self) -> bool:
        return not (self.in_flight or self.awaiting_refund or self.awaiting_credit or self.awaiting_bonus)

    def totals(self) -> dict[str, int]:
        return {
            "purchased": sum(w.purchased for w in self.wallets.values()),
            "in wallets": sum(w.balance for w in self.wallets.values()),
            "spent (debits - refunds)": sum(w.spent - w.refunded for w in self.wallets.values()),
            "broadcaster shares": sum(s.broadcaster_share for s in self.streams.values()),
            "platform shares": sum(s.platform_share for s in self.streams.values()),
            "in flight": sum(self.in_flight.values()) + sum(self.awaiting_refund.values()),
            "earnings credited": sum(e.earned for e in self.earnings.values()),
            "gift shares credited": self.gift_credits,
            "PK bonuses credited": self.pk_bonuses,
            "earnings available": sum(e.balance for e in self.earnings.values()),
            "earnings reserved": sum(e.reserved for e in self.earnings.values()),
            "earnings paid out": sum(e.paid_out for e in self.earnings.values()),
        }


def audit(envelopes: Iterable[Envelope]) -> LedgerReport:
    """Replay money events (any order across aggregates; each aggregate's own order is restored)."""
    report = LedgerReport()
    by_aggregate: dict[tuple[str, str], dict[int, Envelope]] = defaultdict(dict)
    for env in envelopes:
        if env.sequence == 0:
            continue  # refusals and notices move no coins
        if env.aggregate_type == "stream" and env.type not in GIFT_EVENTS:
            by_aggregate[("stream", env.aggregate_id)].setdefault(env.sequence, env)
            continue
        slot = by_aggregate[(env.aggregate_type, env.aggregate_id)]
        if env.sequence in slot:
            report.duplicates += 1
            if slot[env.sequence].event_id != env.event_id:
                report.problems.append(
                    f"{env.aggregate_type} {env.aggregate_id}: two events at sequence {env.sequence}"
                )
            continue
        slot[env.sequence] = env
    debits: dict[str, tuple[str, int]] = {}  # tx -> (sender, coins)
    decided: dict[str, Envelope] = {}
    refunds: dict[str, int] = {}
    credits: dict[str, int] = {}
    bonuses_won: dict[str, tuple[str, int]] = {}  # battle -> (winner, bonus)
    bonuses_credited: dict[str, tuple[str, int]] = {}
    ordered: list[Envelope] = []
    for (kind, aggregate_id), events in by_aggregate.items():
        sequences = sorted(events)
        if sequences != list(range(1, len(sequences) + 1)):
            missing = sorted(set(range(1, sequences[-1] + 1)) - set(sequences))[:5]
            report.problems.append(
                f"{kind} {aggregate_id} is missing event sequence(s) {missing}: events were lost"
            )
        ordered.extend(events[s] for s in sequences if _moves_money(events[s]))
    report.events = len(ordered)
    for env in ordered:
        if env.aggregate_type == "wallet":
            _wallet(report, env, debits, refunds)
        elif env.aggregate_type == "stream":
            _stream(report, env, decided)
        elif env.aggregate_type == "earnings":
            _earnings(report, env, credits, bonuses_credited)
        elif env.aggregate_type == "battle" and env.payload["winner_bonus"] > 0:
            bonuses_won[env.aggregate_id] = (env.payload["winner_id"], env.payload["winner_bonus"])
    _sagas(report, debits, decided, refunds, credits)
    _bonuses(report, bonuses_won, bonuses_credited)
    _conservation(report)
    report.transactions = ledger_invariants.index(ordered)
    report.problems += ledger_invariants.check(ordered, report.transactions)
    return report


def _moves_money(env: Envelope) -> bool:
    """Of a stream, only its gift decisions; of a battle, only its result (which may carry a bonus)."""
    if env.aggregate_type == "stream":
        return env.type in GIFT_EVENTS
    if env.aggregate_type == "battle":
        return env.type == BATTLE_RESULT
    return True


def _wallet(
    report: LedgerReport, env: Envelope, debits: dict[str, tuple[str, int]], refunds: dict[str, int]
) -> None:
    p, user = env.payload, env.aggregate_id
    wallet = report.wallets[user]
    if env.type == "wallets.CoinsPurchased":
        wallet.balance += p["coins"]
        wallet.purchased += p["coins"]
    elif env.type == "wallets.GiftDebited":
        wallet.balance -= p["coins"]
        wallet.spent += p["coins"]
        if p["gift_tx"] in debits:
            report.problems.append(f"gift {p['gift_tx']} was debited twice")
        debits[p["gift_tx"]] = (user, p["coins"])
    elif env.type == "wallets.GiftRefunded":
        wallet.balance += p["coins"]
        wallet.refunded += p["coins"]
        if p["gift_tx"] in refunds:
            report.problems.append(f"gift {p['gift_tx']} was refunded twice")
        refunds[p["gift_tx"]] = p["coins"]
    else:
        return
    if wallet.balance < 0:
        report.problems.append(f"wallet {user} went negative ({wallet.balance}) at sequence {env.sequence}")
    if p["balance"] != wallet.balance:
        report.problems.append(
            f"wallet {user} event {env.sequence} says balance {p['balance']}, replayed {wallet.balance}"
        )


def _stream(report: LedgerReport, env: Envelope, decided: dict[str, Envelope]) -> None:
    p = env.payload
    if p["gift_tx"] in decided:
        report.problems.append(f"gift {p['gift_tx']} was decided twice by stream {env.aggregate_id}")
    decided[p["gift_tx"]] = env
    if env.type != "streams.GiftReceived":
        return
    stream = report.streams[env.aggregate_id]
    stream.gifts += p["count"]
    stream.revenue += p["coin_cost"]
    stream.broadcaster_share += p["broadcaster_share"]
    stream.platform_share += p["platform_share"]
    stream.rows += 1
    if (
        p["broadcaster_share"] + p["platform_share"] != p["coin_cost"]
        or min(p["broadcaster_share"], p["platform_share"]) < 0
    ):
        report.problems.append(
            f"gift {p['gift_tx']}: shares {p['broadcaster_share']} + {p['platform_share']} "
            f"!= cost {p['coin_cost']}"
        )
    if (p["gifts"], p["gift_revenue"]) != (stream.gifts, stream.revenue):
        report.problems.append(
            f"stream {env.aggregate_id} #{env.sequence}: {p['gifts']} gifts / {p['gift_revenue']} coins, "
            f"the replay says {stream.gifts} / {stream.revenue}"
        )


def _earnings(
    report: LedgerReport, env: Envelope, credits: dict[str, int], bonuses: dict[str, tuple[str, int]]
) -> None:
    p, owner = env.payload, env.aggregate_id
    account = report.earnings[owner]
    if env.type == "earnings.EarningsCredited":
        account.balance += p["coins"]
        account.earned += p["coins"]
        if p.get("source") == "pk_bonus":
            battle = p["stream_id"].removeprefix(PK_BONUS_PREFIX)
            if battle in bonuses:
                report.problems.append(f"the bonus of battle {battle} was credited twice")
            bonuses[battle] = (owner, p["coins"])
            report.pk_bonuses += p["coins"]
        else:
            if p["gift_tx"] in credits:
                report.problems.append(f"gift {p['gift_tx']} was credited twice")
            credits[p["gift_tx"]] = p["coins"]
            report.gift_credits += p["coins"]
    elif env.type == "earnings.PayoutRequested":
        account.balance -= p["coins"]
        account.reserved += p["coins"]
        account.payouts[p["payout_id"]] = "pending"
    elif env.type in ("earnings.PayoutCompleted", "earnings.PayoutFailed"):
        if account.payouts.get(p["payout_id"]) != "pending":
            report.problems.append(f"payout {p['payout_id']} settled while not pending")
        account.reserved -= p["coins"]
        if env.type == "earnings.PayoutCompleted":
            account.paid_out += p["coins"]
            account.payouts[p["payout_id"]] = "completed"
        else:
            account.balance += p["coins"]
            account.payouts[p["payout_id"]] = "failed"
    else:
        return
    if account.balance < 0 or account.reserved < 0:
        report.problems.append(f"earnings of {owner} went negative at sequence {env.sequence}")
    for name, replayed in (("balance", account.balance), ("reserved", account.reserved)):
        if name in p and p[name] != replayed:
            report.problems.append(
                f"earnings of {owner} event {env.sequence} says {name} {p[name]}, the replay says {replayed}"
            )


def _sagas(
    report: LedgerReport,
    debits: dict[str, tuple[str, int]],
    decided: dict[str, Envelope],
    refunds: dict[str, int],
    credits: dict[str, int],
) -> None:
    for tx, (sender, coins) in debits.items():
        decision = decided.get(tx)
        if decision is None:
            report.in_flight[tx] = coins
            continue
        p = decision.payload
        if p["coin_cost"] != coins or p["sender_id"] != sender:
            report.problems.append(
                f"gift {tx}: debited {coins} from {sender}, decided {p['coin_cost']} from {p['sender_id']}"
            )
        if decision.type == "streams.GiftRefused":
            if tx not in refunds:
                report.awaiting_refund[tx] = coins
            elif refunds[tx] != coins:
                report.problems.append(f"gift {tx}: debited {coins}, refunded {refunds[tx]}")
            if tx in credits:
                report.problems.append(f"gift {tx} was refused and yet credited")
        else:
            if tx in refunds:
                report.problems.append(f"gift {tx} was taken and yet refunded")
            if tx not in credits:
                report.awaiting_credit[tx] = p["broadcaster_share"]
            elif credits[tx] != p["broadcaster_share"]:
                report.problems.append(f"gift {tx}: share {p['broadcaster_share']}, credited {credits[tx]}")
    for tx in decided.keys() - debits.keys():
        report.problems.append(f"gift {tx} was decided by a stream but never debited")
    for tx in refunds.keys() - debits.keys():
        report.problems.append(f"gift {tx} was refunded but never debited")
    for tx in credits.keys() - decided.keys():
        report.problems.append(f"gift {tx} was credited but never taken by a stream")


def _bonuses(
    report: LedgerReport, won: dict[str, tuple[str, int]], credited: dict[str, tuple[str, int]]
) -> None:
    for battle, (winner, bonus) in won.items():
        if battle not in credited:
            report.awaiting_bonus[battle] = bonus
        elif credited[battle] != (winner, bonus):
            owner, coins = credited[battle]
            report.problems.append(
                f"battle {battle}: {winner} won a bonus of {bonus}; {owner} was credited {coins}"
            )
    for battle in credited.keys() - won.keys():
        report.problems.append(f"a PK bonus was credited for battle {battle}, whose result names none")


def _conservation(report: LedgerReport) -> None:
    t = report.totals()
    spent = t["spent (debits - refunds)"]
    if t["purchased"] != t["in wallets"] + spent:
        report.problems.append(
            f"coins purchased {t['purchased']} != in wallets {t['in wallets']} + spent {spent}"
        )
    if spent != t["broadcaster shares"] + t["platform shares"] + t["in flight"]:
        report.problems.append(
            f"coins spent {spent} != broadcaster {t['broadcaster shares']} + platform "
            f"{t['platform shares']} + in flight {t['in flight']}"
        )
    delivered = t["broadcaster shares"] - sum(report.awaiting_credit.values())
    if t["gift shares credited"] != delivered:
        report.problems.append(
            f"gift shares credited {t['gift shares credited']} != shares of gifts delivered {delivered}"
        )
    if t["earnings credited"] != t["gift shares credited"] + t["PK bonuses credited"]:
        report.problems.append(
            f"earnings credited {t['earnings credited']} != gift shares {t['gift shares credited']} + "
            f"PK bonuses {t['PK bonuses credited']}"
        )
    if t["earnings credited"] != t["earnings available"] + t["earnings reserved"] + t["earnings paid out"]:
        report.problems.append("earnings credited != available + reserved + paid out")


def _claims_money(raw: bytes) -> bool:
    """Does an undecodable record say it is a money event (then it cannot be skipped)?"""
    try:
        kind = orjson.loads(raw).get("type", "")
    except Exception:  # noqa: BLE001 - not even JSON: foreign bytes, dead-lettered by the projectors
        return False
    return isinstance(kind, str) and (
        kind.startswith(("wallets.", "earnings.")) or kind in GIFT_EVENTS or kind == BATTLE_RESULT
    )


def read_log(broker: str, idle_s: float = 1.0, timeout_s: float = 300.0) -> tuple[list[Envelope], int, int]:
    """Every record of the ledger topics, from the beginning until past the end and quiet for `idle_s`;
    then how many records could not be decoded, and how many of those claim to be money events.

    (The dev broker can report a stale high watermark, so the end is confirmed by silence too.)
    """
    undecodable = unreadable_money = 0
    consumer = Consumer(
        {"bootstrap.servers": broker, "group.id": f"ledger-{uuid.uuid4().hex}", "enable.auto.commit": False}
    )
    envelopes: list[Envelope] = []
    try:
        assignment = []
        for spec in LEDGER_TOPICS:
            metadata = consumer.list_topics(spec.name, timeout=10)
            if spec.name not in metadata.topics or metadata.topics[spec.name].error is not None:
                continue
            assignment += [
                TopicPartition(spec.name, p, OFFSET_BEGINNING) for p in metadata.topics[spec.name].partitions
            ]
        consumer.assign(assignment)
        high = {
            (tp.topic, tp.partition): consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in assignment
        }
        position: dict[tuple[str, int], int] = {}
        deadline = time.monotonic() + timeout_s
        quiet_since = time.monotonic()
        while time.monotonic() < deadline:
            batch = consumer.consume(5000, timeout=0.2)
            if batch:
                quiet_since = time.monotonic()
            for msg in batch:
                if msg.error() is not None:
                    continue
                position[(msg.topic(), msg.partition())] = msg.offset() + 1
                try:
                    envelopes.append(decode_envelope(msg.value()))
                except Exception:  # noqa: BLE001 - counted: it might have been money
                    undecodable += 1
                    unreadable_money += _claims_money(msg.value() or b"")
            caught_up = all(position.get(key, 0) >= end for key, end in high.items())
            if caught_up and time.monotonic() - quiet_since >= idle_s:
                break
    finally:
        consumer.close()
    return envelopes, undecodable, unreadable_money


def compare_read_models(report: LedgerReport, engine: Engine) -> list[str]:
    """Differences between the Postgres read models and the replayed log."""
    problems: list[str] = []
    with engine.connect() as conn:
        wallets = {
            r[0]: Wallet(balance=r[1], purchased=r[2], spent=r[3], refunded=r[4])
            for r in conn.execute(text("SELECT user_id, balance, purchased, spent, refunded FROM wallets"))
        }
        earnings = {
            r[0]: (r[1], r[2], r[3], r[4])
            for r in conn.execute(
                text("SELECT broadcaster_id, balance, reserved, total_earned, paid_out FROM earnings")
            )
        }
        gifts = {
            r[0]: (r[1], r[2], r[3], r[4], r[5])
            for r in conn.execute(
                text(
                    "SELECT stream_id, SUM(count), SUM(coin_cost), SUM(broadcaster_share), "
                    "SUM(platform_share), "
                    "COUNT(*) FROM stream_gifts GROUP BY stream_id"
                )
            )
        }
        stream_docs = {
            r[0]: (r[1], r[2])
            for r in conn.execute(
                text("SELECT stream_id, gifts, gift_revenue FROM live_streams WHERE stream_id = ANY(:ids)"),
                {"ids": list(report.streams)},
            )
        }
        payouts = {r[0]: r[1] for r in conn.execute(text("SELECT payout_id, status FROM payouts"))}
    for user, wallet in report.wallets.items():
        if wallets.get(user) != wallet:
            problems.append(f"read model wallet {user}: {wallets.get(user)} != log {wallet}")
    for user in wallets.keys() - report.wallets.keys():
        problems.append(f"read model has wallet {user} that the log does not")
    for owner, account in report.earnings.items():
        expected = (account.balance, account.reserved, account.earned, account.paid_out)
        if earnings.get(owner) != expected:
            problems.append(f"read model earnings {owner}: {earnings.get(owner)} != log {expected}")
        for payout_id, status in account.payouts.items():
            if payouts.get(payout_id) != status:
                problems.append(f"read model payout {payout_id}: {payouts.get(payout_id)} != log {status}")
    for owner in earnings.keys() - report.earnings.keys():
        problems.append(f"read model has earnings of {owner} that the log does not")
    for stream_id, stream in report.streams.items():
        expected_rows = (
            stream.gifts,
            stream.revenue,
            stream.broadcaster_share,
            stream.platform_share,
            stream.rows,
        )
        if gifts.get(stream_id) != expected_rows:
            problems.append(
                f"read model stream_gifts of {stream_id}: {gifts.get(stream_id)} != log {expected_rows}"
            )
        doc = stream_docs.get(stream_id)
        if doc is not None and doc != (stream.gifts, stream.revenue):
            problems.append(
                f"live_streams {stream_id}: gifts/revenue {doc} != log {stream.gifts}/{stream.revenue}"
            )
    for stream_id in gifts.keys() - report.streams.keys():
        problems.append(f"read model has gifts of stream {stream_id} that the log does not")
    return problems


def check(broker: str, engine: Engine | None, wait_s: float = 0.0) -> tuple[LedgerReport, list[str]]:
    """Audit the log (and the read models when an engine is given); while sagas are still in flight
    or the read models lag, look again until `wait_s` has passed."""
    deadline = time.monotonic() + wait_s
    while True:
        envelopes, undecodable, unreadable_money = read_log(broker)
        report = audit(envelopes)
        report.undecodable = undecodable
        if unreadable_money:
            report.problems.append(f"{unreadable_money} money event(s) on the log could not be decoded")
        differences = compare_read_models(report, engine) if engine is not None else []
        if (report.settled and not differences) or time.monotonic() >= deadline:
            return report, differences
        time.sleep(1.0)


def summary_rows(report: LedgerReport) -> list[tuple[str, Any]]:
    rows: list[tuple[str, Any]] = [
        ("money events (deduplicated)", report.events),
        ("duplicates dropped", report.duplicates),
        ("foreign records skipped", report.undecodable),
    ]
    rows += list(report.totals().items())
    rows += [
        ("wallets", len(report.wallets)),
        ("broadcasters", len(report.earnings)),
        ("streams with gifts", len(report.streams)),
    ]
    return rows
