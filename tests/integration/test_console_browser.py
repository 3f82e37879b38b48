"""The web console in a real browser (issue #19): Playwright driving Debian's chromium against the
real stack, one browser context per person. Every page of every test fails on a console error or an
uncaught exception (`Person.close`).

Skipped, with the reason, where chromium is not installed (`.ci/run` installs it from Debian
packages; Playwright never downloads a browser here). The screenshots in docs/console/ are made by
`test_screenshots_of_the_four_pages`.
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from harness import Api, eventually, start_stack, uid
from playwright.sync_api import Browser, ConsoleMessage, Page, expect, sync_playwright
from test_live_feed import wait_for_document
from test_media import broadcast
from test_money import buy

from spaktok.api.auth import mint_token
from spaktok.api.routes.console import HLS_JS
from spaktok.infra.devstack import DevStack
from spaktok.infra.nginx import INSTALL_HINT, missing_media_tools
from spaktok.settings import Settings

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        CHROMIUM is None, reason="needs Debian's chromium (`apt-get install chromium`; .ci/run installs it)"
    ),
]
SHOTS = Path(__file__).resolve().parents[2] / "docs" / "console"
PHONE = {"width": 375, "height": 812}
DESKTOP = {"width": 1280, "height": 860}


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        # --no-sandbox: CI runs as root, where chromium refuses its sandbox
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


class Person:
    """One person at one browser: their own context (storage, token), pages, and the errors seen."""

    def __init__(
        self, browser: Browser, stack: DevStack, user_id: str, *, roles: str = "", phone: bool = False
    ):
        self.base, self.user_id = stack.api_url, user_id
        self.context = browser.new_context(viewport=PHONE if phone else DESKTOP)
        self.errors: list[str] = []
        self.refusals: set[int] = set()  # statuses a test provokes on purpose (see `allow`)
        self.page = self.open()
        self.sign_in(roles)

    def open(self) -> Page:
        page = self.context.new_page()
        page.on("console", lambda m: self.errors.append(_error_of(page, m)) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(f"{page.url}: {e}"))
        return page

    def sign_in(self, roles: str) -> None:
        page = self.page
        page.goto(f"{self.base}/signin")
        page.get_by_test_id("login-user").fill(self.user_id)
        page.get_by_test_id("login-name").fill(self.user_id.split("-")[0].title())
        if roles:
            page.get_by_test_id("login-roles").fill(roles)
        page.get_by_test_id("login-birth-year").fill("1990")
        page.get_by_test_id("login-submit").click()
        page.wait_for_url(lambda url: "/signin" not in url)

    def goto(self, path: str, page: Page | None = None) -> Page:
        page = page or self.page
        page.goto(f"{self.base}{path}")
        return page

    def allow(self, status: int) -> None:
        """From now on a refusal with `status` is expected. Chromium logs every non-2xx response as
        a console error of its own ("Failed to load resource"), whatever the page does with it."""
        self.refusals.add(status)

    def close(self) -> None:
        self.context.close()
        expected = tuple(f"the server responded with a status of {s} " for s in self.refusals)
        errors = [
            e
            for e in self.errors
            if not (expected and "Failed to load resource" in e and any(x in e for x in expected))
        ]
        assert not errors, f"console errors at {self.user_id}'s browser: {errors}"


def _error_of(page: Page, message: ConsoleMessage) -> str:
    """The page, the message and where it came from: for "Failed to load resource", the resource."""
    source = message.location.get("url") or "?"
    return f"{page.url}: {message.text} (at {source})"


@pytest.fixture
def people(browser: Browser, stack: DevStack) -> Iterator[Callable[..., Person]]:
    made: list[Person] = []

    def make(prefix: str, **options: Any) -> Person:
        person = Person(browser, stack, uid(prefix), **options)
        made.append(person)
        return person

    yield make
    for person in made:
        person.close()


def go_live(person: Person, title: str, tag: str = "") -> tuple[str, str]:
    """Through the studio page: the stream's id and key."""
    studio = person.goto("/studio")
    studio.get_by_test_id("studio-title").fill(title)
    if tag:
        studio.get_by_test_id("studio-tags").fill(tag)
    studio.get_by_test_id("go-live").click()
    expect(studio.get_by_test_id("stream-key")).to_contain_text("sk_", timeout=15_000)
    sid = studio.get_by_test_id("stream-id").inner_text().strip()
    assert sid.startswith("st_"), sid
    return sid, studio.get_by_test_id("stream-key").inner_text().strip()


