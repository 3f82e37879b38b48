"""The wallet decider: coins never go negative, each payment and each gift has one effect.

Duplicates are recognised by the wallet itself, not only by the worker's bounded memory of command
ids: payment refs are kept for good, gift sends for `IDEMPOTENCY_WINDOW_MS` (client retries with the
same Idempotency-Key), and refunds by the gift's sequence number.

The send ids are kept in buckets of `SEND_BUCKET_MS` by debit time (`split` stores the newest with
the wallet and, beyond `INLINE_SENDS` ids, each older one as a part): a gift rewrites the newest
buckets only, never a heavy gifter's whole day, and a bucket is forgotten whole once all of it is
older than the window.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from spaktok.commands.base import Command, Rejection
from spaktok.commands.stream_state import millis
from spaktok.commands.wallets import PurchaseCoins, RefundGift, SendGift, gift_transaction_id
from spaktok.events.base import Event
from spaktok.events.wallets import CoinsPurchased, GiftDebited, GiftRefunded

IDEMPOTENCY_WINDOW_MS = 24 * 3600 * 1000  # a retried gift send is recognised this long (Stripe: 24 h)
SEND_BUCKET_MS = 10 * 60 * 1000  # send ids are kept and stored per 10 minutes of debit time
SENDS_PART = "sends-"  # stored part name of a bucket: "sends-<bucket number>"
INLINE_SENDS = 200  # send ids stored with the wallet itself before older buckets become parts


@dataclass(frozen=True, slots=True)
class WalletState:
    version: int = 0
    balance: int = 0
    purchased: int = 0
    spent: int = 0  # debited for gifts, refunds not deducted
    refunded: int = 0
    gift_seq: int = 0  # gifts debited so far; the next one is gift_seq + 1
    payment_refs: dict[str, int] = field(default_factory=dict)  # ref -> coins credited
    refunded_seqs: dict[str, None] = field(default_factory=dict)  # gift seqs refunded (as str keys)
    # debit time // SEND_BUCKET_MS -> {SendGift id: debited at (ms)}, oldest bucket first
    recent_sends: dict[int, dict[str, int]] = field(default_factory=dict)

    def stats(self) -> dict[str, Any]:
        return {"balance": self.balance}

    def sent(self, send_id: str) -> bool:
        """Whether this SendGift was debited within the window (at most one lookup per bucket)."""
        return any(send_id in bucket for bucket in self.recent_sends.values())

    def to_dict(self) -> dict[str, Any]:
        data = {name: getattr(self, name) for name in self.__dataclass_fields__}
        data["recent_sends"] = {str(bucket): sends for bucket, sends in self.recent_sends.items()}
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WalletState:
        sends = data.get("recent_sends", {})
        buckets: dict[int, dict[str, int]] = {}
        for key, value in sends.items():
            if isinstance(value, dict):  # bucketed: {"<bucket>": {id: ms}} (JSON keys are strings)
                buckets[int(key)] = value
            else:  # stored before buckets: {id: ms}
                buckets.setdefault(value // SEND_BUCKET_MS, {})[key] = value
        return cls(**{**data, "recent_sends": dict(sorted(buckets.items()))})


def split(state: WalletState) -> tuple[dict[str, Any], dict[str, Any]]:
    """The stored form: the scalars, the refs and the newest send buckets in the main record (a gift
    changes them anyway), each older bucket a part of its own once the record holds
    `INLINE_SENDS` send ids.

    Which buckets are parts only grows from the oldest end (the newest buckets only gain ids), so a
    bucket is written as a part once, and the worker recognises it as unchanged by identity after
    that (`AggregateRunner._store`). A wallet that sends a few gifts a day costs one record per gift,
    as before buckets; a heavy gifter's record stays bounded instead of holding the whole day.
    """
    # the scalars and refs as they are: to_dict would first convert every bucket, on every gift
    main = {name: getattr(state, name) for name in state.__dataclass_fields__ if name != "recent_sends"}
    inline: dict[str, dict[str, int]] = {}
    parts: dict[str, Any] = {}
    held = 0
    for bucket, sends in reversed(state.recent_sends.items()):  # newest first
        held += len(sends)
        if parts or (inline and held > INLINE_SENDS):  # from the first that does not fit, all parts
            parts[f"{SENDS_PART}{bucket}"] = sends
        else:
            inline[str(bucket)] = sends
    main["recent_sends"] = dict(reversed(inline.items()))
    return main, dict(reversed(parts.items()))


def join(main: dict[str, Any], contents: dict[str, Any]) -> WalletState:
    buckets = {int(name.removeprefix(SENDS_PART)): sends for name, sends in contents.items()}
    buckets.update((int(bucket), sends) for bucket, sends in main.get("recent_sends", {}).items())
    return WalletState.from_dict({**main, "recent_sends": buckets})


def thaw(state: WalletState) -> WalletState:
    """A copy whose collections `evolve` may change in place; the buckets before the newest are
    shared, since `evolve` copies such a bucket before it changes it (they are all but frozen)."""
    buckets = dict(state.recent_sends)
    if buckets:
        newest = next(reversed(buckets))
        buckets[newest] = dict(buckets[newest])
    return replace(
        state,
        payment_refs=dict(state.payment_refs),
        refunded_seqs=dict(state.refunded_seqs),
        recent_sends=buckets,
    )


def decide(command: Command, state: WalletState) -> list[Event]:
    match command:
        case PurchaseCoins():
            credited = state.payment_refs.get(command.payment_ref)
            if credited is not None:
                if credited != command.coins:
                    raise Rejection(
                        "payment-ref-conflict",
                        f"payment {command.payment_ref} was for {credited} coins, not {command.coins}",
                    )
                return []  # the provider called back twice
            return [
                CoinsPurchased(
                    payment_ref=command.payment_ref,
                    coins=command.coins,
                    balance=state.balance + command.coins,
                    purchased_at=command.issued_at,
                )
            ]
        case SendGift():
            if state.sent(command.command_id):
                return []
            coins = command.coins
            if coins > state.balance:
                raise Rejection(
                    "insufficient-coins",
                    f"{command.count} x {command.gift.name} costs {coins} coins; you have {state.balance}",
                )
            seq = state.gift_seq + 1
            return [
                GiftDebited(
                    gift_tx=gift_transaction_id(command.command_id),  # one intent, one id
                    seq=seq,
                    send_id=command.command_id,
                    stream_id=command.stream_id,
                    gift_id=command.gift.gift_id,
                    count=command.count,
                    coins=coins,
                    balance=state.balance - coins,
                    debited_at=command.issued_at,
                )
            ]
        case RefundGift():
            if command.seq > state.gift_seq or str(command.seq) in state.refunded_seqs:
                return []  # never debited here, or refunded already
            return [
                GiftRefunded(
                    gift_tx=command.gift_tx,
                    seq=command.seq,
                    stream_id=command.stream_id,
                    coins=command.coins,
                    reason=command.reason,
                    balance=state.balance + command.coins,
                    refunded_at=command.issued_at,
                )
            ]
    raise Rejection("unsupported-command", f"the wallet aggregate does not handle {command.type}")


def evolve(state: WalletState, event: Event) -> WalletState:
    """Changes a thawed state's collections in place."""
    version = state.version + 1
    match event:
        case CoinsPurchased():
            state.payment_refs[event.payment_ref] = event.coins
            return replace(
                state, version=version, balance=event.balance, purchased=state.purchased + event.coins
            )
        case GiftDebited():
            at = millis(event.debited_at)
            buckets = state.recent_sends
            while buckets and (next(iter(buckets)) + 1) * SEND_BUCKET_MS <= at - IDEMPOTENCY_WINDOW_MS:
                del buckets[next(iter(buckets))]  # all of the oldest bucket is past the window
            bucket = at // SEND_BUCKET_MS
            newest = next(reversed(buckets), None)
            if newest is None or bucket > newest:
                buckets[bucket] = {}  # a new bucket, owned by this state
            elif bucket < newest:  # a debit stamped earlier than the newest (clocks of two APIs)
                buckets[bucket] = dict(buckets.get(bucket, {}))  # shared: copy before changing
                buckets = dict(sorted(buckets.items()))
                state = replace(state, recent_sends=buckets)
            buckets[bucket][event.send_id] = at
            return replace(
                state,
                version=version,
                balance=event.balance,
                spent=state.spent + event.coins,
                gift_seq=event.seq,
            )
        case GiftRefunded():
            state.refunded_seqs[str(event.seq)] = None
            return replace(
                state, version=version, balance=event.balance, refunded=state.refunded + event.coins
            )
    return replace(state, version=version)
