"""Stream keys and signed media URLs: pure functions of the settings' secrets (docs/media.md).

A stream key is `sk_{streamId}_{generation}_{mac}`: it names its stream, so the publish hook finds
the stream without a lookup, and the MAC (HMAC-SHA256 over stream id and generation) proves it
was issued by us. Rotation bumps the generation in the stream aggregate; the key is derived when
needed and never stored or logged.

Playback and replay URLs are signed for nginx's `secure_link`: the path carries
`/{md5}/{expires}/`, where md5 is base64url(MD5("{expires}{resource} {secret}")) without padding.
For HLS the signed resource is the stream's directory (`/hls/{streamId}`) and the viewer it was
issued to (a path segment, inside the MD5), so the segments the playlist names relatively inherit
the same token; a replay signs its one file.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

KEY_PREFIX = "sk_"
MAC_HEX = 32
_KEY = re.compile(
    r"^sk_(?P<stream>[A-Za-z0-9_\-]{1,64})_(?P<generation>[1-9][0-9]{0,8})_(?P<mac>[0-9a-f]{32})$"
)


def _mac(secret: str, stream_id: str, generation: int) -> str:
    message = f"stream-key:{stream_id}:{generation}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()[:MAC_HEX]


def stream_key(secret: str, stream_id: str, generation: int) -> str:
    """The publish key of `stream_id` in key generation `generation`."""
    return f"{KEY_PREFIX}{stream_id}_{generation}_{_mac(secret, stream_id, generation)}"


@dataclass(frozen=True)
class KeyClaim:
    stream_id: str
    generation: int


def verify_stream_key(secret: str, key: str) -> KeyClaim | None:
    """The stream and generation a key was issued for, or None when it is not one of ours.

    The MAC is compared in constant time; whether the generation is still current is the stream
    aggregate's decision (`StartIngest`).
    """
    match = _KEY.match(key)
    if match is None:
        return None
    stream_id, generation = match["stream"], int(match["generation"])
    if not hmac.compare_digest(match["mac"], _mac(secret, stream_id, generation)):
        return None
    return KeyClaim(stream_id, generation)


def link_token(secret: str, resource: str, expires: int, viewer: str | None = None) -> str:
    """nginx `secure_link_md5 "$expires$resource $secret"` (with a viewer tag:
    `"$expires$resource $viewer $secret"`), base64url without padding."""
    signed = f"{expires}{resource} {secret}" if viewer is None else f"{expires}{resource} {viewer} {secret}"
    digest = hashlib.md5(signed.encode()).digest()  # noqa: S324 - nginx's scheme
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def viewer_tag(user_id: str) -> str:
    """The user id as one URL path segment (base64url, no padding): any `sub` fits, and it decodes
    back to who the URL was issued to."""
    return base64.urlsafe_b64encode(user_id.encode()).decode().rstrip("=")


def signed_url(base_url: str, secret: str, resource: str, file: str, expires: int) -> str:
    """`{base_url}/{md5}/{expires}/{resource-below-base}/{file}`; the token covers `resource`.

    `resource` is the absolute path nginx sees without the token (e.g. `/hls/st_1`); it must lie
    under the base URL's path.
    """
    base = base_url.rstrip("/")
    prefix = urlsplit(base).path
    if not resource.startswith(prefix + "/"):
        raise ValueError(f"{resource!r} is not under {prefix!r}")
    below = resource[len(prefix) :]
    token = link_token(secret, resource, expires)
    return f"{base}/{token}/{expires}{below}/{file}" if file else f"{base}/{token}/{expires}{below}"


def expiry(ttl_s: int, now: float | None = None) -> int:
    """Unix time `ttl_s` from now. Wall time, not the movable test clock: nginx checks it."""
    return int((time.time() if now is None else now) + ttl_s)


def playback_url(
    hls_base_url: str,
    secret: str,
    stream_id: str,
    ttl_s: int,
    now: float | None = None,
    *,
    viewer_id: str,
    file: str = "index.m3u8",
) -> str:
    """The signed HLS master playlist of a live stream for one viewer: `{base}/{md5}/{expires}/
    {viewer}/{streamId}/index.m3u8`; the variant playlists, segments and the live thumbnail
    (`file="thumb.jpg"`) in the stream's directory share the token, which covers the viewer."""
    base = hls_base_url.rstrip("/")
    resource = f"{urlsplit(base).path}/{stream_id}"
    expires, tag = expiry(ttl_s, now), viewer_tag(viewer_id)
    return f"{base}/{link_token(secret, resource, expires, tag)}/{expires}/{tag}/{stream_id}/{file}"


def recording_url(
    recordings_base_url: str, secret: str, path: str, ttl_s: int, now: float | None = None
) -> str:
    """A signed URL of one recording file (`path` relative to the recordings root: `{stream}/{file}`)."""
    resource = f"{urlsplit(recordings_base_url.rstrip('/')).path}/{path}"
    return signed_url(recordings_base_url, secret, resource, "", expiry(ttl_s, now))
