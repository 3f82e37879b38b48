"""Chat profanity masking with the real model (alt-profanity-check), no infrastructure."""

from __future__ import annotations

from collections.abc import Sequence

from spaktok.api.chat_filter import ChatFilter

FILTER = ChatFilter()


def test_offensive_words_are_masked_letter_for_letter() -> None:
    assert FILTER.mask("what a fucking great stream") == "what a ******* great stream"
    assert FILTER.mask("Shit happens") == "**** happens"


def test_ordinary_chat_is_left_alone() -> None:
    for text in ("hello from Lyon!", "gg wp 🎉 2-1", "can you play the next song?", "I love this"):
        assert FILTER.mask(text) == text


def test_verdicts_are_cached_so_known_words_need_no_model_call() -> None:
    calls: list[Sequence[str]] = []

    def score(words: Sequence[str]) -> list[float]:
        calls.append(list(words))
        return [1.0 if w == "darn" else 0.0 for w in words]

    chat = ChatFilter(score=score)
    assert chat.mask("Darn it, darn") == "**** it, ****"
    assert calls == [["darn", "it"]]
    assert chat.unknown_words("DARN it") == []
    assert chat.mask("darn IT") == "**** IT" and len(calls) == 1


def test_the_cache_is_bounded() -> None:
    chat = ChatFilter(cache_size=3, score=lambda words: [0.0] * len(words))
    chat.mask("one two three four five")
    assert len(chat.unknown_words("one two three four five")) == 2
