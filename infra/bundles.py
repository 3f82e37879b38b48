"""Command bundles: many commands for one partition of a command topic, in one Kafka record.

Faust's cost is per Kafka message and the dev broker's per request (DESIGN §4, docs/decisions.md
"Command bundles"), so the API and the worker send the commands they have for one partition at a
moment as one record: a JSON array of the commands' JSON objects, keyed by the first command's
aggregate id and written to the partition every member's key hashes to. The worker decides each
member exactly as if it had come alone (same dedupe by command id, same single writer per
aggregate); a member whose key belongs on another partition is dead-lettered, never decided.

Outcomes are bundled the same way: the outcomes of one worker batch travel as one array record.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

from aiokafka.partitioner import murmur2

BUNDLE_TYPE = "bundle"  # the `command-type` header of a bundle record
MAX_MEMBERS = 500  # commands per bundle: keeps a record far below the producers' request limits
# ... and bytes per bundle: 500 big members (a hot stream's time-outs, ~60 KB each) would not be
MAX_BUNDLE_BYTES = 512 * 1024


@lru_cache(maxsize=1 << 16)
def partition_for(key: str, partitions: int) -> int:
    """The partition a key lands on with murmur2, as the Java client, aiokafka and our producers hash.

    Cached: aiokafka's murmur2 is pure Python (~5 µs a key), and the worker asks for the same
    keys (a stream's, a wallet's) for every bundled command and follow-up of a batch."""
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions


def encode(members: Sequence[bytes]) -> bytes:
    """One JSON array of already encoded JSON objects (no decode and re-encode)."""
    return b"[" + b",".join(members) + b"]"


def pack(members: Sequence[bytes], single_type: str) -> tuple[bytes, str]:
    """The value and `command-type` header of a record carrying `members`: a lone member travels
    as itself (with its own type), several as one bundle."""
    if len(members) == 1:
        return members[0], single_type
    return encode(members), BUNDLE_TYPE


def is_bundle(raw: bytes) -> bool:
    """A bundle is an array; a single command or outcome is an object."""
    return raw[:1] == b"["
