"""Imports every event module so the registry is complete wherever events are decoded."""

from spaktok.events import (  # noqa: F401
    audiences,
    battles,
    broadcasters,
    earnings,
    media,
    schedules,
    stream_shards,
    streams,
    wallets,
)
from spaktok.events.base import EVENT_TYPES

__all__ = ["EVENT_TYPES"]
