"""A reference model of the money rules, written from the spec and docs/money.md, not from the code.

Spec §3.3 `sendStreamGift` (check coins, deduct, split, record), §6.1 (standard broadcasters get 50 %
of a gift, premium 90 %), §6.3 (payouts from $10), docs/money.md (the broadcaster's share is the
floor, the remainder goes to the platform; a refused gift is refunded; a payment ref credits once;
an Idempotency-Key has one effect). It imports no decider: only configuration (the coin value, the
payout minimum). The system's state must equal it after every step of tests/unit/test_money_model.py.

The model is a set of plain dicts and, per aggregate, a queue of what it has been asked in the
order the log carries it: the test delivers an aggregate's queue in the system and here at the same
moment, so a gift in flight when its stream ends is refunded in both. Duplicates, redeliveries and
crashes are not modelled at all: they must not change anything, which is the point.
"""

from __future__ import annotations

from collections import defaultdict, deque
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from math import floor

# spec §6.1, written out here on purpose (not imported from the system's revenue rule)
BROADCASTER_PERCENT = {"standard": 50, "premium": 90}


@dataclass(frozen=True)
class Purchase:
    user: str
    ref: str
    coins: int


@dataclass(frozen=True)
class Send:
    """One client intent: `key` is the command id (the Idempotency-Key); the body may differ on reuse."""

    key: str
    user: str
    stream: str
    coins: int


@dataclass(frozen=True)
class Refund:
    key: str
    user: str
    coins: int


@dataclass(frozen=True)
class Delivery:
    key: str
    stream: str
    sender: str
    coins: int


@dataclass(frozen=True)
class StreamAction:
    stream: str
    kind: str  # "ban" | "end"
    user: str = ""


@dataclass(frozen=True)
class Credit:
    host: str
    coins: int


@dataclass(frozen=True)
class PayoutRequest:
    host: str
    payout_id: str
    coins: int


@dataclass(frozen=True)
class Settlement:
    host: str
    payout_id: str
    completed: bool


@dataclass
class Stream:
    host: str
    premium: bool
    live: bool = True
    banned: set[str] = field(default_factory=set)


@dataclass
class Earnings:
    available: int = 0
    reserved: int = 0
    paid_out: int = 0
    earned: int = 0
    payouts: dict[str, tuple[str, int]] = field(default_factory=dict)  # id -> (status, coins)


def broadcaster_share(coins: int, premium: bool) -> int:
    """§6.1 with docs/money.md's rounding: the broadcaster gets the floor of the percentage."""
    percent = BROADCASTER_PERCENT["premium" if premium else "standard"]
    return floor(Fraction(coins * percent, 100))


@dataclass
class MoneyModel:
    """Balances, earnings and platform revenue as the rules say they must be."""

    coin_value_usd: Decimal
    payout_minimum_usd: Decimal
    # False: a refused send or payout request binds nothing, the same key may take effect later (the
    # system as built). True: an intent is decided once, at its first arrival, refused or not (what
    # api/idempotency.py promises: "a repeat ... gets the first outcome")
    refusals_bind: bool = False
    tried: set[str] = field(default_factory=set)  # keys decided at least once (for refusals_bind)
    streams: dict[str, Stream] = field(default_factory=dict)
    wallets: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    refs: dict[tuple[str, str], int] = field(default_factory=dict)  # (user, ref) -> coins credited
    purchased: int = 0
    earnings: dict[str, Earnings] = field(default_factory=lambda: defaultdict(Earnings))
    platform: int = 0
    shares: int = 0  # broadcaster shares of the gifts taken (credited, or on their way to earnings)
    debited: dict[str, Send] = field(default_factory=dict)  # intent key -> the body that took effect
    taken: dict[str, int] = field(default_factory=dict)  # intent key -> coins the stream took
    refunded: dict[str, int] = field(default_factory=dict)  # intent key -> coins given back
    queues: dict[str, deque[object]] = field(default_factory=lambda: defaultdict(deque))

    def ask(self, aggregate: str, message: object) -> None:
        """A message joins the end of an aggregate's queue (as a record joins its partition)."""
        self.queues[aggregate].append(message)

    def deliver(self, aggregate: str) -> None:
        """The aggregate handles everything queued for it, in order."""
        queue = self.queues[aggregate]
        while queue:
            self._handle(queue.popleft())

    def _handle(self, message: object) -> None:
        match message:
            case Purchase(user, ref, coins):
                if (user, ref) not in self.refs:  # a ref credits once; another amount is refused
                    self.refs[(user, ref)] = coins
                    self.wallets[user] += coins
                    self.purchased += coins
            case Send():
                self._send(message)
            case Refund(key, user, coins):
                if key not in self.refunded:
                    self.refunded[key] = coins
                    self.wallets[user] += coins
            case Delivery():
                self._deliver(message)
            case StreamAction(stream, "ban", user):
                self.streams[stream].banned.add(user)
            case StreamAction(stream, "end"):
                self.streams[stream].live = False
            case Credit(host, coins):
                self.earnings[host].available += coins
                self.earnings[host].earned += coins
            case PayoutRequest():
                self._request_payout(message)
            case Settlement():
                self._settle(message)

    def _send(self, send: Send) -> None:
        """§3.3 steps 3-4: enough coins, then deduct. A key that took effect never takes another."""
        if send.key in self.debited or (self.refusals_bind and send.key in self.tried):
            return
        self.tried.add(send.key)
        if send.coins > self.wallets[send.user]:
            return
        self.wallets[send.user] -= send.coins
        self.debited[send.key] = send
        self.ask(send.stream, Delivery(send.key, send.stream, send.user, send.coins))

    def _deliver(self, gift: Delivery) -> None:
        """§3.3 steps 5-7 and §6.2: the stream takes the gift and splits it, or it is refunded."""
        stream = self.streams[gift.stream]
        if not stream.live or gift.sender in stream.banned or gift.sender == stream.host:
            self.ask(f"wallet:{gift.sender}", Refund(gift.key, gift.sender, gift.coins))
            return
        share = broadcaster_share(gift.coins, stream.premium)
        self.taken[gift.key] = gift.coins
        self.platform += gift.coins - share
        self.shares += share
        self.ask(f"earnings:{stream.host}", Credit(stream.host, share))

    def _request_payout(self, request: PayoutRequest) -> None:
        """§6.3: at least the minimum, at most what is available; the amount is reserved."""
        account = self.earnings[request.host]
        if request.payout_id in account.payouts or (self.refusals_bind and request.payout_id in self.tried):
            return
        self.tried.add(request.payout_id)
        if request.coins * self.coin_value_usd < self.payout_minimum_usd or request.coins > account.available:
            return
        account.available -= request.coins
        account.reserved += request.coins
        account.payouts[request.payout_id] = ("pending", request.coins)

    def _settle(self, settlement: Settlement) -> None:
        account = self.earnings[settlement.host]
        status, coins = account.payouts.get(settlement.payout_id, ("none", 0))
        if status != "pending":
            return
        account.reserved -= coins
        if settlement.completed:
            account.paid_out += coins
            account.payouts[settlement.payout_id] = ("completed", coins)
        else:
            account.available += coins
            account.payouts[settlement.payout_id] = ("failed", coins)

    def in_flight(self) -> int:
        """Coins debited and neither taken nor refunded yet."""
        return sum(s.coins for k, s in self.debited.items() if k not in self.taken and k not in self.refunded)
