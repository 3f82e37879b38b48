"""The push providers' requests, built without a network (infra/push.py): given a device and a
message, then this exact FCM HTTP v1 / APNs request; answers mapped to results; the dev provider's
file; providers without credentials refused at start."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from spaktok.infra import push
from spaktok.infra.push import Device, PushResult
from spaktok.projections.notices import PushMessage
from spaktok.projections.notifier import Notifier
from spaktok.settings import Settings

MESSAGE = PushMessage(
    title="Hostess is live",
    body="Friday night",
    data={"notificationId": "n-1", "kind": "stream_started", "channelId": "chan", "streamId": "s-1"},
    collapse_key="n-1",
    thread="chan",
)
PHONE = Device("dv_1", "ann", "fcm", "fcm-token-123")
IPHONE = Device("dv_2", "ann", "apns", "a" * 64)


def test_an_fcm_push_is_an_http_v1_messages_send_request() -> None:
    request = push.fcm_request("spaktok-prod", "ya29.token", PHONE, MESSAGE)
    assert request.method == "POST"
    assert request.url == "https://fcm.googleapis.com/v1/projects/spaktok-prod/messages:send"
    assert request.headers["Authorization"] == "Bearer ya29.token"
    assert request.json == {
        "message": {
            "token": "fcm-token-123",
            "notification": {"title": "Hostess is live", "body": "Friday night"},
            "data": MESSAGE.data,
            "android": {"priority": "HIGH", "collapse_key": "n-1", "notification": {"tag": "chan"}},
            "apns": {"headers": {"apns-collapse-id": "n-1"}, "payload": {"aps": {"thread-id": "chan"}}},
        }
    }
    assert all(isinstance(v, str) for v in request.json["message"]["data"].values())  # FCM requires it


def test_an_apns_push_is_an_alert_to_the_device_path_with_the_app_topic() -> None:
    request = push.apns_request(
        topic="live.spaktok.app", provider_token="eyJ.x.y", sandbox=False, device=IPHONE, message=MESSAGE
    )
    assert request.url == f"https://api.push.apple.com/3/device/{'a' * 64}"
    assert request.headers == {
        "authorization": "bearer eyJ.x.y",
        "apns-topic": "live.spaktok.app",
        "apns-push-type": "alert",
        "apns-priority": "10",
        "apns-collapse-id": "n-1",
    }
    assert request.json == {
        "aps": {
            "alert": {"title": "Hostess is live", "body": "Friday night"},
            "sound": "default",
            "thread-id": "chan",
        },
        **MESSAGE.data,
    }


def test_the_apns_sandbox_has_its_own_host() -> None:
    request = push.apns_request(topic="t", provider_token="x", sandbox=True, device=IPHONE, message=MESSAGE)
    assert request.url.startswith("https://api.sandbox.push.apple.com/3/device/")


@pytest.mark.parametrize(
    ("status", "body", "result"),
    [
        (200, {"name": "projects/p/messages/1"}, "sent"),
        (
            404,
            {"error": {"status": "NOT_FOUND", "details": [{"errorCode": "UNREGISTERED"}]}},
            "invalid-token",
        ),
        (503, {"error": {"status": "UNAVAILABLE", "message": "try later"}}, "failed"),
    ],
)
def test_fcm_answers_become_results(status: int, body: dict[str, Any], result: str) -> None:
    assert push.fcm_result(status, body).status == result


@pytest.mark.parametrize(
    ("status", "body", "result"),
    [
        (200, {}, "sent"),
        (410, {"reason": "Unregistered"}, "invalid-token"),
        (400, {"reason": "BadDeviceToken"}, "invalid-token"),
        (429, {"reason": "TooManyRequests"}, "failed"),
    ],
)
def test_apns_answers_become_results(status: int, body: dict[str, Any], result: str) -> None:
    assert push.apns_result(status, body).status == result


def test_the_fcm_provider_sends_the_built_request_and_maps_the_answer() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"name": "projects/p/messages/9"})

    client = httpx.Client(transport=httpx.MockTransport(answer))
    provider = push.FcmProvider("p", lambda: "tok", client)
    assert provider.send(PHONE, MESSAGE) == PushResult("sent", "projects/p/messages/9")
    assert json.loads(seen[0].content) == push.fcm_request("p", "tok", PHONE, MESSAGE).json


def test_a_network_failure_is_a_failed_delivery_not_an_exception() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("no network here")

    provider = push.FcmProvider("p", lambda: "tok", httpx.Client(transport=httpx.MockTransport(refuse)))
    assert provider.send(PHONE, MESSAGE).status == "failed"


def test_apns_provider_tokens_are_es256_jwts_naming_team_and_key() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    token = push.ProviderTokens("TEAM123456", "KEY1234567", pem.decode())()
    assert jwt.get_unverified_header(token) == {"alg": "ES256", "kid": "KEY1234567", "typ": "JWT"}
    assert jwt.decode(token, key.public_key(), algorithms=["ES256"])["iss"] == "TEAM123456"


def test_fcm_access_tokens_come_from_a_jwt_bearer_grant_and_are_reused() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    grants: list[dict[str, Any]] = []

    def post(url: str, data: dict[str, Any], timeout: float) -> httpx.Response:
        grants.append(data)
        return httpx.Response(
            200, json={"access_token": "ya29.x", "expires_in": 3600}, request=httpx.Request("POST", url)
        )

    tokens = push.ServiceAccountTokens({"client_email": "svc@p.iam", "private_key": pem.decode()}, post)
    assert tokens() == tokens() == "ya29.x"
    assert len(grants) == 1
    claims = jwt.decode(
        grants[0]["assertion"], key.public_key(), algorithms=["RS256"], audience=push.GOOGLE_TOKEN_URL
    )
    assert claims["iss"] == "svc@p.iam" and claims["scope"] == push.FCM_SCOPE


def test_the_dev_provider_writes_what_it_would_send(tmp_path: Path) -> None:
    provider = push.build_provider(Settings(data_dir=tmp_path, notify_provider="dev"))
    assert provider.send(PHONE, MESSAGE).status == "sent"
    assert provider.send(IPHONE, MESSAGE).status == "sent"
    lines = push.read_sent(tmp_path / "notifications" / "sent.jsonl")
    assert [line["device"]["device_id"] for line in lines] == ["dv_1", "dv_2"]
    assert lines[0]["request"]["message"]["token"] == "fcm-token-123"
    assert lines[1]["request"]["headers"]["apns-push-type"] == "alert"


@pytest.mark.parametrize(
    ("provider", "missing"),
    [("fcm", "SPAKTOK_NOTIFY_FCM_PROJECT_ID"), ("apns", "SPAKTOK_NOTIFY_APNS_TEAM_ID")],
)
def test_a_provider_without_credentials_refuses_to_start(provider: str, missing: str, tmp_path: Path) -> None:
    with pytest.raises(push.ProviderNotConfigured, match=missing):
        push.build_provider(Settings(data_dir=tmp_path, notify_provider=provider))


def test_fcm_with_a_file_that_is_not_a_service_account_refuses_to_start(tmp_path: Path) -> None:
    bad = tmp_path / "key.json"
    bad.write_text("{}")
    settings = Settings(notify_provider="fcm", notify_fcm_project_id="p", notify_fcm_service_account_file=bad)
    with pytest.raises(push.ProviderNotConfigured, match="client_email"):
        push.build_provider(settings)


class Flaky:
    """A provider answering the given results in turn."""

    name = "flaky"

    def __init__(self, *results: str) -> None:
        self.results = list(results)
        self.calls = 0

    def send(self, device: Device, message: PushMessage) -> PushResult:
        self.calls += 1
        return PushResult(self.results.pop(0))  # type: ignore[arg-type]


def test_the_notifier_tries_a_failed_push_again_but_not_a_dead_token() -> None:
    flaky = Flaky("failed", "failed", "sent")
    assert Notifier(None, flaky, attempts=3, backoff_s=0)._send(PHONE, MESSAGE).status == "sent"  # type: ignore[arg-type]
    assert flaky.calls == 3
    gone = Flaky("invalid-token")
    assert Notifier(None, gone, attempts=3, backoff_s=0)._send(PHONE, MESSAGE).status == "invalid-token"  # type: ignore[arg-type]
    assert gone.calls == 1
    down = Flaky("failed", "failed")
    assert Notifier(None, down, attempts=2, backoff_s=0)._send(PHONE, MESSAGE).status == "failed"  # type: ignore[arg-type]


def test_with_both_real_providers_each_device_goes_to_its_platforms() -> None:
    fcm, apns = Flaky("sent"), Flaky("sent")
    router = push.PlatformRouter({"fcm": fcm, "apns": apns})
    assert router.platforms == ("fcm", "apns")  # a `dev` device is never handed to it
    router.send(IPHONE, MESSAGE)
    assert (fcm.calls, apns.calls) == (0, 1)


def test_both_real_providers_need_both_credentials(tmp_path: Path) -> None:
    with pytest.raises(push.ProviderNotConfigured, match="SPAKTOK_NOTIFY_FCM_PROJECT_ID"):
        push.build_provider(Settings(data_dir=tmp_path, notify_provider="fcm,apns"))


def test_a_line_the_dev_provider_is_still_writing_is_not_read_yet(tmp_path: Path) -> None:
    """The reader shares the file with a writer: a line without its newline is unfinished."""
    path = tmp_path / "sent.jsonl"
    path.write_text('{"device": 1}\n{"device": "half')
    assert push.read_sent(path) == [{"device": 1}]
    path.write_text('{"device": 1}\n{"device": "whole"}\n')
    assert push.read_sent(path) == [{"device": 1}, {"device": "whole"}]