def number(page: Page, test_id: str) -> int:
    text = page.get_by_test_id(test_id).first.inner_text()
    digits = "".join(c for c in text if c.isdigit())
    return int(digits or 0)


def test_viewer_and_broadcaster_chat_like_gift_and_ban(
    people: Callable[..., Person], user: Callable[..., Api]
) -> None:
    caster, fan = people("caster"), people("fan")
    buy(user(uid("admin"), roles=["admin"]), fan.user_id, 1000)  # as the payment provider's callback
    sid, key = go_live(caster, "Browser test")
    assert key.startswith("sk_")
    studio = caster.page
    caster_watch = caster.goto(f"/watch/{sid}", caster.open())
    watch = fan.goto(f"/watch/{sid}")
    expect(watch.get_by_test_id("feed-status")).to_have_text("live", timeout=15_000)
    expect(caster_watch.get_by_test_id("feed-status")).to_have_text("live", timeout=15_000)
    expect(watch.get_by_test_id("player")).to_be_visible()

    # a comment typed by the viewer is in the broadcaster's chat within 2 s
    watch.get_by_test_id("chat-input").fill("hello from the browser")
    sent = time.monotonic()
    watch.get_by_test_id("chat-send").click()
    expect(studio.get_by_test_id("chat-list")).to_contain_text("hello from the browser", timeout=2_000)
    assert time.monotonic() - sent < 2.0
    expect(watch.get_by_test_id("chat-list")).to_contain_text("hello from the browser")

    # likes: three taps reach both counters; the viewer count counts the viewer
    for _ in range(3):
        watch.get_by_test_id("like-button").click()
    for page in (watch, caster_watch):
        eventually(lambda page=page: _at_least(number(page, "like-count"), 3), timeout=10)
        eventually(lambda page=page: _at_least(number(page, "viewer-count"), 1), timeout=15)

    # a gift from the balance shown: the animation and the leaderboard in both browsers
    eventually(lambda: _at_least(number(watch, "balance"), 1000), timeout=10)
    watch.get_by_test_id("gift-button").click()
    for page in (watch, caster_watch):
        expect(page.get_by_test_id("gift-animation")).to_be_visible(timeout=10_000)
        expect(page.get_by_test_id("leaderboard")).to_contain_text(
            fan.user_id.split("-")[0].title(), timeout=10_000
        )

    # a ban removes the viewer's chat input and closes their feed
    owner = user(caster.user_id)
    fan.allow(403)  # what the page asks after the ban is refused
    assert owner.post(f"/v1/streams/{sid}/bans", json={"userId": fan.user_id}).status_code == 200
    expect(watch.get_by_test_id("feed-status")).to_have_text("closed", timeout=10_000)
    expect(watch.get_by_test_id("chat-input")).to_have_count(0)
    expect(watch.get_by_test_id("watch-error")).to_contain_text(re.compile("ban", re.I), timeout=5_000)


def test_a_pk_battle_shows_both_scores_moving(
    people: Callable[..., Person], user: Callable[..., Api]
) -> None:
    red_id, blue_id, fan_id = uid("red"), uid("blue"), uid("fan")
    red, blue, fan = user(red_id), user(blue_id), user(fan_id)
    admin = user(uid("admin"), roles=["admin"])
    s1, s2 = _start(red, "Red corner"), _start(blue, "Blue corner")
    buy(admin, fan_id, 1000)
    watcher = people("watcher")
    watch = watcher.goto(f"/watch/{s1}")
    expect(watch.get_by_test_id("feed-status")).to_have_text("live", timeout=15_000)

    invited = red.post(
        "/v1/pk-battles", json={"streamId": s1, "opponentStreamId": s2, "durationSeconds": 300}
    )
    assert invited.status_code == 201, invited.text
    assert blue.post(f"/v1/pk-battles/{invited.json()['battleId']}/accept").status_code == 200
    bar = watch.get_by_test_id("pk-bar")
    expect(bar).to_be_visible(timeout=15_000)
    expect(watch.get_by_test_id("pk-countdown")).not_to_be_empty()

    assert fan.post(f"/v1/streams/{s1}/gifts", json={"giftId": "doughnut"}).status_code == 200
    expect(watch.get_by_test_id("pk-score-1")).to_have_text("30", timeout=10_000)
    assert fan.post(f"/v1/streams/{s2}/gifts", json={"giftId": "hand-hearts"}).status_code == 200
    expect(watch.get_by_test_id("pk-score-2")).to_have_text("100", timeout=10_000)
    expect(watch.get_by_test_id("pk-score-1")).to_have_text("30")


