"""Gifts, wallets, earnings and payouts (API.md "Chat and engagement", "Wallet and earnings")."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from spaktok import clock
from spaktok.api.auth import Principal
from spaktok.api.deps import CommandMeta, CurrentUser, IdempotencyKey, PayoutPath, ServicesDep, StreamPath
from spaktok.api.problems import STATUS_BY_REASON, Problem
from spaktok.api.readable import StreamContent, admit_participant
from spaktok.api.responses import answer, event_payload
from spaktok.api.schemas import CompletePayoutBody, FailPayoutBody, GiftBody, PayoutBody, PurchaseBody
from spaktok.api.suspension import refuse_if_suspended
from spaktok.commands.earnings import CompletePayout, FailPayout, RequestPayout
from spaktok.commands.gifts import coins_for_usd, usd
from spaktok.commands.outcome import Outcome
from spaktok.commands.wallets import PurchaseCoins, SendGift, gift_transaction_id
from spaktok.events.envelope import derive_id
from spaktok.projections import money_views

router = APIRouter(tags=["money"])

# who may credit coins and settle payouts: platform admins and the payment provider's service token
PAYMENT_ROLES = frozenset({"admin", "payments"})


def _require_payments_role(user: Principal) -> None:
    if not user.roles & PAYMENT_ROLES:
        raise Problem(403, "forbidden", "only an admin or the payment provider may do this")


@router.get("/v1/gifts")
async def gift_catalog(services: ServicesDep) -> dict[str, Any]:
    value = services.settings.coin_value_usd
    return {
        "coinValueUsd": value,
        "gifts": [
            {
                "giftId": g.gift_id,
                "name": g.name,
                "imageUrl": g.image_url,
                "animationUrl": g.animation_url,
                "coinCost": g.coin_cost,
                "usdValue": usd(g.coin_cost, value),
                "comboable": g.comboable,
            }
            for g in services.catalog.values()
        ],
    }


@router.post("/v1/streams/{stream_id}/gifts")
async def send_gift(
    stream_id: StreamPath,
    body: GiftBody,
    user: CurrentUser,
    services: ServicesDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Debit the sender, deliver to the stream, credit the broadcaster (a saga; DESIGN §3)."""
    gift = services.catalog.get(body.gift_id)
    if gift is None:
        raise Problem(404, "gift-not-found", f"no gift {body.gift_id!r} in the catalog (GET /v1/gifts)")
    await refuse_if_suspended(services, user, "send gifts")
    await admit_participant(services, user, stream_id)
    settings = services.settings
    meta = CommandMeta.for_request(user, f"gift:{stream_id}", idempotency_key)
    command = SendGift(
        command_id=meta.command_id,
        issued_at=meta.issued_at,
        actor_id=user.user_id,
        user_id=user.user_id,
        stream_id=stream_id,
        sender_name=user.name,
        sender_profile_image=user.picture,
        gift=gift,
        count=body.count,
        coin_value_usd=settings.coin_value_usd,
        combo_window_ms=settings.gift_combo_window_ms,
    )
    outcome = await services.bus.execute(command)
    # the intent's one id (docs/money.md "What exactly once means here"), in every answer: taken,
    # refused, rejected, pending or a late retry's "duplicate"
    tx = gift_transaction_id(meta.command_id)

    def build(outcome: Outcome) -> dict[str, Any]:
        refused = event_payload(outcome, "streams.GiftRefused")
        if refused is not None:
            reason = refused["reason"]
            raise Problem(
                STATUS_BY_REASON.get(reason, 409),
                reason,
                f"the stream refused the gift ({reason}); your {refused['coin_cost']} coins are refunded",
                transactionId=refused["gift_tx"],
            )
        received = event_payload(outcome, "streams.GiftReceived")
        if received is None:  # a retry of a send decided long ago: it had its one effect then
            detail = outcome.detail
            return {"transactionId": tx, "streamId": stream_id, "status": "duplicate", "detail": detail}
        return {
            "transactionId": received["gift_tx"],
            "giftTx": received["gift_tx"],
            "streamId": stream_id,
            "giftId": received["gift_id"],
            "giftName": received["gift_name"],
            "giftImageUrl": received["gift_image_url"],
            "giftAnimationUrl": received["gift_animation_url"],
            "count": received["count"],
            "coinCost": received["coin_cost"],
            "realValueUSD": received["real_value_usd"],
            "isCombo": received["is_combo"],
            "comboId": received["combo_id"],
            "comboCount": received["combo_count"],
            "senderTotalCoins": received["sender_total_coins"],
            "timestamp": received["sent_at"],
        }

    return answer(outcome, meta.command_id, build, extra={"transactionId": tx})


@router.get("/v1/streams/{stream_id}/leaderboard")
async def leaderboard(
    stream_id: StreamPath,
    stream: StreamContent,
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
) -> dict[str, Any]:
    """Top gifters by coins given to this stream; top viewers by watch time."""
    gifters = await run_in_threadpool(money_views.top_gifters, services.engine, stream_id, limit)
    viewers = await run_in_threadpool(money_views.top_viewers, services.engine, stream_id, limit)
    return {"streamId": stream_id, "topGifters": gifters, "topViewers": viewers}


@router.get("/v1/wallet")
async def wallet(user: CurrentUser, services: ServicesDep) -> dict[str, Any]:
    return await run_in_threadpool(money_views.get_wallet, services.engine, user.user_id)


