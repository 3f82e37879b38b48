"""The web console (docs/console.md): its pages and static assets, served by the API process.

The pages are static files; everything they show comes from the public v1 API and the realtime
feed, called by the browser with the signed-in user's token. No route here reads a model or needs
a token, and none is in the OpenAPI document (the fuzz has nothing to learn from them).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, HTMLResponse

from spaktok.api.problems import Problem

router = APIRouter(include_in_schema=False)

CONSOLE_DIR = Path(__file__).resolve().parents[2] / "console"
# hls.js is installed by the set-up from npm (README), never committed: served when present
HLS_JS = CONSOLE_DIR / "vendor" / "node_modules" / "hls.js" / "dist" / "hls.min.js"
MEDIA_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
NO_CACHE = {"Cache-Control": "no-cache"}  # revalidate: a new release's pages never mix with old scripts


def _page(name: str) -> FileResponse:
    return FileResponse(CONSOLE_DIR / f"{name}.html", media_type="text/html; charset=utf-8", headers=NO_CACHE)


@router.get("/")
async def discovery_page() -> FileResponse:
    return _page("index")


@router.get("/signin")
async def signin_page() -> FileResponse:
    return _page("signin")


@router.get("/watch/{stream_id}")
async def watch_page(stream_id: str) -> HTMLResponse:
    """The script reads the id from the address. The page is told whether hls.js is installed, so
    that it never asks for a file that is not there (a 404 is an error in the browser's console)."""
    html = await run_in_threadpool((CONSOLE_DIR / "watch.html").read_text, "utf-8")
    hls_src = "/console/vendor/hls.min.js" if HLS_JS.is_file() else ""
    return HTMLResponse(html.replace("{{HLS_SRC}}", hls_src), headers=NO_CACHE)


@router.get("/studio")
async def studio_page() -> FileResponse:
    return _page("studio")


@router.get("/admin")
async def admin_page() -> FileResponse:
    return _page("admin")


@router.get("/console/{folder}/{asset}")
async def console_asset(folder: Literal["js", "css", "vendor"], asset: str) -> FileResponse:
    """A script or style sheet of the console; `vendor/hls.min.js` when the set-up installed it."""
    missing = Problem(404, "not-found", f"no console asset {folder}/{asset}")
    if folder == "vendor":
        if asset != "hls.min.js" or not HLS_JS.is_file():
            raise missing
        return FileResponse(HLS_JS, media_type=MEDIA_TYPES[".js"], headers=NO_CACHE)
    path = CONSOLE_DIR / folder / asset
    media_type = MEDIA_TYPES.get(path.suffix)
    # the name is one path segment (the router never gives a "/"), and a dotfile or ".." is refused
    if media_type is None or asset.startswith(".") or not path.is_file():
        raise missing
    return FileResponse(path, media_type=media_type, headers=NO_CACHE)
