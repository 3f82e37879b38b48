"""Push devices, notification preferences and read marks (docs/api.md "Notifications").

Everything here is the caller's own: a device, a mute or a read mark of another user is never
named, shown or changed (another user's device id answers 404, as a missing one does).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from pydantic import Field, StringConstraints

from spaktok.api.auth import USER_ID_PATTERN, Principal
from spaktok.api.deps import ID_PATTERN, CurrentUser, ServicesDep, UserPath
from spaktok.api.problems import Problem
from spaktok.api.schemas import Body
from spaktok.projections import notify_views
from spaktok.projections.notices import Category

router = APIRouter(tags=["notifications"])

MAX_MUTED_CHANNELS = 1000
# a push token as the services issue them: FCM registration tokens (~160 characters of
# [A-Za-z0-9_:-]), APNs device tokens (64 hex digits); printable, no spaces
PushToken = Annotated[str, StringConstraints(min_length=8, max_length=4096, pattern=r"^[!-~]+$")]
ChannelId = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=USER_ID_PATTERN)]
DevicePath = Annotated[str, Path(min_length=1, max_length=64, pattern=ID_PATTERN, description="a device id")]
NotificationPath = Annotated[
    str, Path(min_length=1, max_length=64, pattern=ID_PATTERN, description="a notification id")
]


class DeviceBody(Body):
    platform: Literal["fcm", "apns", "dev"]
    token: PushToken


class PreferencesBody(Body):
    muted_channels: list[ChannelId] = Field(default_factory=list, max_length=MAX_MUTED_CHANNELS)
    muted_kinds: list[Category] = Field(default_factory=list, max_length=8)


def _recipients(user: Principal) -> list[str]:
    """Whom the caller's inbox is addressed to: the caller, and each of its roles (`role:X`)."""
    return [user.user_id, *(f"role:{role}" for role in sorted(user.roles))]


@router.post("/v1/devices")
async def register_device(body: DeviceBody, user: CurrentUser, services: ServicesDep) -> JSONResponse:
    """201 with the new device; 200 with the same device for a token the caller registered before."""
    limit = services.settings.notify_max_devices
    try:
        device, created = await run_in_threadpool(
            notify_views.register_device, services.engine, user.user_id, body.platform, body.token, limit
        )
    except notify_views.TooManyDevices as exc:
        raise Problem(409, "too-many-devices", str(exc)) from exc
    return JSONResponse(device, status_code=201 if created else 200)


@router.get("/v1/devices")
async def devices(user: CurrentUser, services: ServicesDep) -> dict[str, Any]:
    """The caller's devices (their tokens are not shown back)."""
    return {"devices": await run_in_threadpool(notify_views.list_devices, services.engine, user.user_id)}


@router.delete("/v1/devices/{device_id}", status_code=204)
async def delete_device(device_id: DevicePath, user: CurrentUser, services: ServicesDep) -> Response:
    if not await run_in_threadpool(notify_views.delete_device, services.engine, user.user_id, device_id):
        raise Problem(404, "device-not-found", f"you have no device {device_id!r}")
    return Response(status_code=204)


@router.get("/v1/me/notification-preferences")
async def preferences(user: CurrentUser, services: ServicesDep) -> dict[str, Any]:
    return await run_in_threadpool(notify_views.get_preferences, services.engine, user.user_id)


@router.put("/v1/me/notification-preferences")
async def put_preferences(body: PreferencesBody, user: CurrentUser, services: ServicesDep) -> dict[str, Any]:
    """Replace the caller's mutes as a whole (what a settings screen saves)."""
    return await run_in_threadpool(
        notify_views.put_preferences,
        services.engine,
        user.user_id,
        body.muted_channels,
        list(body.muted_kinds),
    )


@router.put("/v1/me/notification-preferences/channels/{user_id}")
async def mute_channel(user_id: UserPath, user: CurrentUser, services: ServicesDep) -> dict[str, Any]:
    """Mute one channel (the bell on a channel page); muting twice is a no-op."""
    return await _set_channel(user_id, True, user, services)


@router.delete("/v1/me/notification-preferences/channels/{user_id}")
async def unmute_channel(user_id: UserPath, user: CurrentUser, services: ServicesDep) -> dict[str, Any]:
    return await _set_channel(user_id, False, user, services)


async def _set_channel(channel_id: str, muted: bool, user: Principal, services: Any) -> dict[str, Any]:
    try:
        return await run_in_threadpool(
            notify_views.set_channel_muted,
            services.engine,
            user.user_id,
            channel_id,
            muted,
            MAX_MUTED_CHANNELS,
        )
    except notify_views.TooManyMutes as exc:
        raise Problem(409, "too-many-muted-channels", str(exc)) from exc


@router.post("/v1/notifications/read-all")
async def read_all(user: CurrentUser, services: ServicesDep) -> dict[str, Any]:
    """Mark the caller's whole inbox read."""
    recipients = _recipients(user)
    marked = await run_in_threadpool(notify_views.mark_all_read, services.engine, user.user_id, recipients)
    return {"marked": marked, "unread": 0}


@router.post("/v1/notifications/{notification_id}/read")
async def read_one(
    notification_id: NotificationPath, user: CurrentUser, services: ServicesDep
) -> dict[str, Any]:
    """Mark one notice read (again: no change); the answer carries the unread count left."""
    recipients = _recipients(user)
    found = await run_in_threadpool(
        notify_views.mark_read, services.engine, user.user_id, recipients, notification_id
    )
    if not found:
        raise Problem(404, "notification-not-found", f"no notification {notification_id!r} in your inbox")
    unread = await run_in_threadpool(notify_views.unread_count, services.engine, user.user_id, recipients)
    return {"notificationId": notification_id, "read": True, "unread": unread}


async def unread_of(user: Principal, services: Any) -> int:
    """The caller's unread count (GET /v1/notifications answers it beside the page)."""
    return await run_in_threadpool(
        notify_views.unread_count, services.engine, user.user_id, _recipients(user)
    )
