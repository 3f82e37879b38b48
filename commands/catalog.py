"""Imports every command module so the registry is complete wherever commands are decoded."""

from spaktok.commands import (  # noqa: F401
    audiences,
    battles,
    broadcasters,
    earnings,
    enforcement,
    media,
    schedules,
    stream_shards,
    streams,
    wallets,
)
from spaktok.commands.base import COMMAND_TYPES

__all__ = ["COMMAND_TYPES"]
