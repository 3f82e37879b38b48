"""Push providers: one interface, `send(device, message) -> PushResult`, and three providers.

- `FcmProvider`: Firebase Cloud Messaging's HTTP v1 API (`messages:send`), authorised by an OAuth2
  access token minted from a service account (JWT bearer grant).
- `ApnsProvider`: Apple's provider API over HTTP/2 (`/3/device/<token>`), authorised by a
  provider token (an ES256 JWT from a `.p8` key).
- `DevProvider`: sends nothing; appends what it would send, one JSON line per push, to
  `<data dir>/notifications/sent.jsonl` (the dev stack's and the tests' provider).

Each formatter builds the exact request (`PushRequest`) apart from sending it, so unit tests check
the formats without a network (this machine has none). `build_provider(settings)` refuses to start
FCM or APNs without their credentials, saying which settings are missing.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import httpx
import jwt
import orjson

from spaktok.projections.notices import PushMessage
from spaktok.settings import Settings

Platform = Literal["fcm", "apns", "dev"]
PLATFORMS: tuple[str, ...] = ("fcm", "apns", "dev")
FCM_SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
GOOGLE_TOKEN_URL = "https://oauth2.googleapis.com/token"  # noqa: S105 - an address, not a secret


@dataclass(frozen=True, slots=True)
class Device:
    device_id: str
    user_id: str
    platform: str
    token: str


@dataclass(frozen=True, slots=True)
class PushResult:
    """`invalid-token`: the service says the token is gone (app removed); the device is dropped."""

    status: Literal["sent", "failed", "invalid-token"]
    detail: str = ""


@dataclass(frozen=True, slots=True)
class PushRequest:
    method: str
    url: str
    headers: dict[str, str]
    json: dict[str, Any] = field(default_factory=dict)


class Provider(Protocol):
    name: str
    platforms: tuple[str, ...]  # the devices it can reach; the notifier passes it no others

    def send(self, device: Device, message: PushMessage) -> PushResult: ...


class ProviderNotConfigured(RuntimeError):
    """A provider chosen without its credentials: the notifier refuses to start."""


# -- FCM ------------------------------------------------------------------------------------------


def fcm_request(project_id: str, access_token: str, device: Device, message: PushMessage) -> PushRequest:
    """FCM HTTP v1: `POST /v1/projects/<project>/messages:send` with `{"message": …}`; data values
    must be strings; `collapse_key` (Android) and `apns-collapse-id` keep one push per occasion."""
    body = {
        "message": {
            "token": device.token,
            "notification": {"title": message.title, "body": message.body},
            "data": dict(message.data),
            "android": {
                "priority": "HIGH",
                "collapse_key": message.collapse_key[:64],
                "notification": {"tag": message.thread},
            },
            "apns": {
                "headers": {"apns-collapse-id": message.collapse_key[:64]},
                "payload": {"aps": {"thread-id": message.thread}},
            },
        }
    }
    return PushRequest(
        "POST",
        f"https://fcm.googleapis.com/v1/projects/{project_id}/messages:send",
        {"Authorization": f"Bearer {access_token}", "Content-Type": "application/json; UTF-8"},
        body,
    )


def fcm_result(status: int, body: dict[str, Any]) -> PushResult:
    """FCM answers 404 `UNREGISTERED` (or 400 naming the token invalid) for a token that is gone."""
    if status == 200:
        return PushResult("sent", str(body.get("name", "")))
    error = body.get("error") or {}
    codes = {d.get("errorCode") for d in error.get("details") or [] if isinstance(d, dict)}
    if status == 404 or "UNREGISTERED" in codes or ("INVALID_ARGUMENT" in codes and "token" in str(error)):
        return PushResult("invalid-token", str(error.get("message", status)))
    return PushResult("failed", f"{status} {error.get('status', '')} {error.get('message', '')}".strip())


class ServiceAccountTokens:
    """OAuth2 access tokens for a Google service account, minted with the JWT bearer grant and
    reused until a minute before they expire."""

    def __init__(self, account: dict[str, Any], post: Callable[..., httpx.Response] = httpx.post) -> None:
        self._account, self._post = account, post
        self._token, self._expires = "", 0.0
        self._lock = threading.Lock()

    def __call__(self) -> str:
        with self._lock:
            if time.time() < self._expires - 60:
                return self._token
            now = int(time.time())
            claims = {
                "iss": self._account["client_email"],
                "scope": FCM_SCOPE,
                "aud": GOOGLE_TOKEN_URL,
                "iat": now,
                "exp": now + 3600,
            }
            assertion = jwt.encode(claims, self._account["private_key"], algorithm="RS256")
            answer = self._post(
                GOOGLE_TOKEN_URL,
                data={"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": assertion},
                timeout=10,
            )
            answer.raise_for_status()
            payload = answer.json()
            self._token, self._expires = payload["access_token"], now + float(payload.get("expires_in", 3600))
            return self._token


class FcmProvider:
    name = "fcm"
    platforms = ("fcm",)

    def __init__(self, project_id: str, access_token: Callable[[], str], client: httpx.Client) -> None:
        self.project_id, self.access_token, self.client = project_id, access_token, client

    def send(self, device: Device, message: PushMessage) -> PushResult:
        request = fcm_request(self.project_id, self.access_token(), device, message)
        return _send(self.client, request, fcm_result)


# -- APNs -----------------------------------------------------------------------------------------


def apns_request(
    *, topic: str, provider_token: str, sandbox: bool, device: Device, message: PushMessage
) -> PushRequest:
    """APNs: `POST /3/device/<token>` (HTTP/2), the alert in `aps`, our data beside it; the
    headers name the app (`apns-topic`), the push type and a collapse id (≤ 64 bytes)."""
    host = "api.sandbox.push.apple.com" if sandbox else "api.push.apple.com"
    payload: dict[str, Any] = {
        "aps": {
            "alert": {"title": message.title, "body": message.body},
            "sound": "default",
            "thread-id": message.thread,
        },
        **message.data,
    }
    headers = {
        "authorization": f"bearer {provider_token}",
        "apns-topic": topic,
        "apns-push-type": "alert",
        "apns-priority": "10",
        "apns-collapse-id": message.collapse_key[:64],
    }
    return PushRequest("POST", f"https://{host}/3/device/{device.token}", headers, payload)


def apns_result(status: int, body: dict[str, Any]) -> PushResult:
    """410 `Unregistered` or 400 `BadDeviceToken`: the token is gone."""
    if status == 200:
        return PushResult("sent")
    reason = str(body.get("reason", status))
    if status == 410 or reason in {"BadDeviceToken", "Unregistered", "DeviceTokenNotForTopic"}:
        return PushResult("invalid-token", reason)
    return PushResult("failed", f"{status} {reason}")


class ProviderTokens:
    """APNs provider tokens: ES256 JWTs (`iss` team, `kid` key) renewed every 50 minutes (Apple
    refuses tokens older than an hour and throttles ones renewed more often than every 20)."""

    def __init__(self, team_id: str, key_id: str, private_key: str) -> None:
        self.team_id, self.key_id, self.private_key = team_id, key_id, private_key
        self._token, self._issued = "", 0.0
        self._lock = threading.Lock()

    def __call__(self) -> str:
        with self._lock:
            if time.time() - self._issued > 50 * 60:
                self._issued = time.time()
                claims = {"iss": self.team_id, "iat": int(self._issued)}
                self._token = jwt.encode(
                    claims, self.private_key, algorithm="ES256", headers={"kid": self.key_id}
                )
            return self._token


class ApnsProvider:
    name = "apns"
    platforms = ("apns",)

    def __init__(
        self, topic: str, sandbox: bool, provider_token: Callable[[], str], client: httpx.Client
    ) -> None:
        self.topic, self.sandbox, self.provider_token, self.client = topic, sandbox, provider_token, client

    def send(self, device: Device, message: PushMessage) -> PushResult:
        request = apns_request(
            topic=self.topic,
            provider_token=self.provider_token(),
            sandbox=self.sandbox,
            device=device,
            message=message,
        )
        return _send(self.client, request, apns_result)


def _send(
    client: httpx.Client, request: PushRequest, result: Callable[[int, dict[str, Any]], PushResult]
) -> PushResult:
    """A network failure is a failed delivery (recorded), never an exception out of the notifier."""
    try:
        answer = client.request(request.method, request.url, headers=request.headers, json=request.json)
    except httpx.HTTPError as exc:
        return PushResult("failed", f"{type(exc).__name__}: {exc}")
    try:
        body = answer.json() if answer.content else {}
    except ValueError:
        body = {}
    return result(answer.status_code, body if isinstance(body, dict) else {})


# -- dev ------------------------------------------------------------------------------------------


class DevProvider:
    """Writes each push as a JSON line: the device, the message, and the body the device's platform
    would have been sent (so the formats can be read in the dev stack)."""

    name = "dev"
    platforms = PLATFORMS  # it reaches nothing, so it takes every device

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def send(self, device: Device, message: PushMessage) -> PushResult:
        line = {
            "sentAt": time.time(),
            "device": asdict(device),
            "message": asdict(message),
            "request": _as_platform(device, message),
        }
        with self._lock, self.path.open("ab") as out:
            out.write(orjson.dumps(line) + b"\n")
        return PushResult("sent", "written to " + self.path.name)


def _as_platform(device: Device, message: PushMessage) -> dict[str, Any]:
    if device.platform == "fcm":
        return fcm_request("<project>", "<access token>", device, message).json
    if device.platform == "apns":
        request = apns_request(
            topic="<bundle id>",
            provider_token="<provider token>",
            sandbox=True,
            device=device,
            message=message,
        )
        return {"headers": request.headers, "payload": request.json}
    return {}


def read_sent(path: Path) -> list[dict[str, Any]]:
    """The dev provider's file, parsed (tests and `docs/notifications.md`'s examples). A line the
    provider is still writing (no newline yet) is left for the next read: it is not a line yet
    (a reader that parsed it failed CI once on `Unterminated string`)."""
    if not path.exists():
        return []
    complete = path.read_text().split("\n")[:-1]  # what follows the last newline is unfinished
    return [json.loads(line) for line in complete if line.strip()]


def dev_sent_path(settings: Settings) -> Path:
    return settings.data_dir / "notifications" / "sent.jsonl"


class PlatformRouter:
    """Several real providers at once (`fcm,apns`): each device goes to its platform's."""

    name = "router"

    def __init__(self, providers: dict[str, Provider]) -> None:
        self.providers = providers
        self.platforms = tuple(providers)

    def send(self, device: Device, message: PushMessage) -> PushResult:
        return self.providers[device.platform].send(device, message)


