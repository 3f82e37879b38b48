"""Imports every command module so the registry is complete wherever commands are decoded."""

from spaktok.commands import audiences, battles, broadcasters, earnings, media, schedules, streams, wallets  # noqa: F401
from spaktok.commands.base import COMMAND_TYPES

__all__ = ["COMMAND_TYPES"]
