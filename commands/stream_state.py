"""The stream aggregate's state and `evolve`, now in `commands.stream` (one module per context);
these names stay here for the modules that import them from here."""

from spaktok.commands.stream.evolve import evolve
from spaktok.commands.stream.state import (
    ANONYMOUS_ACTION,
    COMBO_MEMORY_MS,
    COMMENT_MEMORY_MS,
    COMMENT_PRUNE_EVERY_MS,
    LIKE_ID_MEMORY,
    StreamState,
    millis,
)
from spaktok.commands.stream.storage import join, split, thaw

__all__ = [
    "ANONYMOUS_ACTION",
    "COMBO_MEMORY_MS",
    "COMMENT_MEMORY_MS",
    "COMMENT_PRUNE_EVERY_MS",
    "LIKE_ID_MEMORY",
    "StreamState",
    "evolve",
    "join",
    "millis",
    "split",
    "thaw",
]
