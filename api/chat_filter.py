"""Profanity masking for chat, at the edge: the command, the event and every read model hold the
masked text only, so replays are deterministic and the words never reach the log.

Detection is `alt-profanity-check` (maintained, a linear model trained on offensive-language data):
each word is scored, and a word scoring at least `threshold` is replaced by asterisks of the same
length. Chat vocabularies repeat, so verdicts are cached per lower-cased word: most messages cost
dictionary lookups, and only new words pay for the model (~2 ms per call, run off the event loop).
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence

WORD = re.compile(r"[^\W\d_]{2,}")  # letters only: numbers, emoji and punctuation are never masked


def _model() -> Callable[[Sequence[str]], Sequence[float]]:
    from profanity_check import predict_prob  # imported lazily: loading the model takes ~1 s

    return predict_prob  # type: ignore[no-any-return]


class ChatFilter:
    def __init__(
        self,
        threshold: float = 0.5,
        cache_size: int = 100_000,
        score: Callable[[Sequence[str]], Sequence[float]] | None = None,
    ) -> None:
        self.threshold = threshold
        self.cache_size = cache_size
        self._score = score
        self._verdicts: OrderedDict[str, bool] = OrderedDict()
        self._lock = threading.Lock()  # `mask` runs in worker threads too

    def unknown_words(self, text: str) -> list[str]:
        """Words with no cached verdict; when empty, `mask` needs no model call."""
        words = {w.lower() for w in WORD.findall(text)}
        with self._lock:
            return sorted(words - self._verdicts.keys())

    def mask(self, text: str) -> str:
        unknown = self.unknown_words(text)
        verdicts: dict[str, bool] = {}
        if unknown:
            if self._score is None:
                self._score = _model()
            scores = self._score(unknown)
            verdicts = {w: float(p) >= self.threshold for w, p in zip(unknown, scores, strict=True)}
            with self._lock:
                self._verdicts.update(verdicts)
                while len(self._verdicts) > self.cache_size:
                    self._verdicts.popitem(last=False)

        def masked(match: re.Match[str]) -> str:
            word = match.group()
            key = word.lower()
            bad = verdicts[key] if key in verdicts else self._verdicts.get(key, False)
            return "*" * len(word) if bad else word

        return WORD.sub(masked, text)
