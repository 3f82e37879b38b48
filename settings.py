"""One settings object for every process, read from `SPAKTOK_*` environment variables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

import limits
from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_SECRET = "dev-only-secret-change-me-0123456789abcdef"


class Settings(BaseSettings):
    """Connection targets, secrets and tunables; placeholder secrets are refused outside dev."""

    model_config = SettingsConfigDict(env_prefix="SPAKTOK_", extra="ignore")

    env: Literal["dev", "test", "prod"] = "dev"
    data_dir: Path = Path(".spaktok")

    # infrastructure
    broker: str = "127.0.0.1:9092"
    postgres_dsn: str = "postgresql+psycopg://postgres@127.0.0.1:5432/spaktok"
    clickhouse_dsn: str = "chdb:///.spaktok/clickhouse"
    # with chDB (one process may open it) and several API processes: the private URL of the API that
    # holds it; this process then forwards its ClickHouse routes there (docs/operations.md). Empty:
    # this process opens the ClickHouse DSN itself
    clickhouse_host_url: str = ""
    partitions: int = Field(4, ge=1, le=256)
    # what `spaktok topics apply` (and any process creating a missing topic) asks of the broker:
    # production runs 3 brokers with replication 3 and min.insync.replicas 2, so with acks=all a write
    # survives the loss of one broker (docs/deploy.md); the single dev broker takes 1 and no minimum
    topic_replication: int = Field(1, ge=1, le=16)
    min_insync_replicas: int | None = Field(None, ge=1, le=16)  # unset: the broker's default
    kafka_session_timeout_ms: int = 6000
    kafka_heartbeat_interval_ms: int = 1000

    # auth
    jwt_algorithm: Literal["HS256", "RS256"] = "HS256"
    jwt_secret: str = DEV_SECRET
    jwt_public_key: str | None = None  # PEM, for RS256
    jwt_private_key: str | None = None  # PEM, for RS256 token minting (dev/CLI only)
    jwt_jwks_url: str | None = None
    jwt_audience: str | None = None
    jwt_issuer: str = "spaktok"  # tokens whose `iss` differs are refused
    jwt_ttl_seconds: int = 7 * 24 * 3600
    # the `kid` header tokens must carry (HS256 secret / PEM key); unset: tokens with a `kid` are refused.
    # With a JWKS URL the key set names the kids.
    jwt_key_id: str | None = None
    jwt_leeway_s: int = Field(30, ge=0, le=300)  # issuer clock ahead of ours: allowed on nbf and iat

    # limits (docs/security.md "Limits"): `limits` rate strings ("120/10 seconds"), per token `sub`,
    # per client address when the caller has no valid token
    rate_limits_enabled: bool = True
    # where counters live: memory:// (one process) or e.g. async+redis://host:6379 shared by several
    rate_limit_storage_uri: str = "memory://"
    rate_limit_strategy: Literal["sliding-window-counter", "fixed-window", "moving-window"] = (
        "sliding-window-counter"
    )
    rate_limit_default: str = "120/10 seconds"  # every mutating request (POST/PUT/PATCH/DELETE)
    rate_limit_anonymous: str = "600/10 seconds"  # the same, per address, for callers without a valid token
    rate_limit_like_taps: str = "1000/10 seconds"  # likes per user per stream, counted by `count`
    rate_limit_reports: str = "5/minute"
    rate_limit_follows: str = "30/minute"  # follow and unfollow together
    rate_limit_purchases: str = "300/minute"  # coin purchases (admin / payment provider)
    rate_limit_payouts: str = "10/minute"  # payout requests and settlements
    rate_limit_media_hooks: str = "1000/10 seconds"  # nginx-rtmp hooks, per media-server address
    idempotency_key_ttl_s: int = Field(24 * 3600, ge=60)  # a key binds its first body this long

    # media (docs/media.md): nginx-rtmp ingest, signed HLS playback and replays
    stream_key_secret: str = DEV_SECRET
    rtmp_ingest_url: str = "rtmp://127.0.0.1:1935/live"
    hls_base_url: str = "http://127.0.0.1:8080/hls"
    recordings_base_url: str = "http://127.0.0.1:8080/recordings"
    # nginx secure_link secret; it is written into nginx's config, so only URL-safe characters
    media_link_secret: str = Field(DEV_SECRET, pattern=r"^[A-Za-z0-9_\-.~+/=]{16,200}$")
    # a viewer's signed playlist URL lives this long; the heartbeat's answer carries a fresh one, so a
    # viewer who loses the right to watch (ban, privacy, suspension) loses playback within it
    playback_url_ttl_s: int = Field(600, ge=10, le=86_400)
    replay_url_ttl_s: int = Field(3600, ge=10)
    media_dir: Path | None = None  # HLS, incoming and processed recordings; default <data_dir>/media
    media_control_url: str | None = None  # nginx-rtmp's control endpoint, to start recordings
    media_hook_clients: list[str] = ["127.0.0.1", "::1"]  # who may call the media-server hooks
    reconnect_grace_s: float = Field(60.0, ge=0)  # a stream whose ingest stopped ends after this
    ingest_check_interval_s: float = Field(1.0, gt=0)  # how often the worker looks for lost ingest
    recording_retention_days: int = Field(30, ge=7, le=30)  # spec §4.3: delete after 7-30 days
    ffmpeg: str = "ffmpeg"
    ffprobe: str = "ffprobe"
    # the transcoder nginx starts per stream (infra/transcoder.py): renditions, thumbnails, health
    media_ladder: str = "1080p,720p,480p,360p"  # the dev stack uses "source,480p,360p"
    thumbnail_interval_s: float = Field(10.0, ge=1, le=300)
    health_sample_s: float = Field(5.0, ge=0.5, le=300)

    # API behaviour
    command_timeout_s: float = 2.0
    # a partition's commands travel as one bundle record per this window when busy; a command for
    # a partition quiet for this long goes at once (api/bus.py CommandBundler)
    command_bundle_window_ms: int = Field(20, ge=0, le=1000)
    edge_batch_window_ms: int = 50
    edge_batch_max: int = 500
    # a stream's joins travel as one `JoinViewers` per this window when busy; a join for a stream
    # quiet for this long goes at once (api/batching.py). 0: each join travels alone (`JoinStream`),
    # as joins sent with an Idempotency-Key always do
    join_batch_window_ms: int = Field(10, ge=0, le=1000)

    # realtime feed (api/live.py)
    live_tick_ms: int = Field(250, ge=10, le=5000)  # a client gets at most one message per this
    live_likes_interval_ms: int = Field(1000, ge=10)  # likes summed over this window
    live_viewer_count_interval_ms: int = Field(5000, ge=10)  # viewer count at most this often
    live_queue_frames: int = Field(240, ge=2)  # unsent frames per client before it counts as too slow

    # reports (spec §8.2): distinct reporters within the window that flag, then suspend a stream
    report_flag_at: int = Field(3, ge=1)
    report_suspend_at: int = Field(10, ge=1)
    report_window_s: int = Field(600, ge=1)

    # money (spec §6): what a coin is worth, combos, payouts
    coin_value_usd: str = Field("0.01", pattern=r"^\d+(\.\d{1,6})?$")
    gift_catalog_path: Path | None = None  # default: schemas/gift_catalog.json
    gift_combo_window_ms: int = Field(5000, ge=0, le=60_000)  # same gift again within this: one combo
    payout_minimum_usd: str = Field("10.00", pattern=r"^\d+(\.\d{2})?$")

    # PK battles (spec §2.9, §3.5)
    pk_invite_ttl_s: int = Field(60, ge=1, le=3600)  # an unanswered invitation expires after this
    pk_min_duration_s: int = Field(30, ge=1)
    pk_max_duration_s: int = Field(3600, ge=1)
    pk_default_duration_s: int = Field(300, ge=1)
    pk_winner_bonus_coins: int = Field(100, ge=0)  # credited to the winner's earnings; none on a tie
    battle_timer_interval_s: float = Field(1.0, gt=0)  # how often the worker looks for battles due

    # domain rules
    max_guests: int = Field(8, ge=1, le=20)  # multi-guest: guests plus open invitations per stream
    # the permission to go live (spec §3.1, docs/security.md "Going live"): the youngest age the
    # token's `birthYear` allows must reach this (no birth year: refused); 0 = no age rule
    streaming_min_age: int = Field(0, ge=0, le=99)
    ban_delete_comments_window_s: int = Field(300, ge=0, le=24 * 3600)  # a ban hides this much of their chat
    viewer_timeout_s: int = Field(120, ge=10)  # a viewer silent this long is dropped (spec §3.2)
    viewer_sweep_interval_s: float = Field(60.0, gt=0)  # how often the worker looks for them
    # how often a hot stream's shards hand the likes they counted since to the stream: its cost per
    # second is then K folds per interval at most, whatever the traffic (commands/stream_shards.py)
    shard_fold_interval_s: float = Field(0.25, gt=0)
    # a live stream whose broadcaster's app sent no heartbeat for this long is ended; 0 = never
    broadcaster_grace_s: int = Field(300, ge=0)
    analytics_snapshot_s: float = Field(300.0, gt=0)  # the spec's 5-minute analytics snapshots
    # reminder holders (and followers, if asked) are reminded this long before a scheduled stream; 0 = no
    schedule_reminder_lead_s: int = Field(15 * 60, ge=0, le=7 * 86_400)
    comment_max_length: int = 500
    comment_min_interval_ms: int = Field(2000, ge=0, le=300_000)  # = COMMENT_MEMORY_MS
    like_batch_max: int = 1000
    # likes of a new stream counted by this many shards in parallel (commands/stream_shards.py,
    # docs/decisions.md "Hot-stream shards"); 0: by the stream itself, as before. Fixed per stream.
    stream_like_shards: int = Field(0, ge=0, le=64)

    # push notifications (docs/notifications.md): the notifier in the projector process sends every
    # notice to the recipients' devices through this provider; fcm/apns refuse to start without
    # their credentials; dev writes what it would send to <data dir>/notifications/sent.jsonl
    # (fcm,apns: both, each device to its platform's; a provider is given only its platform's devices)
    notify_provider: Literal["dev", "fcm", "apns", "fcm,apns"] = "dev"
    notify_fcm_project_id: str | None = None
    notify_fcm_service_account_file: Path | None = None  # a service account's JSON key
    notify_apns_team_id: str | None = None
    notify_apns_key_id: str | None = None
    notify_apns_key_file: Path | None = None  # the .p8 signing key
    notify_apns_topic: str | None = None  # the app's bundle id
    notify_apns_sandbox: bool = False  # api.sandbox.push.apple.com (development builds)
    notify_send_timeout_s: float = Field(10.0, gt=0, le=120)
    notify_send_attempts: int = Field(3, ge=1, le=10)  # a failed push is tried again, pausing 0.5 s, 1 s, …
    notify_max_devices: int = Field(20, ge=1, le=1000)  # push tokens per user

    # worker
    worker_web_port: int | None = None  # Faust's web server is off unless a port is given
    # which of several worker processes on one host this is (issue #20): its own Faust data folder
    worker_index: int = Field(0, ge=0, le=1023)
    outcome_memory: int = 256  # processed command outcomes remembered per aggregate
    worker_batch_size: int = 1000  # commands decided per batch (one store per aggregate per batch)
    worker_batch_wait_ms: int = 5  # how long a batch waits to fill before it is decided anyway

    # consumers: how long a fetch may wait at the broker for records. The dev broker answers a fetch
    # only when this runs out and charges per partition fetched, so short waits are latency bought
    # with broker CPU (docs/decisions.md "Fetch waits"): short where a caller waits, longer elsewhere
    # producers: how long records wait to travel together. The dev broker costs ~0.6 ms of CPU per
    # produce request and ~3 µs per record in it, so a few ms of linger is worth much
    worker_linger_ms: int = Field(5, ge=0, le=1000)
    api_linger_ms: int = Field(5, ge=0, le=1000)
    worker_fetch_wait_ms: int = Field(20, ge=1, le=1000)  # commands (each saga hop waits for one)
    outcome_fetch_wait_ms: int = Field(10, ge=1, le=1000)  # the API's answers to waiting callers
    feed_fetch_wait_ms: int = Field(50, ge=1, le=1000)  # the live feed (frames go out per tick anyway)
    projector_fetch_wait_ms: int = Field(50, ge=1, le=1000)  # read models
    projector_linger_ms: int = Field(50, ge=0, le=60_000)  # read models: a batch per 50 ms at most
    clickhouse_linger_ms: int = Field(500, ge=0, le=60_000)  # analytics: few big inserts, not many small
    # analysts' SQL (docs/analytics.md "Analysts' SQL"): the most a request may ask for
    sql_max_seconds: float = Field(10.0, gt=0, le=3600)
    sql_max_rows: int = Field(100_000, ge=1, le=10_000_000)
    sql_max_memory_bytes: int = Field(1_000_000_000, ge=10_000_000)  # chDB runs inside the API

    # webhooks (docs/webhooks.md): a failed delivery is retried after backoff_s * 2^(attempt-1), at
    # most backoff_max_s; a subscription whose deliveries failed `disable_after` times in a row is
    # disabled. Tests shorten the backoff (SPAKTOK_WEBHOOK_BACKOFF_S=0.5)
    webhook_backoff_s: float = Field(5.0, gt=0, le=3600)
    webhook_backoff_max_s: float = Field(3600.0, gt=0)
    webhook_disable_after: int = Field(10, ge=1, le=1000)
    webhook_timeout_s: float = Field(10.0, gt=0, le=120)  # one request, connect to last byte
    webhook_concurrency: int = Field(32, ge=1, le=1024)  # requests in flight per worker process
    webhook_poll_s: float = Field(0.5, gt=0, le=60)  # due retries are looked for this often
    # receivers on loopback/private/link-local addresses: unset = allowed in dev and test (the tests'
    # receivers listen on 127.0.0.1), refused in prod (docs/security.md "Webhooks")
    webhook_allow_private: bool | None = None
    webhook_max_per_owner: int = Field(20, ge=1, le=1000)

    @field_validator(
        "rate_limit_default",
        "rate_limit_anonymous",
        "rate_limit_like_taps",
        "rate_limit_reports",
        "rate_limit_follows",
        "rate_limit_purchases",
        "rate_limit_payouts",
        "rate_limit_media_hooks",
    )
    @classmethod
    def _rate_string(cls, value: str) -> str:
        """A typo in a limit fails at start-up, not at the first request."""
        limits.parse(value)
        return value

    @model_validator(mode="after")
    def _insync_within_replication(self) -> Settings:
        """More in-sync replicas than replicas would refuse every acks=all write."""
        if self.min_insync_replicas is not None and self.min_insync_replicas > self.topic_replication:
            raise ValueError(
                f"SPAKTOK_MIN_INSYNC_REPLICAS ({self.min_insync_replicas}) cannot exceed "
                f"SPAKTOK_TOPIC_REPLICATION ({self.topic_replication}): no acks=all write could succeed"
            )
        return self

    @model_validator(mode="after")
    def _refuse_placeholder_secrets(self) -> Settings:
        if self.env == "prod" and DEV_SECRET in (
            self.jwt_secret,
            self.stream_key_secret,
            self.media_link_secret,
        ):
            raise ValueError(
                "SPAKTOK_JWT_SECRET, SPAKTOK_STREAM_KEY_SECRET and SPAKTOK_MEDIA_LINK_SECRET must be set "
                "to real secrets when SPAKTOK_ENV=prod"
            )
        return self

    @property
    def media_root(self) -> Path:
        return (self.media_dir or self.data_dir / "media").resolve()

    @property
    def is_embedded_clickhouse(self) -> bool:
        return self.clickhouse_dsn.startswith("chdb:")

    @property
    def webhooks_may_reach_private(self) -> bool:
        """Webhook URLs on private addresses: as configured, else only outside production."""
        return self.env != "prod" if self.webhook_allow_private is None else self.webhook_allow_private


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
