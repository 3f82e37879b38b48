"""nginx with the RTMP module as the media server of the dev stack: find it, render its config.

Debian/Ubuntu: `apt-get install nginx libnginx-mod-rtmp ffmpeg`. The config is rendered from
`nginx-rtmp.conf.template` with this stack's ports and paths, into a private prefix (pid, logs,
temp files), so it runs without root and beside a system nginx.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from spaktok.infra import ladder

TEMPLATE = Path(__file__).with_name("nginx-rtmp.conf.template")
MODULE_CANDIDATES = (
    "/usr/lib/nginx/modules/ngx_rtmp_module.so",  # Debian, Ubuntu
    "/usr/lib64/nginx/modules/ngx_rtmp_module.so",  # Fedora, RHEL
    "/usr/local/nginx/modules/ngx_rtmp_module.so",
    "/etc/nginx/modules/ngx_rtmp_module.so",  # Alpine
)
INSTALL_HINT = (
    "install the media server and the test broadcaster: "
    "`sudo apt-get install nginx libnginx-mod-rtmp ffmpeg` (Debian/Ubuntu)"
)


def find_rtmp_module() -> str | None:
    """The RTMP module's .so, from the usual places or a `load_module` line in modules-enabled."""
    for candidate in MODULE_CANDIDATES:
        if os.path.exists(candidate):
            return candidate
    enabled = Path("/etc/nginx/modules-enabled")
    if enabled.is_dir():
        for conf in sorted(enabled.glob("*.conf")):
            match = re.search(r"load_module\s+(\S*ngx_rtmp_module\.so)\s*;", conf.read_text())
            if match:
                path = match[1] if match[1].startswith("/") else f"/usr/share/nginx/{match[1]}"
                if os.path.exists(path):
                    return path
    return None


def missing_media_tools() -> list[str]:
    """What the media path needs and this machine lacks (empty when nginx-rtmp and ffmpeg are here)."""
    missing = []
    if shutil.which("nginx") is None:
        missing.append("nginx")
    elif find_rtmp_module() is None:
        missing.append("the nginx RTMP module (libnginx-mod-rtmp)")
    for tool in ("ffmpeg", "ffprobe"):
        if shutil.which(tool) is None:
            missing.append(tool)
    return missing


@dataclass(frozen=True)
class Transcoding:
    """What the per-stream transcoder is told (settings `media_ladder`, `thumbnail_interval_s`,
    `health_sample_s`), as its command line: nginx starts it with an empty environment."""

    ladder: str = ladder.PRODUCTION_LADDER
    thumbnail_every_s: float = 10
    sample_s: float = 5
    ffmpeg: str = "ffmpeg"
    ffprobe: str = "ffprobe"

    def argv(
        self,
        *,
        layout: MediaLayout,
        api_url: str,
        stat_url: str,
        log: Path,
        hls_fragment_s: int,
        list_size: int,
        rtmp_app: str,
    ) -> list[str]:
        ladder.parse_ladder(self.ladder)  # a bad ladder fails here, at start, not in every stream
        tools = [shutil.which(self.ffmpeg) or self.ffmpeg, shutil.which(self.ffprobe) or self.ffprobe]
        values = {
            "--out": layout.hls,
            "--plans": layout.plans,
            "--ladder": self.ladder,
            "--hls-time": hls_fragment_s,
            "--list-size": list_size,
            "--thumbnail-every": f"{self.thumbnail_every_s:g}",
            "--sample-s": f"{self.sample_s:g}",
            "--health-url": f"{api_url}/v1/hooks/media/health",
            "--stat-url": stat_url,
            "--ingest-app": rtmp_app,
            "--ffmpeg": tools[0],
            "--ffprobe": tools[1],
            "--log": log,
        }
        for value in values.values():
            if re.search(r"[\s;'\"{}$]", str(value)):
                raise ValueError(
                    f"{value!r} cannot go on nginx's exec line (spaces, quotes, ';', '$', braces)"
                )
        return [f"{flag} {value}" for flag, value in values.items()]


