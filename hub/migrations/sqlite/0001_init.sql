-- Wearline hub store, version 1.

CREATE TABLE devices (
    id            TEXT PRIMARY KEY,
    gateway       TEXT NOT NULL,
    profile       TEXT NOT NULL,
    first_seen_ms INTEGER NOT NULL,
    last_seen_ms  INTEGER NOT NULL,
    last_seq      INTEGER NOT NULL,
    samples       INTEGER NOT NULL DEFAULT 0,
    points        INTEGER NOT NULL DEFAULT 0
);

-- Recent history; (device_id, seq) is the deduplication key.
CREATE TABLE samples (
    device_id TEXT NOT NULL,
    seq       INTEGER NOT NULL,
    ts_ms     INTEGER NOT NULL,
    body      TEXT NOT NULL,
    PRIMARY KEY (device_id, seq)
);
CREATE INDEX samples_by_time ON samples (device_id, ts_ms);

-- The latest remaining-life prediction of each consumable.
CREATE TABLE consumables (
    device_id         TEXT NOT NULL,
    name              TEXT NOT NULL,
    signal            TEXT NOT NULL,
    threshold         REAL NOT NULL,
    lead_time_days    REAL NOT NULL,
    last_value        REAL,
    life_start_ms     INTEGER,
    as_of_ms          INTEGER,
    end_of_life_ms    INTEGER,
    eol_low_ms        INTEGER,
    eol_high_ms       INTEGER,
    slope_per_day     REAL,
    samples           REAL,
    model             TEXT NOT NULL,
    PRIMARY KEY (device_id, name)
);

CREATE TABLE work_orders (
    id              INTEGER PRIMARY KEY,
    device_id       TEXT NOT NULL,
    kind            TEXT NOT NULL,
    cause           TEXT NOT NULL,
    status          TEXT NOT NULL,
    priority        TEXT NOT NULL,
    title           TEXT NOT NULL,
    opened_at_ms    INTEGER NOT NULL,
    predicted_eol_ms INTEGER,
    lead_time_days  REAL,
    explanation     TEXT NOT NULL
);
-- At most one open work order per device and cause, whatever the number of hubs.
CREATE UNIQUE INDEX work_orders_one_open ON work_orders (device_id, cause)
    WHERE status IN ('open', 'assigned', 'in_progress', 'reopened');
