-- Downsampled history: per device and metric, 1-minute and 1-hour buckets
-- (count, sum, min, max, and the last value with the time and sequence
-- number that make it the last). Keyed by device, then time, then metric:
-- a device's window is one range, and pruning by time is a range per device.
CREATE TABLE rollup_1m (
    device_id  TEXT NOT NULL,
    bucket_ms  BIGINT NOT NULL,
    metric     TEXT NOT NULL,
    n          BIGINT NOT NULL,
    sum_v      DOUBLE PRECISION NOT NULL,
    min_v      DOUBLE PRECISION NOT NULL,
    max_v      DOUBLE PRECISION NOT NULL,
    last_ts_ms BIGINT NOT NULL,
    last_seq   BIGINT NOT NULL,
    last_v     DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (device_id, bucket_ms, metric)
);
CREATE TABLE rollup_1h (
    device_id  TEXT NOT NULL,
    bucket_ms  BIGINT NOT NULL,
    metric     TEXT NOT NULL,
    n          BIGINT NOT NULL,
    sum_v      DOUBLE PRECISION NOT NULL,
    min_v      DOUBLE PRECISION NOT NULL,
    max_v      DOUBLE PRECISION NOT NULL,
    last_ts_ms BIGINT NOT NULL,
    last_seq   BIGINT NOT NULL,
    last_v     DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (device_id, bucket_ms, metric)
);

-- Samples stored but not yet rolled up: one row per telemetry transaction
-- and device shard, written in that transaction, deleted in the one that
-- adds its samples to the rollups. `keys` is JSON `[[device, [seq, …]], …]`.
-- A BIGSERIAL id is never reused.
CREATE TABLE rollup_pending (
    id        BIGSERIAL PRIMARY KEY,
    shard     BIGINT NOT NULL,
    min_ts_ms BIGINT NOT NULL,
    points    BIGINT NOT NULL,
    keys      TEXT NOT NULL
);
CREATE INDEX rollup_pending_by_shard ON rollup_pending (shard, id);

-- Highest sequence number pruned from raw samples: below it the hub can no
-- longer tell a duplicate from a new sample, and takes neither.
ALTER TABLE devices ADD COLUMN pruned_seq BIGINT NOT NULL DEFAULT -1;

-- The samples already stored are rolled up here, once.
INSERT INTO rollup_1m (device_id, bucket_ms, metric, n, sum_v, min_v, max_v, last_ts_ms, last_seq, last_v)
WITH p AS (
    SELECT s.device_id, s.ts_ms - (((s.ts_ms % 60000) + 60000) % 60000) AS bucket_ms, j.key AS metric,
           s.ts_ms, s.seq, j.value::double precision AS v
    FROM samples s, json_each_text(s.body::json) j
    WHERE json_typeof(s.body::json -> j.key) = 'number'
), r AS (
    SELECT p.*, ROW_NUMBER() OVER (PARTITION BY device_id, bucket_ms, metric ORDER BY ts_ms DESC, seq DESC) AS rn
    FROM p
)
SELECT device_id, bucket_ms, metric, COUNT(*), SUM(v), MIN(v), MAX(v),
       MAX(CASE WHEN rn = 1 THEN ts_ms END), MAX(CASE WHEN rn = 1 THEN seq END), MAX(CASE WHEN rn = 1 THEN v END)
FROM r GROUP BY device_id, bucket_ms, metric;

INSERT INTO rollup_1h (device_id, bucket_ms, metric, n, sum_v, min_v, max_v, last_ts_ms, last_seq, last_v)
WITH r AS (
    SELECT m.*, m.bucket_ms - (((m.bucket_ms % 3600000) + 3600000) % 3600000) AS hour_ms,
           ROW_NUMBER() OVER (
               PARTITION BY device_id, bucket_ms - (((bucket_ms % 3600000) + 3600000) % 3600000), metric
               ORDER BY last_ts_ms DESC, last_seq DESC) AS rn
    FROM rollup_1m m
)
SELECT device_id, hour_ms, metric, SUM(n), SUM(sum_v), MIN(min_v), MAX(max_v),
       MAX(CASE WHEN rn = 1 THEN last_ts_ms END), MAX(CASE WHEN rn = 1 THEN last_seq END),
       MAX(CASE WHEN rn = 1 THEN last_v END)
FROM r GROUP BY device_id, hour_ms, metric;
