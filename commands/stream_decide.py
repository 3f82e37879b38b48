"""The stream decider, now in `commands.stream` (one module per context); these names stay here for
the modules that import them from here."""

from spaktok.commands.stream.decide import decide
from spaktok.commands.stream.lifecycle import ending
from spaktok.commands.stream.moderation import MODERATION_TEAM
from spaktok.commands.stream.moderation import notice as _moderation_notice
from spaktok.commands.stream.pk import battle_link_refusal

__all__ = ["MODERATION_TEAM", "_moderation_notice", "battle_link_refusal", "decide", "ending"]