def build_provider(settings: Settings) -> Provider:
    """The provider(s) `SPAKTOK_NOTIFY_PROVIDER` names, or `ProviderNotConfigured` saying what to set."""
    if settings.notify_provider == "dev":
        return DevProvider(dev_sent_path(settings))
    builders = {"fcm": _fcm, "apns": _apns}
    chosen = {name: builders[name](settings) for name in settings.notify_provider.split(",")}
    return chosen[settings.notify_provider] if len(chosen) == 1 else PlatformRouter(chosen)


def _require(settings: Settings, provider: str, names: tuple[str, ...]) -> None:
    missing = [f"SPAKTOK_{n.upper()}" for n in names if not getattr(settings, n)]
    if missing:
        raise ProviderNotConfigured(
            f"SPAKTOK_NOTIFY_PROVIDER={provider} needs {', '.join(missing)} (docs/notifications.md); "
            "set them, or SPAKTOK_NOTIFY_PROVIDER=dev to write pushes to a file instead"
        )


def _fcm(settings: Settings) -> FcmProvider:
    _require(settings, "fcm", ("notify_fcm_project_id", "notify_fcm_service_account_file"))
    path = Path(str(settings.notify_fcm_service_account_file))
    try:
        account = json.loads(path.read_text())
        account["client_email"], account["private_key"]  # noqa: B018 - both must be there
    except (OSError, ValueError, KeyError) as exc:
        raise ProviderNotConfigured(
            f"SPAKTOK_NOTIFY_FCM_SERVICE_ACCOUNT_FILE={path}: not a service-account JSON key "
            f"with client_email and private_key ({exc})"
        ) from exc
    client = httpx.Client(timeout=settings.notify_send_timeout_s)
    return FcmProvider(str(settings.notify_fcm_project_id), ServiceAccountTokens(account), client)


def _apns(settings: Settings) -> ApnsProvider:
    names = ("notify_apns_team_id", "notify_apns_key_id", "notify_apns_key_file", "notify_apns_topic")
    _require(settings, "apns", names)
    try:
        key = Path(str(settings.notify_apns_key_file)).read_text()
    except OSError as exc:
        raise ProviderNotConfigured(f"SPAKTOK_NOTIFY_APNS_KEY_FILE: cannot read the .p8 key ({exc})") from exc
    try:
        client = httpx.Client(http2=True, timeout=settings.notify_send_timeout_s)
    except ImportError as exc:
        raise ProviderNotConfigured(
            "APNs speaks HTTP/2 only: install `httpx[http2]` (the h2 package)"
        ) from exc
    tokens = ProviderTokens(str(settings.notify_apns_team_id), str(settings.notify_apns_key_id), key)
    return ApnsProvider(str(settings.notify_apns_topic), settings.notify_apns_sandbox, tokens, client)
