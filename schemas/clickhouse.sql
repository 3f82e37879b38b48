-- Every event, typed common columns + JSON payload. The Kafka position of each row is stored in the
-- row itself, so one INSERT carries both the data and its checkpoint (an insert is atomic per block).
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

-- Per-minute stream metrics, fed by the events insert.
CREATE TABLE IF NOT EXISTS stream_metrics_minute (
    stream_id       String,
    minute          DateTime('UTC'),
    joins           SimpleAggregateFunction(sum, UInt64),
    leaves          SimpleAggregateFunction(sum, UInt64),
    heartbeats      SimpleAggregateFunction(sum, UInt64),
    likes           SimpleAggregateFunction(sum, UInt64),
    comments        SimpleAggregateFunction(sum, UInt64),
    peak_viewers    SimpleAggregateFunction(max, UInt64)
) ENGINE = AggregatingMergeTree
ORDER BY (stream_id, minute);

CREATE MATERIALIZED VIEW IF NOT EXISTS stream_metrics_minute_mv TO stream_metrics_minute AS
SELECT
    aggregate_id AS stream_id,
    toStartOfMinute(occurred_at) AS minute,
    toUInt64(countIf(type = 'streams.ViewerJoined')) AS joins,
    toUInt64(countIf(type = 'streams.ViewerLeft')) AS leaves,
    toUInt64(sumIf(JSONExtractUInt(payload, 'count'), type = 'streams.HeartbeatsRecorded')) AS heartbeats,
    toUInt64(sumIf(JSONExtractUInt(payload, 'count'), type = 'streams.LikesRecorded')) AS likes,
    toUInt64(countIf(type = 'streams.CommentPosted')) AS comments,
    toUInt64(maxIf(JSONExtractUInt(payload, 'viewer_count'),
        type IN ('streams.ViewerJoined', 'streams.ViewerLeft', 'streams.HeartbeatsRecorded'))) AS peak_viewers
FROM events
WHERE aggregate_type = 'stream' AND sequence > 0
GROUP BY stream_id, minute;