@router.get("/v1/wallet/transactions")
async def wallet_transactions(
    user: CurrentUser,
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    before: Annotated[int | None, Query(ge=1)] = None,
) -> dict[str, Any]:
    rows = await run_in_threadpool(
        money_views.wallet_transactions, services.engine, user.user_id, before=before, limit=limit
    )
    return {"transactions": rows, "nextBefore": rows[-1]["sequence"] if len(rows) == limit else None}


@router.post("/v1/wallet/purchases", status_code=201)
async def purchase_coins(body: PurchaseBody, user: CurrentUser, services: ServicesDep) -> JSONResponse:
    """Admin or payment-provider callback; the payment ref is the idempotency key."""
    _require_payments_role(user)
    command = PurchaseCoins(
        command_id=derive_id("purchase", body.user_id, body.payment_ref, str(body.coins)),
        issued_at=clock.now(),
        actor_id=user.user_id,
        user_id=body.user_id,
        coins=body.coins,
        payment_ref=body.payment_ref,
    )
    outcome = await services.bus.execute(command)

    def build(outcome: Outcome) -> dict[str, Any]:
        return {
            "transactionId": body.payment_ref,  # a purchase's transaction is its payment ref
            "userId": body.user_id,
            "paymentRef": body.payment_ref,
            "coins": body.coins,
            "balance": outcome.stats.get("balance"),
        }

    return answer(outcome, command.command_id, build, status=201, extra={"transactionId": body.payment_ref})


@router.get("/v1/earnings")
async def earnings(
    user: CurrentUser, services: ServicesDep, limit: Annotated[int, Query(ge=1, le=500)] = 50
) -> dict[str, Any]:
    return await run_in_threadpool(
        money_views.get_earnings, services.engine, user.user_id, services.settings.coin_value_usd, limit
    )


@router.post("/v1/payouts", status_code=201)
async def request_payout(
    body: PayoutBody, user: CurrentUser, services: ServicesDep, idempotency_key: IdempotencyKey = None
) -> JSONResponse:
    settings = services.settings
    coins = coins_for_usd(body.amount_usd, settings.coin_value_usd)
    if coins is None or coins <= 0:
        raise Problem(
            422,
            "invalid-amount",
            f"${body.amount_usd} is not a whole number of coins at ${settings.coin_value_usd}",
        )
    meta = CommandMeta.for_request(user, "payout", idempotency_key)
    payout_id = "po_" + meta.command_id.replace("-", "")[:24]
    command = RequestPayout(
        command_id=meta.command_id,
        issued_at=meta.issued_at,
        actor_id=user.user_id,
        broadcaster_id=user.user_id,
        payout_id=payout_id,
        method=body.method,
        amount_usd=usd(coins, settings.coin_value_usd),
        coins=coins,
        minimum_usd=settings.payout_minimum_usd,
    )
    outcome = await services.bus.execute(command)

    def build(outcome: Outcome) -> dict[str, Any]:
        return {
            "transactionId": payout_id,  # a payout's transaction is its id
            "payoutId": payout_id,
            "status": "pending",
            "method": body.method,
            "coins": coins,
            "amountUsd": command.amount_usd,
            "balanceCoins": outcome.stats.get("balance"),
            "reservedCoins": outcome.stats.get("reserved"),
        }

    return answer(outcome, meta.command_id, build, status=201, extra={"transactionId": payout_id})


@router.get("/v1/payouts")
async def payouts(
    user: CurrentUser, services: ServicesDep, limit: Annotated[int, Query(ge=1, le=500)] = 50
) -> dict[str, Any]:
    rows = await run_in_threadpool(money_views.list_payouts, services.engine, user.user_id, limit)
    return {"payouts": rows}


async def _settle_payout(services: Any, user: Principal, payout_id: str, make: Any) -> JSONResponse:
    _require_payments_role(user)
    payout = await run_in_threadpool(money_views.get_payout, services.engine, payout_id)
    if payout is None:
        raise Problem(
            404, "payout-not-found", f"no payout {payout_id} (a just-requested one may take a moment)"
        )
    meta = CommandMeta.for_request(user, f"settle:{payout_id}")
    command = make(
        command_id=meta.command_id,
        issued_at=meta.issued_at,
        actor_id=user.user_id,
        broadcaster_id=payout["broadcasterId"],
        payout_id=payout_id,
    )
    outcome = await services.bus.execute(command)
    status = "completed" if isinstance(command, CompletePayout) else "failed"
    return answer(outcome, meta.command_id, lambda o: {"payoutId": payout_id, "status": status})


@router.post("/v1/payouts/{payout_id}/complete")
async def complete_payout(
    payout_id: PayoutPath, body: CompletePayoutBody, user: CurrentUser, services: ServicesDep
) -> JSONResponse:
    """Admin or payment-provider callback: the money left; the reservation is spent."""

    def make(**fields: Any) -> CompletePayout:
        return CompletePayout(**fields, provider_ref=body.provider_ref)

    return await _settle_payout(services, user, payout_id, make)


@router.post("/v1/payouts/{payout_id}/fail")
async def fail_payout(
    payout_id: PayoutPath, body: FailPayoutBody, user: CurrentUser, services: ServicesDep
) -> JSONResponse:
    """Admin or payment-provider callback: the transfer failed; the reservation is released."""

    def make(**fields: Any) -> FailPayout:
        return FailPayout(**fields, reason=body.reason)

    return await _settle_payout(services, user, payout_id, make)
