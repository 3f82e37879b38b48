-- Read models of the spec's collections (§2.1-2.4) and the projector bookkeeping.
-- Applied idempotently at start-up; the log is the source of truth, these tables can be rebuilt.

CREATE TABLE IF NOT EXISTS live_streams (          -- spec: liveStreams
    stream_id          text PRIMARY KEY,
    user_id            text NOT NULL,
    username           text NOT NULL,
    user_profile_image text,
    title              text NOT NULL,
    category           text NOT NULL,
    tags               text[] NOT NULL DEFAULT '{}',
    language           text NOT NULL,
    privacy            text NOT NULL,
    status             text NOT NULL,
    stream_url         text NOT NULL,
    playback_url       text NOT NULL,
    thumbnail_url      text,
    is_recorded        boolean NOT NULL,
    recording_url      text,
    is_premium         boolean NOT NULL,
    is_age_restricted  boolean NOT NULL,
    allow_comments     boolean NOT NULL,
    allow_gifts        boolean NOT NULL,
    quality            text NOT NULL,
    bitrate            integer,
    location           jsonb,
    schedule_id        text,
    viewer_count       integer NOT NULL DEFAULT 0,
    peak_viewer_count  integer NOT NULL DEFAULT 0,
    total_views        integer NOT NULL DEFAULT 0,
    likes              bigint NOT NULL DEFAULT 0,
    comments           bigint NOT NULL DEFAULT 0,
    gifts              bigint NOT NULL DEFAULT 0,
    gift_revenue       bigint NOT NULL DEFAULT 0,
    duration           integer,
    moderation_status  text NOT NULL DEFAULT 'active',
    started_at         timestamptz,
    ended_at           timestamptz,
    created_at         timestamptz NOT NULL,
    last_updated       timestamptz NOT NULL
);
ALTER TABLE live_streams ADD COLUMN IF NOT EXISTS slow_mode_seconds integer NOT NULL DEFAULT 0;
ALTER TABLE live_streams ADD COLUMN IF NOT EXISTS moderators text[] NOT NULL DEFAULT '{}';
ALTER TABLE live_streams ADD COLUMN IF NOT EXISTS banned_users text[] NOT NULL DEFAULT '{}';
-- guests join with the multi-guest feature (issue #5); the field exists so the document is complete
ALTER TABLE live_streams ADD COLUMN IF NOT EXISTS guest_users text[] NOT NULL DEFAULT '{}';
-- PK battles (issue #5): the battle the stream is linked to, its opponent and its side's score
ALTER TABLE live_streams ADD COLUMN IF NOT EXISTS pk_battle_id text;
ALTER TABLE live_streams ADD COLUMN IF NOT EXISTS pk_opponent_id text;
ALTER TABLE live_streams ADD COLUMN IF NOT EXISTS pk_score bigint NOT NULL DEFAULT 0;

CREATE INDEX IF NOT EXISTS live_streams_discovery ON live_streams (status, viewer_count DESC, stream_id);
CREATE INDEX IF NOT EXISTS live_streams_user ON live_streams (user_id, started_at DESC);

CREATE TABLE IF NOT EXISTS stream_viewers (        -- spec: streamViewers
    stream_id          text NOT NULL,
    user_id            text NOT NULL,
    username           text NOT NULL,
    user_profile_image text,
    joined_at          timestamptz NOT NULL,
    left_at            timestamptz,
    watch_time         integer NOT NULL DEFAULT 0,
    is_active          boolean NOT NULL,
    last_heartbeat     timestamptz NOT NULL,
    gifts_sent         integer NOT NULL DEFAULT 0,
    comments_posted    integer NOT NULL DEFAULT 0,
    PRIMARY KEY (stream_id, user_id)
);
CREATE INDEX IF NOT EXISTS stream_viewers_active ON stream_viewers (stream_id, is_active, user_id);

CREATE TABLE IF NOT EXISTS stream_comments (       -- spec: streamComments
    comment_id         text PRIMARY KEY,
    stream_id          text NOT NULL,
    user_id            text NOT NULL,
    username           text NOT NULL,
    user_profile_image text,
    text               text NOT NULL,
    type               text NOT NULL,
    gift_id            text,
    "timestamp"        timestamptz NOT NULL,
    sequence           bigint NOT NULL,
    is_pinned          boolean NOT NULL DEFAULT false,
    is_deleted         boolean NOT NULL DEFAULT false,
    deleted_by         text
);
CREATE INDEX IF NOT EXISTS stream_comments_page ON stream_comments (stream_id, sequence DESC);
-- issue #18: gifts and system messages in chat history (projections/chat_history.py); text
-- comments leave these NULL
ALTER TABLE stream_comments ADD COLUMN IF NOT EXISTS gift_name text;
ALTER TABLE stream_comments ADD COLUMN IF NOT EXISTS gift_count integer;
ALTER TABLE stream_comments ADD COLUMN IF NOT EXISTS coin_cost bigint;
ALTER TABLE stream_comments ADD COLUMN IF NOT EXISTS combo_count integer;
ALTER TABLE stream_comments ADD COLUMN IF NOT EXISTS system_kind text;  -- stream_started, stream_ended, user_banned
ALTER TABLE stream_comments ADD COLUMN IF NOT EXISTS subject_id text;   -- who a system message is about

CREATE TABLE IF NOT EXISTS stream_likes (          -- spec: streamLikes
    stream_id          text NOT NULL,
    user_id            text NOT NULL,
    like_count         bigint NOT NULL,
    "timestamp"        timestamptz NOT NULL,
    PRIMARY KEY (stream_id, user_id)
);

-- last applied offset per (projection, topic, partition), written in the same transaction as the rows
CREATE TABLE IF NOT EXISTS projection_checkpoints (
    projection         text NOT NULL,
    topic              text NOT NULL,
    partition          integer NOT NULL,
    "offset"           bigint NOT NULL,
    updated_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (projection, topic, partition)
);

-- running totals per projection, committed with the rows they count: progress for operators and
-- the write rate for bench/load.py
CREATE TABLE IF NOT EXISTS projection_progress (
    projection         text PRIMARY KEY,
    records            bigint NOT NULL,
    rows_written       bigint NOT NULL,
    updated_at         timestamptz NOT NULL DEFAULT now()
);

-- last applied sequence per aggregate: drops events re-emitted after a worker crash
CREATE TABLE IF NOT EXISTS projection_positions (
    projection         text NOT NULL,
    aggregate_id       text NOT NULL,
    sequence           bigint NOT NULL,
    PRIMARY KEY (projection, aggregate_id)
);

CREATE TABLE IF NOT EXISTS follows (               -- who follows which channel
    follower_id        text NOT NULL,
    followee_id        text NOT NULL,
    followed_at        timestamptz NOT NULL,
    PRIMARY KEY (follower_id, followee_id)
);
CREATE INDEX IF NOT EXISTS follows_followee ON follows (followee_id, followed_at DESC);

CREATE TABLE IF NOT EXISTS notifications (         -- the in-app inbox (GET /v1/notifications)
    recipient_id       text NOT NULL,
    notification_id    text NOT NULL,
    kind               text NOT NULL,
    channel_id         text NOT NULL,
    stream_id          text,
    schedule_id        text,
    title              text NOT NULL,
    actor_name         text NOT NULL,
    created_at         timestamptz NOT NULL,
    read_at            timestamptz,
    PRIMARY KEY (recipient_id, notification_id)
);
CREATE INDEX IF NOT EXISTS notifications_inbox ON notifications (recipient_id, created_at DESC, notification_id);

CREATE TABLE IF NOT EXISTS stream_schedules (      -- spec: streamSchedule
    schedule_id        text PRIMARY KEY,
    user_id            text NOT NULL,
    username           text NOT NULL,
    title              text NOT NULL,
    description        text NOT NULL DEFAULT '',
    thumbnail_url      text,
    scheduled_for      timestamptz NOT NULL,
    category           text NOT NULL,
    tags               text[] NOT NULL DEFAULT '{}',
    notify_followers   boolean NOT NULL,
    status             text NOT NULL,              -- scheduled, started, cancelled
    stream_id          text,
    reminders          integer NOT NULL DEFAULT 0,
    notified_at        timestamptz,                -- when the time came and reminders went out
    created_at         timestamptz NOT NULL,
    last_updated       timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS stream_schedules_user ON stream_schedules (user_id, scheduled_for);
-- issue #18: when the ahead-of-time reminder went out (schedule_reminder_lead_s before scheduled_for)
ALTER TABLE stream_schedules ADD COLUMN IF NOT EXISTS reminded_at timestamptz;

CREATE TABLE IF NOT EXISTS schedule_reminders (
    schedule_id        text NOT NULL,
    user_id            text NOT NULL,
    set_at             timestamptz NOT NULL,
    PRIMARY KEY (schedule_id, user_id)
);

CREATE TABLE IF NOT EXISTS stream_moderation_log (  -- spec: streamModerationLog
    event_id           text PRIMARY KEY,
    stream_id          text NOT NULL,
    moderator_id       text NOT NULL,
    role               text NOT NULL,               -- broadcaster, moderator, channel_moderator, platform
    action             text NOT NULL,               -- ban, unban, timeout, delete_comment
    target_user_id     text,
    target_comment_id  text,
    reason             text,
    duration           integer,                     -- seconds, for timeouts
    "timestamp"        timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS stream_moderation_log_stream ON stream_moderation_log (stream_id, "timestamp" DESC);
-- the logged event's sequence in its aggregate: one decision's rows share a timestamp (a suspension,
-- then the end it causes), so they are ordered by it (NULL in rows from before it existed)
ALTER TABLE stream_moderation_log ADD COLUMN IF NOT EXISTS sequence bigint;

-- money (spec §2.5, §6): every coin movement is an event; these tables are folds of them
CREATE TABLE IF NOT EXISTS wallets (
    user_id       text PRIMARY KEY,
    balance       bigint NOT NULL DEFAULT 0 CHECK (balance >= 0),
    purchased     bigint NOT NULL DEFAULT 0,
    spent         bigint NOT NULL DEFAULT 0,      -- debited for gifts
    refunded      bigint NOT NULL DEFAULT 0,      -- given back for gifts the stream refused
    updated_at    timestamptz NOT NULL
);

CREATE TABLE IF NOT EXISTS coin_transactions (   -- a wallet's history, one row per wallet event
    event_id      text PRIMARY KEY,
    user_id       text NOT NULL,
    kind          text NOT NULL,                  -- purchase | gift | refund
    coins         bigint NOT NULL,                -- signed: + credit, - debit
    balance       bigint NOT NULL,                -- after this movement
    payment_ref   text,
    gift_tx       text,
    stream_id     text,
    occurred_at   timestamptz NOT NULL,
    sequence      bigint NOT NULL
);
CREATE INDEX IF NOT EXISTS coin_transactions_user ON coin_transactions (user_id, sequence DESC);

CREATE TABLE IF NOT EXISTS stream_gifts (        -- spec: streamGifts
    gift_tx               text PRIMARY KEY,
    stream_id             text NOT NULL,
    gift_id               text NOT NULL,
    sender_id             text NOT NULL,
    sender_username       text NOT NULL,
    receiver_id           text NOT NULL,
    receiver_username     text NOT NULL,
    gift_name             text NOT NULL,
    gift_image_url        text NOT NULL,
    gift_animation_url    text NOT NULL,
    count                 integer NOT NULL,
    coin_cost             bigint NOT NULL,
    real_value_usd        numeric(14, 2) NOT NULL,
    broadcaster_share     bigint NOT NULL,
    platform_share        bigint NOT NULL,
    is_premium_broadcaster boolean NOT NULL,
    revenue_rule          text NOT NULL,
    "timestamp"           timestamptz NOT NULL,
    is_combo              boolean NOT NULL,
    combo_id              text NOT NULL,
    combo_count           integer NOT NULL,
    CHECK (broadcaster_share + platform_share = coin_cost)
);
CREATE INDEX IF NOT EXISTS stream_gifts_stream ON stream_gifts (stream_id, "timestamp");
CREATE INDEX IF NOT EXISTS stream_gifts_sender ON stream_gifts (sender_id, "timestamp");

CREATE TABLE IF NOT EXISTS stream_gifters (      -- the per-stream leaderboard
    stream_id     text NOT NULL,
    user_id       text NOT NULL,
    username      text NOT NULL,
    coins         bigint NOT NULL,
    gifts         bigint NOT NULL,
    last_gift_at  timestamptz NOT NULL,
    PRIMARY KEY (stream_id, user_id)
);
CREATE INDEX IF NOT EXISTS stream_gifters_rank ON stream_gifters (stream_id, coins DESC);

CREATE TABLE IF NOT EXISTS earnings (
    broadcaster_id text PRIMARY KEY,
    balance        bigint NOT NULL DEFAULT 0 CHECK (balance >= 0),   -- available for payouts
    reserved       bigint NOT NULL DEFAULT 0 CHECK (reserved >= 0),  -- requested, not settled
    total_earned   bigint NOT NULL DEFAULT 0,
    paid_out       bigint NOT NULL DEFAULT 0,
    updated_at     timestamptz NOT NULL
);

CREATE TABLE IF NOT EXISTS earnings_history (
    event_id       text PRIMARY KEY,
    broadcaster_id text NOT NULL,
    kind           text NOT NULL,                 -- gift | pk_bonus | payout_requested | payout_completed | payout_failed
    coins          bigint NOT NULL,               -- signed change of the available balance
    balance        bigint NOT NULL,
    stream_id      text,
    gift_tx        text,
    payout_id      text,
    occurred_at    timestamptz NOT NULL,
    sequence       bigint NOT NULL
);
CREATE INDEX IF NOT EXISTS earnings_history_owner ON earnings_history (broadcaster_id, sequence DESC);

CREATE TABLE IF NOT EXISTS payouts (
    payout_id      text PRIMARY KEY,
    broadcaster_id text NOT NULL,
    method         text NOT NULL,
    coins          bigint NOT NULL,
    amount_usd     numeric(14, 2) NOT NULL,
    status         text NOT NULL,                 -- pending | completed | failed
    provider_ref   text,
    failure_reason text,
    requested_at   timestamptz NOT NULL,
    settled_at     timestamptz
);
CREATE INDEX IF NOT EXISTS payouts_owner ON payouts (broadcaster_id, requested_at DESC);

CREATE TABLE IF NOT EXISTS pk_battles (             -- spec: pkBattles (§2.9)
    battle_id          text PRIMARY KEY,
    stream1_id         text NOT NULL,
    stream2_id         text NOT NULL,
    broadcaster1_id    text NOT NULL,
    broadcaster2_id    text NOT NULL,
    score1             bigint NOT NULL DEFAULT 0,
    score2             bigint NOT NULL DEFAULT 0,
    duration           integer NOT NULL,
    status             text NOT NULL,             -- invited, linking, active, closing, ended, declined, expired, cancelled
    winner_bonus       bigint NOT NULL,           -- offered; on the result, what the winner got
    invited_at         timestamptz NOT NULL,
    expires_at         timestamptz NOT NULL,
    started_at         timestamptz,
    ends_at            timestamptz,
    ended_at           timestamptz,
    end_reason         text,
    cancel_reason      text,
    winner_id          text,
    winner_stream_id   text,
    is_tie             boolean,
    last_updated       timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS pk_battles_stream1 ON pk_battles (stream1_id);
CREATE INDEX IF NOT EXISTS pk_battles_stream2 ON pk_battles (stream2_id);

CREATE TABLE IF NOT EXISTS pk_battle_gifts (        -- spec: pkBattles.gifts1 / gifts2
    battle_id          text NOT NULL,
    side               smallint NOT NULL,
    stream_id          text NOT NULL,
    stream_sequence    bigint NOT NULL,
    gift_tx            text NOT NULL,
    sender_id          text NOT NULL,
    coins              bigint NOT NULL,
    sent_at            timestamptz NOT NULL,
    PRIMARY KEY (battle_id, stream_id, stream_sequence)
);
-- media (issue #7, docs/media.md): key generation (never the key), ingest state, recordings
ALTER TABLE live_streams ADD COLUMN IF NOT EXISTS key_generation integer NOT NULL DEFAULT 1;
ALTER TABLE live_streams ADD COLUMN IF NOT EXISTS ingest_status text NOT NULL DEFAULT 'waiting';
ALTER TABLE live_streams ADD COLUMN IF NOT EXISTS ingest_changed_at timestamptz;

CREATE TABLE IF NOT EXISTS stream_recordings (
    recording_id       text PRIMARY KEY,
    stream_id          text NOT NULL,
    path               text NOT NULL,          -- relative to the recordings root
    thumbnail          text,
    duration           double precision NOT NULL,
    size_bytes         bigint NOT NULL,
    ready_at           timestamptz NOT NULL,
    deleted_at         timestamptz
);
CREATE INDEX IF NOT EXISTS stream_recordings_stream ON stream_recordings (stream_id, ready_at);

-- platform enforcement (issue #15, docs/security.md): account suspensions, one row per channel,
-- folded from channels.AccountSuspended / AccountReinstated; `until` NULL = until reinstated
CREATE TABLE IF NOT EXISTS account_suspensions (
    user_id            text PRIMARY KEY,
    reason             text NOT NULL,
    suspended_by       text NOT NULL,
    suspended_at       timestamptz NOT NULL,
    until              timestamptz,
    reinstated_at      timestamptz,
    reinstated_by      text
);
-- who may watch a private stream besides the broadcaster, its moderators, guests and platform staff
ALTER TABLE live_streams ADD COLUMN IF NOT EXISTS allowed_user_ids text[] NOT NULL DEFAULT '{}';
-- why it ended (StreamEnded.reason: ended_by_broadcaster, suspended, broadcaster_lost, ...)
ALTER TABLE live_streams ADD COLUMN IF NOT EXISTS end_reason text;

-- the platform's reports queue: one report per (stream, round); a resolution closes the round and
-- the next new reporter opens the next one (docs/security.md "Platform enforcement")
CREATE TABLE IF NOT EXISTS stream_reports (
    report_id          text PRIMARY KEY,            -- <stream id>-<round>
    stream_id          text NOT NULL,
    report_round       integer NOT NULL,
    status             text NOT NULL,               -- open | resolved
    reporters          integer NOT NULL DEFAULT 0,  -- distinct reporters
    first_reported_at  timestamptz NOT NULL,
    last_reported_at   timestamptz NOT NULL,
    action             text,                        -- dismiss | suspend-stream | suspend-user
    note               text,
    resolved_by        text,
    resolved_at        timestamptz
);
CREATE INDEX IF NOT EXISTS stream_reports_queue ON stream_reports (status, last_reported_at DESC, report_id);

CREATE TABLE IF NOT EXISTS stream_report_reporters (
    report_id          text NOT NULL,
    reporter_id        text NOT NULL,
    reason             text NOT NULL,               -- the reporter's latest reason
    reported_at        timestamptz NOT NULL,        -- their latest report within the round
    PRIMARY KEY (report_id, reporter_id)
);

-- channel moderators (issue #18, docs/api.md "Channels"): named by the broadcaster for every stream of
-- the channel; a stream keeps the set it started with, kept in step while it is live
ALTER TABLE live_streams ADD COLUMN IF NOT EXISTS channel_moderators text[] NOT NULL DEFAULT '{}';
CREATE TABLE IF NOT EXISTS channel_moderators (
    channel_id         text NOT NULL,
    moderator_id       text NOT NULL,
    added_at           timestamptz NOT NULL,
    PRIMARY KEY (channel_id, moderator_id)
);

-- Idempotency-Key bindings (api/idempotency.py): a key names one intent of one user; the first
-- request's fingerprint (method, path, canonical body) is kept, another body under it is refused.
-- API state, not a read model: the event log does not rebuild it, so it lives in a schema of its own
-- that `spaktok replay` (which swaps `public` for a rebuilt one) keeps. Expired rows are reused/purged.
CREATE SCHEMA IF NOT EXISTS api;
DO $$ BEGIN  -- it was in `public` before: moved once, with its rows
    IF to_regclass('public.idempotency_keys') IS NOT NULL AND to_regclass('api.idempotency_keys') IS NULL THEN
        ALTER TABLE public.idempotency_keys SET SCHEMA api;
    END IF;
END $$;
CREATE TABLE IF NOT EXISTS api.idempotency_keys (
    user_id      text NOT NULL,
    key          text NOT NULL,
    fingerprint  text NOT NULL,          -- sha256 hex
    method       text NOT NULL,
    path         text NOT NULL,
    created_at   timestamptz NOT NULL,
    PRIMARY KEY (user_id, key)
);
CREATE INDEX IF NOT EXISTS idempotency_keys_created ON api.idempotency_keys (created_at);

-- stream health (issue #18, docs/media.md "Stream health"): the latest sample per stream, folded from
-- streams.IngestHealthSampled (every sample is in ClickHouse's stream_health), and whether the
-- transcoder has written the live thumbnail (the API signs its URL per caller)
CREATE TABLE IF NOT EXISTS stream_health (
    stream_id          text PRIMARY KEY,
    sample             jsonb NOT NULL,
    sampled_at         timestamptz NOT NULL
);
ALTER TABLE live_streams ADD COLUMN IF NOT EXISTS live_thumbnail boolean NOT NULL DEFAULT false;

-- likes counted by this many shards (commands/stream_shards.py); 0: by the stream itself
ALTER TABLE live_streams ADD COLUMN IF NOT EXISTS like_shards integer NOT NULL DEFAULT 0;

-- Notifications delivered (issue #21, docs/notifications.md): devices, preferences, read marks and
-- the notifier's delivery records and offsets. State of the API and of the notifier, not read
-- models: the log does not rebuild them, so they live in schema `notify`, which `spaktok replay`
-- (it rebuilds `public` beside the live one and swaps them) neither compares nor replaces.
CREATE SCHEMA IF NOT EXISTS notify;
CREATE TABLE IF NOT EXISTS notify.devices (        -- POST /v1/devices: one row per push token
    device_id          text PRIMARY KEY,
    user_id            text NOT NULL,
    platform           text NOT NULL,            -- fcm | apns | dev
    token              text NOT NULL UNIQUE,     -- a token signed in as another user moves to them
    created_at         timestamptz NOT NULL,
    updated_at         timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS devices_user ON notify.devices (user_id);
CREATE TABLE IF NOT EXISTS notify.preferences (    -- /v1/me/notification-preferences
    user_id            text PRIMARY KEY,
    muted_channels     text[] NOT NULL DEFAULT '{}',
    muted_kinds        text[] NOT NULL DEFAULT '{}',   -- go-live | schedule | moderation | pk
    updated_at         timestamptz NOT NULL
);
CREATE TABLE IF NOT EXISTS notify.reads (          -- POST /v1/notifications/{id}/read, per reader
    user_id            text NOT NULL,
    notification_id    text NOT NULL,
    read_at            timestamptz NOT NULL,
    PRIMARY KEY (user_id, notification_id)
);
CREATE TABLE IF NOT EXISTS notify.deliveries (     -- one push per notice, recipient and device
    notification_id    text NOT NULL,
    recipient_id       text NOT NULL,
    device_id          text NOT NULL,
    platform           text NOT NULL,
    status             text NOT NULL,            -- sent | failed | invalid-token
    detail             text NOT NULL DEFAULT '',
    delivered_at       timestamptz NOT NULL,
    PRIMARY KEY (notification_id, recipient_id, device_id)
);
CREATE TABLE IF NOT EXISTS notify.checkpoints (    -- the notifier's last handled offset per partition
    topic              text NOT NULL,
    "partition"        integer NOT NULL,
    "offset"           bigint NOT NULL,
    PRIMARY KEY (topic, "partition")
);

-- Webhooks (docs/webhooks.md). Subscriptions, the delivery outbox and the attempt log are API and
-- deliverer state, not read models: they live in their own schema so that `spaktok replay`, which
-- swaps `public` for a rebuilt one, keeps them (and its equality check does not compare them).
CREATE SCHEMA IF NOT EXISTS webhooks;
CREATE TABLE IF NOT EXISTS webhooks.subscriptions (
    id                    text PRIMARY KEY,
    owner_id              text NOT NULL,
    scope                 text NOT NULL,                  -- 'streams': the owner's streams; 'app': all (admin)
    url                   text NOT NULL,
    secret                text NOT NULL,                  -- HMAC key; needed in clear to sign
    event_types           text[] NOT NULL,
    description           text NOT NULL DEFAULT '',
    status                text NOT NULL DEFAULT 'active', -- 'active' | 'disabled'
    disabled_reason       text,
    disabled_at           timestamptz,
    consecutive_failures  integer NOT NULL DEFAULT 0,
    last_error            text,
    last_success_at       timestamptz,
    created_at            timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS webhook_subscriptions_owner ON webhooks.subscriptions (owner_id, created_at);
-- who owns a stream, from its StreamStarted: which owner's subscriptions a stream event concerns
CREATE TABLE IF NOT EXISTS webhooks.stream_owners (
    stream_id             text PRIMARY KEY,
    owner_id              text NOT NULL
);
-- the outbox: one row per (subscription, event) to deliver, written with the outbox position
CREATE TABLE IF NOT EXISTS webhooks.deliveries (
    subscription_id       text NOT NULL REFERENCES webhooks.subscriptions (id) ON DELETE CASCADE,
    event_id              text NOT NULL,
    event_type            text NOT NULL,
    occurred_at           timestamptz NOT NULL,
    body                  text NOT NULL,                  -- the exact bytes every attempt sends
    state                 text NOT NULL DEFAULT 'pending', -- 'pending' | 'delivered'
    attempts              integer NOT NULL DEFAULT 0,
    next_attempt_at       timestamptz NOT NULL,
    lease_until           timestamptz,                    -- claimed by a deliverer until then
    created_at            timestamptz NOT NULL DEFAULT now(),
    delivered_at          timestamptz,
    PRIMARY KEY (subscription_id, event_id)
);
CREATE INDEX IF NOT EXISTS webhook_deliveries_due ON webhooks.deliveries (next_attempt_at)
    WHERE state = 'pending';
-- the delivery log: one row per attempt, written before the request is sent and completed after
CREATE TABLE IF NOT EXISTS webhooks.attempts (
    subscription_id       text NOT NULL,
    event_id              text NOT NULL,
    attempt               integer NOT NULL,
    outcome               text NOT NULL,                  -- 'sending' | 'delivered' | 'failed' | 'interrupted'
    status_code           integer,
    error                 text,
    duration_ms           integer,
    started_at            timestamptz NOT NULL,
    PRIMARY KEY (subscription_id, event_id, attempt),
    FOREIGN KEY (subscription_id, event_id)
        REFERENCES webhooks.deliveries (subscription_id, event_id) ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS webhook_attempts_recent ON webhooks.attempts (subscription_id, started_at DESC);
-- the outbox's position per partition, valid for the `public` schema it was written beside
-- (public_oid): a dev stack that empties its log drops and recreates `public`, a replay swaps it, and
-- either way the outbox then reads the log again from the start (its key makes that harmless)
CREATE TABLE IF NOT EXISTS webhooks.checkpoints (
    topic                 text NOT NULL,
    partition             integer NOT NULL,
    "offset"              bigint NOT NULL,
    public_oid            bigint NOT NULL,
    PRIMARY KEY (topic, partition)
);
