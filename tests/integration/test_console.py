"""The web console's HTTP side (docs/console.md): pages, assets, and the dev-mode token endpoint.

The browser tests drive the pages; these check what they stand on, over plain HTTP: every page is
HTML, every asset has its content type, a dev token is issued by a dev-mode API only (and the API
accepts it), and bad bodies are refused as problems.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import httpx
import pytest

from spaktok.api.app import create_app
from spaktok.api.routes.console import CONSOLE_DIR
from spaktok.infra.devstack import DevStack
from spaktok.settings import Settings

pytestmark = pytest.mark.integration

PAGES = ("/", "/signin", "/watch/st_anything", "/studio", "/admin")
ASSETS = {"/console/js/api.js": "text/javascript", "/console/css/console.css": "text/css"}


@pytest.fixture(scope="module")
def client(stack: DevStack) -> httpx.Client:
    with httpx.Client(base_url=stack.api_url, timeout=10) as http:
        yield http


def test_every_page_is_html(client: httpx.Client) -> None:
    for path in PAGES:
        response = client.get(path)
        assert response.status_code == 200, (path, response.text)
        assert response.headers["content-type"].startswith("text/html"), path
        assert '<link rel="icon" href="data:,">' in response.text  # no favicon request, no 404
        assert "/console/js/" in response.text


def test_the_watch_page_is_told_whether_hls_js_is_installed(client: httpx.Client) -> None:
    html = client.get("/watch/st_x").text
    assert "{{HLS_SRC}}" not in html
    installed = client.get("/console/vendor/hls.min.js")
    if installed.status_code == 200:
        assert 'data-hls-src="/console/vendor/hls.min.js"' in html
        assert installed.headers["content-type"].startswith("text/javascript")
    else:
        assert installed.status_code == 404
        assert 'data-hls-src=""' in html


def test_assets_have_their_content_types(client: httpx.Client) -> None:
    for path, media_type in ASSETS.items():
        response = client.get(path)
        assert response.status_code == 200, path
        assert response.headers["content-type"].startswith(media_type), (path, response.headers)
    for script in sorted((CONSOLE_DIR / "js").glob("*.js")):
        assert client.get(f"/console/js/{script.name}").status_code == 200, script.name


def test_only_console_files_are_served(client: httpx.Client) -> None:
    for path in (
        "/console/js/nope.js",
        "/console/js/..%2f..%2fsettings.py",
        "/console/js/.hidden.js",
        "/console/css/index.html",  # not a style sheet
        "/console/vendor/other.js",
    ):
        response = client.get(path)
        assert response.status_code == 404, (path, response.status_code)
        assert response.headers["content-type"] == "application/problem+json"
    assert client.get("/console/schemas/x.sql").status_code == 422  # not a console folder


def test_a_dev_api_issues_tokens_the_api_accepts(client: httpx.Client) -> None:
    body = {"userId": "console-dev", "name": "Dev", "roles": ["admin"], "premium": True, "birthYear": 1990}
    response = client.post("/v1/dev/token", json=body)
    assert response.status_code == 200, response.text
    token = response.json()["token"]
    wallet = client.get("/v1/wallet", headers={"Authorization": f"Bearer {token}"})
    assert wallet.status_code == 200, wallet.text
    assert wallet.json()["userId"] == "console-dev"
    metrics = client.get("/v1/admin/metrics", headers={"Authorization": f"Bearer {token}"})
    assert metrics.status_code != 403, metrics.text  # the admin role is in the token


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"userId": ""},
        {"userId": "has space"},
        {"userId": "ok", "roles": ["root"]},
        {"userId": "ok", "birthYear": 1200},
        {"userId": "ok", "premium": "very"},
        {"userId": "ok", "extra": 1},
    ],
)
def test_bad_bodies_are_422(client: httpx.Client, body: dict[str, object]) -> None:
    response = client.post("/v1/dev/token", json=body)
    assert response.status_code == 422, (body, response.text)
    assert response.headers["content-type"] == "application/problem+json"


async def test_no_tokens_outside_dev_mode() -> None:
    for env in ("test", "prod"):
        settings = Settings(env=env) if env == "test" else Settings.model_construct(env="prod")
        transport = httpx.ASGITransport(app=create_app(settings))
        async with httpx.AsyncClient(transport=transport, base_url="http://console.test") as http:
            response = await http.post("/v1/dev/token", json={"userId": "someone", "roles": ["admin"]})
        assert response.status_code == 404, (env, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert "token" not in response.json()


def test_the_package_ships_every_console_file() -> None:
    """pyproject's package-data covers each file under console/ (the set-up's vendor/ excepted)."""
    root = CONSOLE_DIR.parent
    config = tomllib.loads((root / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["spaktok"]
    shipped = {p for pattern in patterns for p in root.glob(pattern)}
    files = {p for p in CONSOLE_DIR.rglob("*") if p.is_file() and "vendor" not in p.relative_to(root).parts}
    assert files and files <= shipped, sorted(str(p) for p in files - shipped)
    assert all(isinstance(p, Path) for p in shipped)
