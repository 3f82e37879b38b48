"""`?types=` of chat history: the default keeps API.md's text-only answer; unknown and feed-only
types are a 422 problem."""

from __future__ import annotations

import pytest

from spaktok.api.problems import Problem
from spaktok.api.routes.chat import history_types


def test_the_default_is_text_only_and_a_list_keeps_its_order_once() -> None:
    assert history_types(None) == ("text",)
    assert history_types("gift, text,gift") == ("gift", "text")
    assert history_types("text,gift,system") == ("text", "gift", "system")


@pytest.mark.parametrize("types", ["join", "like,text", "bogus", "", ","])
def test_unknown_or_feed_only_types_are_refused(types: str) -> None:
    with pytest.raises(Problem) as refused:
        history_types(types)
    assert refused.value.status == 422 and refused.value.type == "invalid-comment-types"
