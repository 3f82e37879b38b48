"""The media container's entrypoint: render nginx-rtmp's config from the SPAKTOK_* settings the API
also reads (link secret, HLS and recordings URLs, media dir, ladder), then become nginx.

The same renderer as the dev stack (`spaktok.infra.nginx`), so signed URLs the API issues are the ones
nginx checks. Listens on all interfaces (RTMP 1935, HTTP 8080); the API reaches it on the compose
network. Not SPAKTOK_ settings, because only this container reads them:
  MEDIA_API_URL          where nginx sends its hooks (the load balancer: any API process answers)
  MEDIA_CONTROL_CLIENTS  who may start recordings on /control (the API processes' network), comma-separated
"""

from __future__ import annotations

import os
import sys

from spaktok.infra import nginx
from spaktok.settings import DEV_SECRET, Settings

RTMP_PORT, HTTP_PORT = 1935, 8080


def main() -> None:
    settings = Settings()
    if settings.media_link_secret == DEV_SECRET:
        sys.exit("SPAKTOK_MEDIA_LINK_SECRET is the dev placeholder: set the secret the API processes have")
    api_url = os.environ.get("MEDIA_API_URL")
    if not api_url:
        sys.exit("MEDIA_API_URL is not set: the URL nginx-rtmp calls its hooks on (e.g. http://lb)")
    clients = tuple(c.strip() for c in os.environ.get("MEDIA_CONTROL_CLIENTS", "127.0.0.1").split(",") if c)
    layout = nginx.MediaLayout(settings.media_root)
    layout.create()
    prefix = settings.data_dir.resolve() / "nginx"
    text = nginx.render_config(
        prefix=prefix,
        layout=layout,
        api_url=api_url,
        rtmp_port=RTMP_PORT,
        http_port=HTTP_PORT,
        secret=settings.media_link_secret,
        hls_base_url=settings.hls_base_url,
        recordings_base_url=settings.recordings_base_url,
        host="0.0.0.0",
        transcoding=nginx.Transcoding(
            ladder=settings.media_ladder,
            thumbnail_every_s=settings.thumbnail_interval_s,
            sample_s=settings.health_sample_s,
            ffmpeg=settings.ffmpeg,
            ffprobe=settings.ffprobe,
        ),
        control_clients=clients,
    )
    argv = nginx.nginx_argv(prefix, nginx.write_config(prefix, text))
    os.execvp(argv[0], argv)


if __name__ == "__main__":
    main()