@dataclass(frozen=True)
class MediaLayout:
    """Where nginx writes and serves media; the API reads the same directories."""

    root: Path

    @property
    def hls(self) -> Path:
        return self.root / "hls"

    @property
    def incoming(self) -> Path:
        return self.root / "incoming"  # raw recordings while nginx writes them (never served)

    @property
    def plans(self) -> Path:
        return self.root / "plans"  # {streamId}.json: what the API tells the transcoder (quality)

    @property
    def recordings(self) -> Path:
        return self.root / "recordings"  # processed replays and thumbnails, served signed

    def create(self) -> None:
        for path in (self.hls, self.incoming, self.recordings, self.plans):
            path.mkdir(parents=True, exist_ok=True)


def render_config(
    *,
    prefix: Path,
    layout: MediaLayout,
    api_url: str,
    rtmp_port: int,
    http_port: int,
    secret: str,
    hls_base_url: str,
    recordings_base_url: str,
    rtmp_app: str = "live",
    host: str = "127.0.0.1",
    hls_fragment_s: int = 2,
    hls_playlist_length_s: int = 10,
    transcoding: Transcoding | None = None,
    control_clients: tuple[str, ...] = ("127.0.0.1",),
) -> str:
    """The nginx config text for these ports and paths. `control_clients`: the addresses (or CIDR
    ranges) allowed to start recordings: the API's; local in the dev stack."""
    if not re.fullmatch(r"[A-Za-z0-9_\-.~+/=]{16,200}", secret):
        raise ValueError("the media link secret must be 16-200 URL-safe characters (nginx's config holds it)")
    for client in control_clients:
        if not re.fullmatch(r"[0-9A-Fa-f.:]{2,39}(/[0-9]{1,3})?", client):
            raise ValueError(f"{client!r} is not an IP address or CIDR range")
    module = find_rtmp_module()
    if module is None:
        raise RuntimeError(f"the nginx RTMP module was not found; {INSTALL_HINT}")
    # nginx drops a root master's workers to `nobody`, which could not write the media directories
    user_line = f"user {pwd.getpwuid(os.geteuid()).pw_name};" if os.geteuid() == 0 else ""
    values = {
        "prefix": str(prefix),
        "conf": str(prefix / "nginx.conf"),
        "rtmp_module": module,
        "user_line": user_line,
        "log_dir": str(prefix / "logs"),
        "rtmp_listen": f"{host}:{rtmp_port}",
        "rtmp_port": str(rtmp_port),
        "rtmp_app": rtmp_app,
        "api_url": api_url.rstrip("/"),
        "incoming_dir": str(layout.incoming),
        "hls_dir": str(layout.hls),
        "recordings_dir": str(layout.recordings),
        "hls_fragment": f"{hls_fragment_s}s",
        "hls_playlist_length": f"{hls_playlist_length_s}s",
        "http_listen": f"{host}:{http_port}",
        "hls_prefix": urlsplit(hls_base_url.rstrip("/")).path,
        "recordings_prefix": urlsplit(recordings_base_url.rstrip("/")).path,
        "secret": secret,
        "control_allow": " ".join(f"allow {client};" for client in control_clients),
    }
    values["transcoder"] = f"{sys.executable} -m spaktok.infra.transcoder"
    values["transcoder_args"] = " ".join(
        (transcoding or Transcoding()).argv(
            layout=layout,
            api_url=api_url.rstrip("/"),
            stat_url=f"http://{host}:{http_port}/stat",
            log=prefix / "logs" / "transcoder.log",
            hls_fragment_s=hls_fragment_s,
            list_size=max(3, hls_playlist_length_s // max(1, hls_fragment_s)),
            rtmp_app=rtmp_app,
        )
    )
    text = re.sub(r"\{\{([a-z_]+)\}\}", lambda m: values[m[1]], TEMPLATE.read_text())
    return text


def write_config(prefix: Path, text: str) -> Path:
    """Into the private prefix, readable by the owner only (it holds the link secret)."""
    for sub in ("logs", "tmp"):
        (prefix / sub).mkdir(parents=True, exist_ok=True)
    conf = prefix / "nginx.conf"
    conf.touch(mode=0o600, exist_ok=True)
    conf.write_text(text)
    return conf


def nginx_argv(prefix: Path, conf: Path) -> list[str]:
    return [shutil.which("nginx") or "nginx", "-p", str(prefix), "-c", str(conf), "-g", "daemon off;"]
