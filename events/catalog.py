"""Imports every event module so the registry is complete wherever events are decoded."""

from spaktok.events import audiences, battles, broadcasters, earnings, media, schedules, streams, wallets  # noqa: F401
from spaktok.events.base import EVENT_TYPES

__all__ = ["EVENT_TYPES"]
