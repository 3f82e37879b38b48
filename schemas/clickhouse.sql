-- ClickHouse model (docs/analytics.md). Applied at every start-up by projections/clickhouse.py, on a
-- ClickHouse server and on chDB alike: every statement must be idempotent (IF [NOT] EXISTS).
-- No semicolons inside comments: the file is split on them.

-- Every event, typed common columns + JSON payload: the archived log that audits and analytics read.
-- The Kafka position of each row is stored in the row itself, so one INSERT carries both the data and
-- its checkpoint (an insert is atomic per block). ReplacingMergeTree drops a duplicate row (same
-- ordering key) only when parts merge, so every query on this table uses FINAL or counts event ids.
CREATE TABLE IF NOT EXISTS events (
    event_id        String,
    type            LowCardinality(String),
    schema_version  UInt16,
    aggregate_type  LowCardinality(String),
    aggregate_id    String,
    sequence        UInt64,
    occurred_at     DateTime64(3, 'UTC'),
    causation_id    String,
    correlation_id  String,
    actor_id        String,
    stream_id       String,
    user_id         String,
    payload         String,
    topic           LowCardinality(String),
    partition       UInt16,
    offset          UInt64,
    ingested_at     DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (aggregate_type, aggregate_id, sequence, event_id);

-- The record's bytes exactly as the log held them: `spaktok restore --from clickhouse` republishes
-- them byte for byte (docs/replay.md). Rows written before this column existed hold ''.
ALTER TABLE events ADD COLUMN IF NOT EXISTS envelope String DEFAULT '' CODEC(ZSTD(3));

-- Audits look across streams by event type, user and time: skip granules that cannot match.
ALTER TABLE events ADD INDEX IF NOT EXISTS events_type_idx type TYPE set(256) GRANULARITY 4;
ALTER TABLE events ADD INDEX IF NOT EXISTS events_user_idx user_id TYPE bloom_filter(0.01) GRANULARITY 4;
ALTER TABLE events ADD INDEX IF NOT EXISTS events_stream_idx stream_id TYPE bloom_filter(0.01) GRANULARITY 4;

-- The first per-minute table had no gift columns: replaced by stream_minute_metrics below.
DROP VIEW IF EXISTS stream_metrics_minute_mv;
DROP TABLE IF EXISTS stream_metrics_minute;

-- Per-minute stream metrics, fed by every insert into events. The sums count inserted rows: they are
-- exact because the projector never inserts an event twice (see docs/analytics.md, "Duplicates").
CREATE TABLE IF NOT EXISTS stream_minute_metrics (
    stream_id           String,
    minute              DateTime('UTC'),
    joins               SimpleAggregateFunction(sum, UInt64),
    leaves              SimpleAggregateFunction(sum, UInt64),
    heartbeats          SimpleAggregateFunction(sum, UInt64),
    likes               SimpleAggregateFunction(sum, UInt64),
    comments            SimpleAggregateFunction(sum, UInt64),
    gift_sends          SimpleAggregateFunction(sum, UInt64),
    gifts               SimpleAggregateFunction(sum, UInt64),
    revenue             SimpleAggregateFunction(sum, UInt64),
    broadcaster_revenue SimpleAggregateFunction(sum, UInt64),
    platform_revenue    SimpleAggregateFunction(sum, UInt64),
    peak_viewers        SimpleAggregateFunction(max, UInt64)
) ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(minute)
ORDER BY (stream_id, minute);

CREATE MATERIALIZED VIEW IF NOT EXISTS stream_minute_metrics_mv TO stream_minute_metrics AS
SELECT
    aggregate_id AS stream_id,
    toStartOfMinute(occurred_at) AS minute,
    toUInt64(countIf(type = 'streams.ViewerJoined')) AS joins,
    toUInt64(countIf(type = 'streams.ViewerLeft')) AS leaves,
    toUInt64(sumIf(JSONExtractUInt(payload, 'count'), type = 'streams.HeartbeatsRecorded')) AS heartbeats,
    toUInt64(sumIf(JSONExtractUInt(payload, 'count'),
        type IN ('streams.LikesRecorded', 'streams.ShardLikesFolded'))) AS likes,
    toUInt64(countIf(type = 'streams.CommentPosted')) AS comments,
    toUInt64(countIf(type = 'streams.GiftReceived')) AS gift_sends,
    toUInt64(sumIf(JSONExtractUInt(payload, 'count'), type = 'streams.GiftReceived')) AS gifts,
    toUInt64(sumIf(JSONExtractUInt(payload, 'coin_cost'), type = 'streams.GiftReceived')) AS revenue,
    toUInt64(sumIf(JSONExtractUInt(payload, 'broadcaster_share'), type = 'streams.GiftReceived'))
        AS broadcaster_revenue,
    toUInt64(sumIf(JSONExtractUInt(payload, 'platform_share'), type = 'streams.GiftReceived'))
        AS platform_revenue,
    toUInt64(maxIf(JSONExtractUInt(payload, 'viewer_count'),
        type IN ('streams.ViewerJoined', 'streams.ViewerLeft', 'streams.HeartbeatsRecorded',
                 'streams.StreamAnalyticsRecorded'))) AS peak_viewers
FROM events
WHERE aggregate_type = 'stream' AND sequence > 0
GROUP BY stream_id, minute;

-- Per viewer and stream: what watch time needs. Every column is a max, so it is exact even if a row
-- reached it twice. Watch time = completed_s (ViewerLeft.watch_time sums every finished visit) plus
-- a running visit, from last_joined to last_seen, when last_joined > last_left.
CREATE TABLE IF NOT EXISTS viewer_watch_time (
    stream_id    String,
    user_id      String,
    completed_s  SimpleAggregateFunction(max, UInt64),
    last_joined  SimpleAggregateFunction(max, DateTime64(3, 'UTC')),
    last_left    SimpleAggregateFunction(max, DateTime64(3, 'UTC')),
    last_seen    SimpleAggregateFunction(max, DateTime64(3, 'UTC'))
) ENGINE = AggregatingMergeTree
ORDER BY (stream_id, user_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS viewer_watch_time_visits_mv TO viewer_watch_time AS
SELECT
    aggregate_id AS stream_id,
    user_id,
    max(if(type = 'streams.ViewerLeft', JSONExtractUInt(payload, 'watch_time'), 0)) AS completed_s,
    max(if(type = 'streams.ViewerJoined', occurred_at, toDateTime64(0, 3, 'UTC'))) AS last_joined,
    max(if(type = 'streams.ViewerLeft', occurred_at, toDateTime64(0, 3, 'UTC'))) AS last_left,
    max(if(type = 'streams.ViewerJoined', occurred_at, toDateTime64(0, 3, 'UTC'))) AS last_seen
FROM events
WHERE aggregate_type = 'stream' AND sequence > 0 AND type IN ('streams.ViewerJoined', 'streams.ViewerLeft')
GROUP BY stream_id, user_id;

CREATE MATERIALIZED VIEW IF NOT EXISTS viewer_watch_time_beats_mv TO viewer_watch_time AS
SELECT
    aggregate_id AS stream_id,
    beat.1 AS user_id,
    toUInt64(0) AS completed_s,
    toDateTime64(0, 3, 'UTC') AS last_joined,
    toDateTime64(0, 3, 'UTC') AS last_left,
    max(parseDateTime64BestEffort(beat.2, 3, 'UTC')) AS last_seen
FROM events
ARRAY JOIN JSONExtractKeysAndValues(payload, 'beats', 'String') AS beat
WHERE aggregate_type = 'stream' AND sequence > 0 AND type = 'streams.HeartbeatsRecorded'
GROUP BY stream_id, user_id;

-- A hot stream's viewers heartbeat to its shards (commands/stream_shards.py): their beats count
-- for the stream's minutes and for their watch time, keyed by the stream the shard belongs to.
CREATE MATERIALIZED VIEW IF NOT EXISTS stream_minute_metrics_shard_beats_mv TO stream_minute_metrics AS
SELECT
    stream_id,
    toStartOfMinute(occurred_at) AS minute,
    toUInt64(0) AS joins,
    toUInt64(0) AS leaves,
    toUInt64(sum(JSONExtractUInt(payload, 'count'))) AS heartbeats,
    toUInt64(0) AS likes,
    toUInt64(0) AS comments,
    toUInt64(0) AS gift_sends,
    toUInt64(0) AS gifts,
    toUInt64(0) AS revenue,
    toUInt64(0) AS broadcaster_revenue,
    toUInt64(0) AS platform_revenue,
    toUInt64(0) AS peak_viewers
FROM events
WHERE aggregate_type = 'stream_shard' AND sequence > 0 AND type = 'stream_shards.ShardHeartbeatsRecorded'
GROUP BY stream_id, minute;

CREATE MATERIALIZED VIEW IF NOT EXISTS viewer_watch_time_shard_beats_mv TO viewer_watch_time AS
SELECT
    stream_id,
    beat.1 AS user_id,
    toUInt64(0) AS completed_s,
    toDateTime64(0, 3, 'UTC') AS last_joined,
    toDateTime64(0, 3, 'UTC') AS last_left,
    max(parseDateTime64BestEffort(beat.2, 3, 'UTC')) AS last_seen
FROM events
ARRAY JOIN JSONExtractKeysAndValues(payload, 'beats', 'String') AS beat
WHERE aggregate_type = 'stream_shard' AND sequence > 0 AND type = 'stream_shards.ShardHeartbeatsRecorded'
GROUP BY stream_id, user_id;

-- Stream health (issue #18, docs/media.md "Stream health"): every ingest sample of every stream, for
-- the platform's quality metrics (how many streams stall, drop frames, send too little). Fed by every
-- insert into events, like the tables above, so a sample is one row.
CREATE TABLE IF NOT EXISTS stream_health (
    stream_id            String,
    sampled_at           DateTime64(3, 'UTC'),
    window_s             Float32,
    bitrate_kbps         UInt32,
    frame_rate           Nullable(Float32),
    width                Nullable(UInt16),
    height               Nullable(UInt16),
    keyframe_interval_s  Nullable(Float32),
    dropped_frames       UInt32,
    speed                Nullable(Float32),
    warnings             Array(LowCardinality(String))
) ENGINE = MergeTree
PARTITION BY toYYYYMM(sampled_at)
ORDER BY (stream_id, sampled_at);

CREATE MATERIALIZED VIEW IF NOT EXISTS stream_health_mv TO stream_health AS
SELECT
    aggregate_id AS stream_id,
    occurred_at AS sampled_at,
    JSONExtractFloat(payload, 'window_s') AS window_s,
    toUInt32(JSONExtractUInt(payload, 'bitrate_kbps')) AS bitrate_kbps,
    JSONExtract(payload, 'frame_rate', 'Nullable(Float32)') AS frame_rate,
    JSONExtract(payload, 'width', 'Nullable(UInt16)') AS width,
    JSONExtract(payload, 'height', 'Nullable(UInt16)') AS height,
    JSONExtract(payload, 'keyframe_interval_s', 'Nullable(Float32)') AS keyframe_interval_s,
    toUInt32(JSONExtractUInt(payload, 'dropped_frames')) AS dropped_frames,
    JSONExtract(payload, 'speed', 'Nullable(Float32)') AS speed,
    JSONExtract(payload, 'warnings', 'Array(String)') AS warnings
FROM events
WHERE aggregate_type = 'stream' AND type = 'streams.IngestHealthSampled';
