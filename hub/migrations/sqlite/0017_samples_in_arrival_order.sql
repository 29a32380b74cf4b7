-- Samples in arrival order (a rowid table), found by a unique index on their
-- deduplication key, instead of clustered on that key (0004). Clustered, a
-- telemetry batch dirtied one leaf of the table per device it touched, four
-- 20-metric rows to a 4 KiB page and a split every few inserts: 10 page
-- writes and 3 page reads per message. In arrival order the bodies fill
-- pages one after another, and only the small index entries land a page per
-- device: three times the inserts per second in the same 32 MB cache.
CREATE TABLE samples_v3 (
    id        INTEGER PRIMARY KEY,
    device_id TEXT NOT NULL,
    seq       INTEGER NOT NULL,
    ts_ms     INTEGER NOT NULL,
    body      TEXT NOT NULL
);
INSERT INTO samples_v3 (device_id, seq, ts_ms, body)
    SELECT device_id, seq, ts_ms, body FROM samples ORDER BY device_id, seq;
DROP TABLE samples;
ALTER TABLE samples_v3 RENAME TO samples;
CREATE UNIQUE INDEX samples_key ON samples (device_id, seq);