def test_the_admin_suspends_a_reported_stream_and_the_viewer_sees_it_end(
    people: Callable[..., Person], user: Callable[..., Api]
) -> None:
    host_id = uid("host")
    host = user(host_id)
    sid = _start(host, "Reported stream")
    reporter = user(uid("reporter"))
    assert reporter.post(f"/v1/streams/{sid}/reports", json={"reason": "spam"}).status_code == 200
    viewer = people("viewer")
    watch = viewer.goto(f"/watch/{sid}")
    expect(watch.get_by_test_id("feed-status")).to_have_text("live", timeout=15_000)

    admin = people("admin", roles="admin,moderation")
    page = admin.goto("/admin")
    row = page.locator(f"[data-testid='report-row'][data-stream-id='{sid}']")
    eventually(lambda: _reload_until_visible(page, row), timeout=20, interval=1)
    row.get_by_test_id("report-suspend").click()
    eventually(lambda: _assert(host.get(f"/v1/streams/{sid}").json()["status"] == "ended"), timeout=15)
    expect(watch.get_by_test_id("feed-status")).to_have_text("closed", timeout=10_000)


def test_screenshots_of_the_four_pages(people: Callable[..., Person], user: Callable[..., Api]) -> None:
    """docs/console/: discovery, watch, studio and admin at desktop width, and the watch page on a
    phone (375 px); each page usable there (no horizontal scroll)."""
    caster = people("caster")
    tag = uid("shot")  # the suite's other live streams may fill discovery's first page: filter by it
    sid, _ = go_live(caster, "Screenshot stream", tag=tag)
    SHOTS.mkdir(parents=True, exist_ok=True)
    caster.page.screenshot(path=str(SHOTS / "studio.png"), full_page=True)
    fan = people("fan")
    discovery = fan.goto(f"/?tag={tag}")
    expect(discovery.locator(f"[data-testid='stream-card'][data-stream-id='{sid}']")).to_be_visible(
        timeout=15_000
    )
    discovery.screenshot(path=str(SHOTS / "discovery.png"), full_page=True)
    watch = fan.goto(f"/watch/{sid}")
    expect(watch.get_by_test_id("feed-status")).to_have_text("live", timeout=15_000)
    watch.screenshot(path=str(SHOTS / "watch.png"), full_page=True)
    admin = people("admin", roles="admin")
    page = admin.goto("/admin")
    expect(page.get_by_test_id("admin-metrics")).to_be_visible(timeout=15_000)
    page.screenshot(path=str(SHOTS / "admin.png"), full_page=True)
    phone = people("phone", phone=True)
    for path in ("/", f"/watch/{sid}", "/studio", "/admin"):
        shown = phone.goto(path)
        shown.wait_for_load_state("networkidle")
        overflow = shown.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"{path} scrolls sideways by {overflow} px at 375 px"
    phone.goto(f"/watch/{sid}").screenshot(path=str(SHOTS / "watch-phone.png"), full_page=True)


def _start(api: Api, title: str) -> str:
    response = api.post("/v1/streams", json={"title": title, "category": "games"})
    assert response.status_code == 201, response.text
    sid = str(response.json()["streamId"])
    wait_for_document(api, sid)
    return sid


def _reload_until_visible(page: Page, locator: Any) -> None:
    page.reload()
    expect(locator).to_be_visible(timeout=3_000)


def _at_least(value: int, minimum: int) -> None:
    assert value >= minimum, value


def _assert(condition: bool) -> None:
    assert condition


