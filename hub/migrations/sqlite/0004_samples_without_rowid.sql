-- Samples clustered on their deduplication key: one B-tree per insert
-- instead of three (rowid table, primary-key index, time index). A device's
-- sequence numbers grow with its time, so "newest" is "highest seq".
CREATE TABLE samples_v2 (
    device_id TEXT NOT NULL,
    seq       INTEGER NOT NULL,
    ts_ms     INTEGER NOT NULL,
    body      TEXT NOT NULL,
    PRIMARY KEY (device_id, seq)
) WITHOUT ROWID;
INSERT INTO samples_v2 (device_id, seq, ts_ms, body) SELECT device_id, seq, ts_ms, body FROM samples;
DROP TABLE samples;
ALTER TABLE samples_v2 RENAME TO samples;
