"""The app's routers are tried busiest first (api/app.py): that is safe only while no path can match
templates of two routers, so that the order decides which route is tried first, never which answers."""

from __future__ import annotations

from itertools import combinations

from spaktok.api.app import create_app


def _could_match_one_path(a: str, b: str) -> bool:
    """Whether some path matches both templates ({param} matches one segment, {x:path} many)."""
    if ":path}" in a or ":path}" in b:
        return True  # not worth a finer answer: none of ours has one
    sa, sb = a.strip("/").split("/"), b.strip("/").split("/")
    return len(sa) == len(sb) and all(
        x == y or x.startswith("{") or y.startswith("{") for x, y in zip(sa, sb, strict=True)
    )


def test_no_path_can_match_templates_of_two_routers() -> None:
    app = create_app()
    routers = [r for r in app.routes if hasattr(r, "original_router")]
    assert len(routers) > 10
    templates = [{route.path for route in r.original_router.routes} for r in routers]
    clashes = [
        (a, b)
        for first, second in combinations(templates, 2)
        for a in first
        for b in second
        if _could_match_one_path(a, b)
    ]
    assert clashes == []


def test_the_gift_and_comment_routes_come_right_after_the_probes() -> None:
    app = create_app()
    first = [
        {route.path for route in r.original_router.routes}
        for r in app.routes
        if hasattr(r, "original_router")
    ][:3]
    assert "/healthz" in first[0]
    assert "/v1/streams/{stream_id}/gifts" in first[1]
    assert "/v1/streams/{stream_id}/comments" in first[2]