@pytest.fixture(scope="module")
def media_stack() -> Iterator[DevStack]:
    missing = missing_media_tools()
    if missing:
        pytest.skip(f"needs {', '.join(missing)}: {INSTALL_HINT}")
    if not HLS_JS.is_file():
        pytest.skip(
            "needs hls.js (the set-up's `npm install --prefix console/vendor hls.js@1`; .ci/run runs it)"
        )
    stack, cleanup = start_stack("console-media", media=True, hls_fragment_s=1)
    try:
        yield stack
    finally:
        cleanup()


def test_a_published_test_pattern_plays_in_the_watch_page(browser: Browser, media_stack: DevStack) -> None:
    """`--media`: ffmpeg publishes through nginx-rtmp; the watch page's player (hls.js) plays it."""
    caster = Api(media_stack.api_url, mint_token(Settings(), uid("caster")))
    started = caster.post("/v1/streams", json={"title": "Played in a browser", "category": "tech"})
    assert started.status_code == 201, started.text
    sid, key = started.json()["streamId"], started.json()["streamKey"]
    wait_for_document(caster, sid)
    encoder = broadcast(media_stack, key)
    viewer = Person(browser, media_stack, uid("viewer"))
    try:
        watch = viewer.goto(f"/watch/{sid}")
        player = watch.get_by_test_id("player")
        expect(player).to_be_visible(timeout=15_000)
        first = eventually(lambda: _playing(watch, above=0.5), timeout=60, interval=1)
        eventually(lambda: _playing(watch, above=first + 1.0), timeout=20, interval=0.5)
    finally:
        encoder.terminate()
        encoder.wait(10)
        viewer.close()


def _playing(page: Page, above: float) -> float:
    """The player's position once it is a video (before the first playlist it is a notice: -1)."""
    script = "(document.querySelector('video[data-testid=player]') || {currentTime: -1}).currentTime"
    position = float(page.evaluate(script))
    assert position > above, position
    return position


UNNAMED_CONTROLS = """() => [...document.querySelectorAll('input, select, textarea, button')]
    .filter(e => e.offsetParent !== null && e.type !== 'hidden')
    .filter(e => !(e.getAttribute('aria-label') || e.getAttribute('aria-labelledby') || e.title
                   || (e.labels && e.labels.length) || (e.tagName === 'BUTTON' && e.textContent.trim())))
    .map(e => e.outerHTML.slice(0, 120))"""
FOCUS_SHOWN = """() => { const e = document.activeElement, s = getComputedStyle(e);
    return e !== document.body && (s.outlineStyle !== 'none' || s.boxShadow !== 'none'); }"""


def test_refusals_in_words_labels_and_keyboard_focus(
    people: Callable[..., Person], user: Callable[..., Api]
) -> None:
    """A followers-only stream refused to an outsider in words; on every page each visible control
    has a name a screen reader can say, and the keyboard's focus is shown."""
    host = user(uid("host"))
    response = host.post(
        "/v1/streams", json={"title": "Fans only", "category": "chat", "privacy": "followers"}
    )
    assert response.status_code == 201, response.text
    closed = str(response.json()["streamId"])
    wait_for_document(host, closed)
    outsider = people("outsider")
    outsider.allow(403)  # the refusal this test is about
    refused = outsider.goto(f"/watch/{closed}")
    expect(refused.get_by_test_id("watch-error")).to_contain_text(re.compile("follow", re.I), timeout=10_000)

    caster = people("caster", roles="admin")
    sid, _ = go_live(caster, "Accessible stream")
    for path in ("/signin", "/", f"/watch/{sid}", "/studio", "/admin"):
        page = caster.goto(path, caster.open())
        page.wait_for_load_state("networkidle")
        assert page.evaluate(UNNAMED_CONTROLS) == [], f"controls without a name on {path}"
        page.keyboard.press("Tab")
        page.keyboard.press("Tab")
        assert page.evaluate(FOCUS_SHOWN), f"the keyboard's focus is not shown on {path}"


def test_the_label_and_focus_checks_fail_on_a_page_without_them(browser: Browser) -> None:
    """The two checks above, on a hand-made bad page: they must be able to fail."""
    page = browser.new_page()
    try:
        page.set_content("<style>*:focus { outline: none }</style><input id='q'><button>Go</button>")
        assert len(page.evaluate(UNNAMED_CONTROLS)) == 1  # the input has no label; the button has text
        page.keyboard.press("Tab")
        assert page.evaluate(FOCUS_SHOWN) is False
    finally:
        page.close()
