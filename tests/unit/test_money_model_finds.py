"""The model state machine (test_money_model.py) finds money bugs: each test injects one and expects
a failing example within a small budget. A machine that cannot fail proves nothing.

The bugs are the ones the system's own audit cannot see, because coins stay conserved: a retried
send debited a second time (it looks like a second, legitimate gift), a payment ref credited twice,
and the broadcaster's share rounded up instead of down.
"""

from __future__ import annotations

from dataclasses import replace
from math import ceil
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis.stateful import run_state_machine_as_test
from money_harness import WALLETS_TOPIC
from test_money_model import COMMAND_TOPICS, MoneyMachine

from spaktok.commands import wallet_decide
from spaktok.commands.base import Command
from spaktok.commands.stream import gifting
from spaktok.commands.wallets import PurchaseCoins, SendGift
from spaktok.processors.wallets import WALLETS

BUDGET = settings(
    max_examples=300,
    stateful_step_count=30,
    deadline=None,
    derandomize=True,  # the same examples every run: finding the bug is not left to chance
    database=None,
    phases=[Phase.generate],  # no shrinking: finding it is the point, not the smallest example
    report_multiple_bugs=False,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def machine_with_wallet(decide: Any) -> type[MoneyMachine]:
    spec = replace(WALLETS, decide=decide)

    class Broken(MoneyMachine):
        command_topics = {**COMMAND_TOPICS, WALLETS_TOPIC: spec}

    return Broken


def forgets_sends(command: Command, state: wallet_decide.WalletState) -> list[Any]:
    """Debits a retried send again once the worker's one-id memory has moved on."""
    if isinstance(command, SendGift):
        state = replace(state, recent_sends={})
    return wallet_decide.decide(command, state)


def forgets_payment_refs(command: Command, state: wallet_decide.WalletState) -> list[Any]:
    """Credits a provider's repeated callback again."""
    if isinstance(command, PurchaseCoins):
        state = replace(state, payment_refs={})
    return wallet_decide.decide(command, state)


def test_finds_a_retried_send_debited_twice() -> None:
    with pytest.raises(AssertionError):
        run_state_machine_as_test(machine_with_wallet(forgets_sends), settings=BUDGET)


def test_finds_a_payment_ref_credited_twice() -> None:
    with pytest.raises(AssertionError):
        run_state_machine_as_test(machine_with_wallet(forgets_payment_refs), settings=BUDGET)


def test_finds_a_share_rounded_the_wrong_way(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rounded up, the broadcaster gets the odd coin: shares still add up to the cost, so only the
    model (floor, docs/money.md) sees it."""

    def rounds_up(coins: int, premium: bool) -> tuple[int, int]:
        broadcaster = ceil(coins * (90 if premium else 50) / 100)
        return broadcaster, coins - broadcaster

    monkeypatch.setattr(gifting, "split_revenue", rounds_up)
    with pytest.raises(AssertionError):
        run_state_machine_as_test(MoneyMachine, settings=BUDGET)


class DecidedOnce(MoneyMachine):
    refusals_bind = True


@pytest.mark.xfail(
    strict=True,
    raises=AssertionError,
    reason="a refused send is remembered by the runner's bounded memory of recent commands only "
    "(remember_refusals), not durably by the wallet: once that memory moved on, the same key after a "
    "top-up is debited, though the first answer was insufficient-coins",
)
def test_a_refused_send_stays_refused_when_its_key_comes_again() -> None:
    machine = DecidedOnce()
    (send,) = machine.send_gifts([("ann", "h1", "galaxy", 1)]).values  # ann has no coins yet
    machine.deliver_everything(0)
    machine.buy("ann", 1000, 0)
    machine.retry_gift(send)  # or the record redelivered after the top-up was stored
    machine.deliver_everything(0)
    machine.balances_equal_the_model()
