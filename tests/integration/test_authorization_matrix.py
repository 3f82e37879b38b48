"""Every route of the app × every kind of caller, with the expected answer declared in one table.

The table is checked against the app's own routes: a route without a row fails
`test_every_route_has_a_row`, so a new route cannot skip authorization review.

The world each row runs in: a live, followers-only, age-restricted stream (so that every relation
matters) whose owner has a stream moderator, a banned follower, a follower who joined (the
viewer), a follower who did not, a follower under 18, a schedule and an open PK invitation. Rows
that change state get a world of their own; callers the row expects to be refused go first, so a
refusal is never explained by an earlier caller's effect (an ended stream, a removed moderator).

What "ok" means: the caller is let through — any answer that is not 401, 403 or a 5xx. A domain
answer (400, 404 for an id that does not exist, 409, 422) to an authorized caller is "ok": this
table is about who may ask, the domain tests are about what the answer says.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest
from harness import Api, eventually, uid

from spaktok.api.app import create_app
from spaktok.api.auth import mint_token
from spaktok.api.readable import FACTS_TTL_S
from spaktok.events.envelope import derive_id
from spaktok.infra.devstack import DevStack
from spaktok.settings import Settings

pytestmark = pytest.mark.integration

IDENTITIES = (
    "anonymous",
    "forged",
    "expired",
    "stranger",
    "viewer",
    "follower",
    "banned",
    "minor",
    "owner",
    "stream_moderator",
    "platform_moderator",
    "admin",
    "analyst",
)
TOKENLESS = ("anonymous", "forged", "expired")
OK = "ok"
Expect = int | str  # a status (401/403/404) or OK


def expect(default: Expect = OK, *, public: bool = False, **overrides: Expect) -> dict[str, Expect]:
    """A row's expectations: every identity gets `default` unless overridden; the three callers without a
    valid token get 401 unless the route is public."""
    table = dict.fromkeys(IDENTITIES, default)
    if not public:
        table.update(dict.fromkeys(TOKENLESS, 401))
    table.update(overrides)
    # an analyst has no relation to the world: a stranger with a role, unless a row says otherwise
    if "analyst" not in overrides:
        table["analyst"] = table["stranger"]
    return table


# Who may watch the world's stream (followers-only, age-restricted): API.md "Who may see what".
WATCHERS = expect(stranger=403, banned=403, minor=403)
OWNER_OR_ADMIN = expect(403, owner=OK, admin=OK)
STAFF_ONLY = expect(403, platform_moderator=OK, admin=OK)
ADMIN_ONLY = expect(403, admin=OK)
ANY_USER = expect()
STREAM_MODERATORS = expect(403, owner=OK, stream_moderator=OK, platform_moderator=OK, admin=OK)
REPORTERS = expect(stranger=403, minor=403)  # a report goes to the platform: a banned user may report
MEDIA_SERVER = expect(OK, public=True)  # the hooks are authorized by the caller's address (and key)
HOOK_URL = "http://127.0.0.1:9/hook"  # the world's webhook: nothing listens (its deliveries just fail)


@dataclass(frozen=True)
class Row:
    method: str
    path: str  # the route's template; {names} are filled from the world
    expected: dict[str, Expect]
    body: dict[str, Any] | Callable[[World], dict[str, Any]] | None = None
    mutates: bool = False  # runs in a world of its own, refused callers first
    user: str = "viewer"  # whose id fills {user_id}
    form: bool = False  # the body is sent form-encoded (nginx-rtmp's callbacks)


@dataclass
class World:
    ids: dict[str, str]
    stream_id: str
    comment_id: str
    schedule_id: str
    battle_id: str
    command_id: str
    values: dict[str, str] = field(default_factory=dict)

    def fill(self, template: str, user: str = "viewer") -> str:
        names = {
            "stream_id": self.stream_id,
            "comment_id": self.comment_id,
            "schedule_id": self.schedule_id,
            "battle_id": self.battle_id,
            "command_id": self.command_id,
            "user_id": self.ids[user],
            "payout_id": "po_doesnotexist",
            "report_id": self.values.get("report_id", "rp_doesnotexist"),
            "folder": "js",  # a console asset (docs/console.md)
            "asset": "api.js",
            **self.values,
        }
        return template.format(**names)


def _hook_form(world: World) -> dict[str, Any]:
    key = world.values["stream_key"]
    return {"app": "live", "name": key, "path": f"/tmp/{world.stream_id}.flv"}


def _health_form(world: World) -> dict[str, Any]:
    return {"streamId": world.stream_id, "windowS": "5", "bitrateKbps": "2500", "frameRate": "30"}


def _rows() -> list[Row]:
    later = (datetime.now(UTC) + timedelta(days=2)).isoformat()
    comment = {"text": "hello"}
    return [
        Row("GET", "/healthz", expect(public=True)),
        Row("GET", "/readyz", expect(public=True)),
        Row("GET", "/metrics", ADMIN_ONLY),
        # streams
        Row("POST", "/v1/streams", expect(), {"title": "Mine", "category": "chat"}, mutates=True),
        Row("GET", "/v1/streams", ANY_USER),
        Row("GET", "/v1/streams/{stream_id}", WATCHERS),
        Row("PATCH", "/v1/streams/{stream_id}", expect(403, owner=OK), {"title": "Renamed"}, mutates=True),
        Row("POST", "/v1/streams/{stream_id}/end", expect(403, owner=OK), mutates=True),
        Row("GET", "/v1/streams/{stream_id}/replay", WATCHERS),
        Row("GET", "/v1/streams/{stream_id}/analytics", OWNER_OR_ADMIN),
        Row("GET", "/v1/streams/{stream_id}/log", OWNER_OR_ADMIN),
        Row("GET", "/v1/streams/{stream_id}/health", OWNER_OR_ADMIN),
        Row("POST", "/v1/streams/{stream_id}/stream-key", expect(403, owner=OK), mutates=True),
        # viewers
        Row("POST", "/v1/streams/{stream_id}/viewers", WATCHERS, mutates=True),
        Row("DELETE", "/v1/streams/{stream_id}/viewers/me", ANY_USER, mutates=True),
        # a caller who may not watch was never let in: the heartbeat answers 409 `not-watching`
        Row("POST", "/v1/streams/{stream_id}/heartbeat", ANY_USER, mutates=True),
        Row("GET", "/v1/streams/{stream_id}/viewers", WATCHERS),
        # chat and engagement
        Row("GET", "/v1/streams/{stream_id}/comments", WATCHERS),
        Row("POST", "/v1/streams/{stream_id}/comments", WATCHERS, comment, mutates=True),
        Row("DELETE", "/v1/streams/{stream_id}/comments/{comment_id}", STREAM_MODERATORS, mutates=True),
        Row("POST", "/v1/streams/{stream_id}/comments/{comment_id}/pin", expect(403, owner=OK), mutates=True),
        Row(
            "DELETE", "/v1/streams/{stream_id}/comments/{comment_id}/pin", expect(403, owner=OK), mutates=True
        ),
        Row("POST", "/v1/streams/{stream_id}/likes", WATCHERS, {"count": 3}, mutates=True),
        Row("POST", "/v1/streams/{stream_id}/gifts", WATCHERS, {"giftId": "rose"}, mutates=True),
        Row("GET", "/v1/streams/{stream_id}/leaderboard", WATCHERS),
        Row("GET", "/v1/gifts", expect(public=True)),
        Row("GET", "/v1/streams/{stream_id}/events", WATCHERS),
        # moderation
        Row("POST", "/v1/streams/{stream_id}/bans", STREAM_MODERATORS, {"userId": "troll-x"}, mutates=True),
        Row("DELETE", "/v1/streams/{stream_id}/bans/{user_id}", STREAM_MODERATORS, mutates=True),
        Row(
            "POST",
            "/v1/streams/{stream_id}/timeouts",
            STREAM_MODERATORS,
            {"userId": "troll-x", "durationSeconds": 60},
            mutates=True,
        ),
        Row("DELETE", "/v1/streams/{stream_id}/timeouts/{user_id}", STREAM_MODERATORS, mutates=True),
        Row(
            "POST",
            "/v1/streams/{stream_id}/moderators",
            expect(403, owner=OK),
            {"userId": "m-x"},
            mutates=True,
        ),
        Row("DELETE", "/v1/streams/{stream_id}/moderators/{user_id}", expect(403, owner=OK), mutates=True),
        Row("POST", "/v1/streams/{stream_id}/reports", REPORTERS, {"reason": "spam"}, mutates=True),
        Row("GET", "/v1/streams/{stream_id}/moderation-log", STREAM_MODERATORS),
        # guests
        Row("POST", "/v1/streams/{stream_id}/guests", expect(403, owner=OK), {"userId": "g-x"}, mutates=True),
        Row("POST", "/v1/streams/{stream_id}/guests/accept", expect(403), mutates=True),  # no one invited
        Row(
            "DELETE",
            "/v1/streams/{stream_id}/guests/{user_id}",
            expect(403, owner=OK, viewer=OK),
            mutates=True,
        ),
        # schedules
        Row(
            "POST",
            "/v1/schedules",
            ANY_USER,
            {"title": "Later", "category": "chat", "scheduledFor": later},
            mutates=True,
        ),
        Row("GET", "/v1/schedules", ANY_USER),
        Row("GET", "/v1/schedules/{schedule_id}", ANY_USER),
        Row("DELETE", "/v1/schedules/{schedule_id}", expect(403, owner=OK), mutates=True),
        Row("POST", "/v1/schedules/{schedule_id}/reminders", ANY_USER, mutates=True),
        # battles
        Row(
            "POST",
            "/v1/pk-battles",
            expect(403, owner=OK),
            lambda w: {"streamId": w.stream_id, "opponentStreamId": w.values["rival_stream_id"]},
            mutates=True,
        ),
        Row("GET", "/v1/pk-battles/{battle_id}", ANY_USER),
        # the world's battle is the rival's invitation to the owner's stream
        Row("POST", "/v1/pk-battles/{battle_id}/accept", expect(403, owner=OK), mutates=True),
        Row("POST", "/v1/pk-battles/{battle_id}/decline", expect(403, owner=OK), mutates=True),
        Row("POST", "/v1/pk-battles/{battle_id}/end", expect(403, owner=OK), mutates=True),
        # wallet and earnings
        Row("GET", "/v1/wallet", ANY_USER),
        Row("GET", "/v1/wallet/transactions", ANY_USER),
        Row(
            "POST",
            "/v1/wallet/purchases",
            ADMIN_ONLY,
            lambda w: {"userId": w.ids["viewer"], "coins": 10, "paymentRef": uid("pay")},
            mutates=True,
        ),
        Row("GET", "/v1/earnings", ANY_USER),
        Row("POST", "/v1/payouts", ANY_USER, {"method": "paypal", "amountUsd": "10.00"}, mutates=True),
        Row("GET", "/v1/payouts", ANY_USER),
        Row("POST", "/v1/payouts/{payout_id}/complete", ADMIN_ONLY, {"providerRef": "x"}, mutates=True),
        Row("POST", "/v1/payouts/{payout_id}/fail", ADMIN_ONLY, {"reason": "bounced"}, mutates=True),
        # social
        Row("POST", "/v1/users/{user_id}/follow", ANY_USER, mutates=True, user="owner"),
        Row("DELETE", "/v1/users/{user_id}/follow", ANY_USER, mutates=True, user="owner"),
        Row("GET", "/v1/notifications", ANY_USER),
        # notifications delivered (docs/notifications.md): a caller's own devices, mutes and read marks.
        # They change nothing another row reads, so they share the world; the owner's device (the
        # world's) goes last and only to its owner, the followers' go-live notice only to them
        Row("POST", "/v1/devices", ANY_USER, {"platform": "dev", "token": "tok-matrix-0001"}),
        Row("GET", "/v1/devices", ANY_USER),
        Row("DELETE", "/v1/devices/{device_id}", expect(404, owner=OK)),
        Row("GET", "/v1/me/notification-preferences", ANY_USER),
        Row("PUT", "/v1/me/notification-preferences", ANY_USER, {"mutedKinds": ["pk"]}),
        Row("PUT", "/v1/me/notification-preferences/channels/{user_id}", ANY_USER, user="owner"),
        Row("DELETE", "/v1/me/notification-preferences/channels/{user_id}", ANY_USER, user="owner"),
        Row(
            "POST",
            "/v1/notifications/{notification_id}/read",
            expect(404, viewer=OK, follower=OK, banned=OK, minor=OK),
        ),
        Row("POST", "/v1/notifications/read-all", ANY_USER),
        # channels (docs/api.md "Channels"): a hidden stream is left out, never refused
        Row("GET", "/v1/users/{user_id}/live", ANY_USER, user="owner"),
        Row("GET", "/v1/users/{user_id}/streams", ANY_USER, user="owner"),
        Row("GET", "/v1/me/following/live", ANY_USER),
        # the caller's own channel moderators: every caller acts on their own channel only
        Row("GET", "/v1/me/moderators", ANY_USER),
        Row("POST", "/v1/me/moderators", ANY_USER, {"userId": "m-x"}, mutates=True),
        Row("DELETE", "/v1/me/moderators/{user_id}", ANY_USER, mutates=True),
        # operations, analytics, audits
        Row("GET", "/v1/commands/{command_id}", expect(404, owner=OK, admin=OK)),
        Row("GET", "/v1/admin/metrics", ADMIN_ONLY),
        Row("GET", "/v1/admin/replay/clickhouse", ADMIN_ONLY),
        Row("POST", "/v1/admin/replay/clickhouse", ADMIN_ONLY, mutates=True),
        Row("GET", "/v1/audit/gifts", ADMIN_ONLY),
        Row("GET", "/v1/audit/moderation", STAFF_ONLY),
        Row("POST", "/v1/admin/sql", expect(403, admin=OK, analyst=OK), {"sql": "SELECT 1"}),
        # platform enforcement
        Row("POST", "/v1/admin/streams/{stream_id}/suspend", STAFF_ONLY, {"reason": "abuse"}, mutates=True),
        Row("PUT", "/v1/admin/users/{user_id}/suspension", STAFF_ONLY, {"reason": "abuse"}, mutates=True),
        Row("DELETE", "/v1/admin/users/{user_id}/suspension", STAFF_ONLY, mutates=True),
        Row("GET", "/v1/admin/users/{user_id}/suspension", STAFF_ONLY),
        Row("GET", "/v1/admin/reports", STAFF_ONLY),
        Row("POST", "/v1/admin/reports/{report_id}/resolve", STAFF_ONLY, {"action": "dismiss"}, mutates=True),
        # media server callbacks (the test client's address is the media server's in the dev stack)
        Row("POST", "/v1/hooks/rtmp/publish", MEDIA_SERVER, _hook_form, mutates=True, form=True),
        Row("POST", "/v1/hooks/rtmp/publish-done", MEDIA_SERVER, _hook_form, mutates=True, form=True),
        Row("POST", "/v1/hooks/rtmp/record-done", MEDIA_SERVER, _hook_form, mutates=True, form=True),
        Row("POST", "/v1/hooks/media/health", MEDIA_SERVER, _health_form, mutates=True, form=True),
        # webhooks (docs/webhooks.md): anyone registers for their own streams; a webhook is its owner's
        Row(
            "POST",
            "/v1/webhooks",
            ANY_USER,
            {"url": HOOK_URL, "eventTypes": ["streams.StreamEnded"]},
            mutates=True,
        ),
        Row("GET", "/v1/webhooks", ANY_USER),
        Row("GET", "/v1/webhooks/{webhook_id}", OWNER_OR_ADMIN),
        Row("GET", "/v1/webhooks/{webhook_id}/deliveries", OWNER_OR_ADMIN),
        Row("DELETE", "/v1/webhooks/{webhook_id}", OWNER_OR_ADMIN, mutates=True),
        # dev mode only (404 elsewhere): a token for anyone, so it asks for none
        Row("POST", "/v1/dev/token", expect(public=True), {"userId": "dev-x", "roles": ["admin"]}),
        # the web console's pages and assets (docs/console.md): static, public, data comes from the API
        Row("GET", "/", expect(public=True)),
        Row("GET", "/signin", expect(public=True)),
        Row("GET", "/watch/{stream_id}", expect(public=True)),
        Row("GET", "/studio", expect(public=True)),
        Row("GET", "/admin", expect(public=True)),
        Row("GET", "/console/{folder}/{asset}", expect(public=True)),
        # the event contracts (docs/events.md): the log's shape, never its data
        Row("GET", "/asyncapi.json", expect(public=True)),
        Row("GET", "/docs/events", expect(public=True)),
    ]


ROWS = _rows()
SKIPPED_ROUTES = {("GET", p) for p in ("/docs", "/docs/oauth2-redirect", "/openapi.json", "/redoc")}
WEBSOCKET_ROUTES = {("WS", "/v1/streams/{stream_id}/live")}  # the feed: its matrix is test_access.py's


def app_routes() -> set[tuple[str, str]]:
    """(method, path) of every route the app serves, included routers walked."""
    found: set[tuple[str, str]] = set()

    def walk(routes: Any) -> None:
        for route in routes:
            if hasattr(route, "original_router"):
                walk(route.original_router.routes)
            elif hasattr(route, "path"):
                methods = (getattr(route, "methods", None) or {"WS"}) - {"HEAD"}
                found.update((m, route.path) for m in methods)

    walk(create_app(Settings()).routes)
    return found


def test_every_route_has_a_row() -> None:
    declared = {(r.method, r.path) for r in ROWS}
    served = app_routes() - SKIPPED_ROUTES - WEBSOCKET_ROUTES
    assert not served - declared, f"routes without an authorization row: {sorted(served - declared)}"
    assert not declared - served, f"rows for routes the app does not serve: {sorted(declared - served)}"


def test_a_route_without_a_row_is_caught() -> None:
    """The check above can fail: take one row away and the route shows up as missing."""
    declared = {(r.method, r.path) for r in ROWS[1:]}
    served = app_routes() - SKIPPED_ROUTES - WEBSOCKET_ROUTES
    assert served - declared == {(ROWS[0].method, ROWS[0].path)}


# --- the world -------------------------------------------------------------------------------------


class Callers:
    """One HTTP client per identity of a world (fresh user ids per world)."""

    def __init__(self, api_url: str, ids: dict[str, str]) -> None:
        settings = Settings()
        minor_year = datetime.now(UTC).year - 15
        claims: dict[str, dict[str, Any]] = {
            "minor": {"birth_year": minor_year},
            "platform_moderator": {"roles": ["moderation"]},
            "admin": {"roles": ["admin"]},
            "analyst": {"roles": ["analyst"]},
        }
        tokens: dict[str, str | None] = {"anonymous": None}
        now = int(datetime.now(UTC).timestamp())
        tokens["forged"] = jwt.encode(
            {"sub": ids["stranger"], "exp": now + 600, "iss": settings.jwt_issuer}, "not-the-secret", "HS256"
        )
        tokens["expired"] = jwt.encode(
            {"sub": ids["stranger"], "iat": now - 7200, "exp": now - 3600, "iss": settings.jwt_issuer},
            settings.jwt_secret,
            "HS256",
        )
        adult = {"birth_year": minor_year - 15}  # an age-restricted stream refuses an unknown age
        for identity in IDENTITIES[3:]:
            tokens[identity] = mint_token(settings, ids[identity], **{**adult, **claims.get(identity, {})})
        self.apis = {identity: Api(api_url, token) for identity, token in tokens.items()}

    def __getitem__(self, identity: str) -> Api:
        return self.apis[identity]


def _ok(response: httpx.Response, *statuses: int) -> dict[str, Any]:
    assert response.status_code in (statuses or (200, 201)), response.text
    return dict(response.json()) if response.content else {}


def build_world(stack: DevStack) -> tuple[World, Callers]:
    ids = {identity: uid(identity) for identity in IDENTITIES[3:]}
    ids["rival"] = uid("rival")
    callers = Callers(stack.api_url, ids)
    owner = callers["owner"]
    for fan in ("viewer", "follower", "banned", "minor"):
        _ok(callers[fan].post(f"/v1/users/{ids['owner']}/follow"))
    key = uid("start")
    sid = _ok(
        owner.post(
            "/v1/streams",
            json={"title": "World", "category": "chat", "privacy": "followers", "isAgeRestricted": True},
            headers={"Idempotency-Key": key},
        )
    )["streamId"]
    command_id = derive_id("idem", ids["owner"], "start-stream", key)
    rival = Api(stack.api_url, mint_token(Settings(), ids["rival"]))
    rival_sid = _ok(rival.post("/v1/streams", json={"title": "Rival", "category": "chat"}))["streamId"]
    _ok(owner.post(f"/v1/streams/{sid}/moderators", json={"userId": ids["stream_moderator"]}))
    eventually(lambda: _ok(callers["viewer"].post(f"/v1/streams/{sid}/viewers")))
    posted = callers["viewer"].post(f"/v1/streams/{sid}/comments", json={"text": "first"})
    comment_id = _ok(posted)["commentId"]
    _ok(owner.post(f"/v1/streams/{sid}/bans", json={"userId": ids["banned"], "reason": "test"}))
    _ok(callers["follower"].post(f"/v1/streams/{sid}/reports", json={"reason": "spam"}))
    later = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    schedule_id = _ok(
        owner.post("/v1/schedules", json={"title": "Next", "category": "chat", "scheduledFor": later})
    )["scheduleId"]
    battle_id = _ok(
        rival.post("/v1/pk-battles", json={"streamId": rival_sid, "opponentStreamId": sid}), 200, 201, 202
    )["battleId"]

    def projected() -> None:
        doc = _ok(owner.get(f"/v1/streams/{sid}"))
        assert doc["moderators"] == [ids["stream_moderator"]] and doc["bannedUsers"] == [ids["banned"]], doc
        assert _ok(owner.get(f"/v1/streams/{sid}/comments"))["comments"], "comment not projected yet"
        assert owner.get(f"/v1/schedules/{schedule_id}").status_code == 200
        assert owner.get(f"/v1/pk-battles/{battle_id}").status_code == 200

    eventually(projected)
    time.sleep(FACTS_TTL_S)  # the API's shared copy of the stream's facts (taken by the comment) expires
    world = World(ids, sid, comment_id, schedule_id, battle_id, command_id)
    key = _ok(owner.get(f"/v1/streams/{sid}"))["streamKey"]
    hook = _ok(owner.post("/v1/webhooks", json={"url": HOOK_URL, "eventTypes": ["streams.StreamSuspended"]}))
    world.values.update(
        owner_id=ids["owner"],
        rival_stream_id=rival_sid,
        stream_key=key,
        report_id=f"{sid}-1",
        webhook_id=hook["id"],
    )
    device = _ok(owner.post("/v1/devices", json={"platform": "dev", "token": uid("tok-world")}))
    world.values.update(device_id=device["deviceId"], notification_id=eventually(_go_live_notice(callers)))
    return world, callers


def _go_live_notice(callers: Callers) -> Callable[[], str]:
    def noticed() -> str:
        items = _ok(callers["viewer"].get("/v1/notifications"))["notifications"]
        started = [n for n in items if n["kind"] == "stream_started"]
        assert started, "the followers' go-live notice is not in the inbox yet"
        return str(started[0]["notificationId"])

    return noticed


@pytest.fixture(scope="module")
def shared_world(stack: DevStack) -> tuple[World, Callers]:
    return build_world(stack)


# A 404 with these slugs hides something that exists in the world (a private stream, someone else's
# command); any other 404 names an id the world does not hold (a payout) and is a domain answer.
HIDING_SLUGS = frozenset(
    {"stream-not-found", "command-not-found", "device-not-found", "notification-not-found"}
)


def _outcome(response: httpx.Response) -> Expect:
    status = response.status_code
    if status in (401, 403) or status >= 500 or status == 404 and _slug(response) in HIDING_SLUGS:
        return status
    return OK


def _slug(response: httpx.Response) -> str:
    try:
        return str(response.json().get("type", "")).rsplit("/", 1)[-1]
    except ValueError:
        return ""


def _call(api: Api, row: Row, world: World) -> httpx.Response:
    body = row.body(world) if callable(row.body) else row.body
    url = world.fill(row.path, row.user)
    if row.path.endswith("/events"):  # SSE: the status line is the answer; do not wait for frames
        with api.stream("GET", url) as response:
            response.close()
            return response
    if row.form:
        return api.request(row.method, url, data=body)
    return api.request(row.method, url, json=body)


def run_row(row: Row, world: World, callers: Callers) -> list[str]:
    order = sorted(IDENTITIES, key=lambda i: row.expected[i] == OK)  # refused callers first
    mismatches = []
    for identity in order:
        response = _call(callers[identity], row, world)
        got = _outcome(response)
        want = row.expected[identity]
        if got != want:
            mismatches.append(f"{identity}: expected {want}, got {response.status_code} {_slug(response)}")
    return mismatches


def _row_id(row: Row) -> str:
    return f"{row.method} {row.path}"


@pytest.fixture(scope="module")
def fresh_world(stack: DevStack) -> Iterator[Callable[[], tuple[World, Callers]]]:
    yield lambda: build_world(stack)


@pytest.mark.parametrize("row", ROWS, ids=_row_id)
def test_authorization(
    row: Row,
    shared_world: tuple[World, Callers],
    fresh_world: Callable[[], tuple[World, Callers]],
) -> None:
    world, callers = fresh_world() if row.mutates else shared_world
    mismatches = run_row(row, world, callers)
    assert not mismatches, f"{_row_id(row)}:\n  " + "\n  ".join(mismatches)


def test_a_wrong_expectation_is_caught(shared_world: tuple[World, Callers]) -> None:
    """The matrix can fail: a row that lets a stranger read a followers-only stream is refused."""
    world, callers = shared_world
    leaky = Row("GET", "/v1/streams/{stream_id}", expect(stranger=OK, banned=OK, minor=OK))
    # the analyst is a stranger to the world too (`expect` gives it the stranger's expectation)
    refused = ["analyst", "banned", "minor", "stranger"]
    assert sorted(m.split(":")[0] for m in run_row(leaky, world, callers)) == refused
