-- Rollup watermarks: each device's samples up to `rolled_seq` are in the
-- rollups, except the late ones that `rollup_pending` lists; those above it
-- are not yet. A telemetry transaction then writes no bookkeeping for
-- samples that arrive in order. `rolled_points` counts the points no longer
-- waiting on the watermark (merged by it, or handed to a pending row), so
-- `points - rolled_points` is the device's merge backlog.
-- Everything stored so far is rolled up or pending.
ALTER TABLE devices ADD COLUMN rolled_seq BIGINT NOT NULL DEFAULT -1;
ALTER TABLE devices ADD COLUMN rolled_points BIGINT NOT NULL DEFAULT 0;
UPDATE devices SET rolled_seq = last_seq, rolled_points = points;
