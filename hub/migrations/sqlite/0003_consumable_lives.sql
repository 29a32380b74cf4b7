-- Remaining life v2: every limit a profile declares (wear signal, rated
-- life, calendar), the tracker's state so a restart resumes each life where
-- it was, the model and data behind each prediction, and ended lives that
-- teach the fleet prior. Predictions are derived data: the table is rebuilt.
DROP TABLE consumables;
CREATE TABLE consumables (
    device_id         TEXT NOT NULL,
    name              TEXT NOT NULL,
    profile           TEXT NOT NULL,
    lead_time_days    REAL NOT NULL,
    life_start_ms     INTEGER NOT NULL,
    as_of_ms          INTEGER NOT NULL,
    samples           INTEGER NOT NULL,
    used              REAL NOT NULL,
    last_value        REAL,
    -- Latest prediction; NULL while nothing can be said yet.
    limit_kind        TEXT,
    remaining_usage   REAL,
    usage_per_day     REAL,
    end_of_life_ms    INTEGER,
    eol_low_ms        INTEGER,
    eol_high_ms       INTEGER,
    coverage          REAL,
    model             TEXT,
    -- JSON: the estimate with its basis, prior and covariates.
    explanation       TEXT NOT NULL DEFAULT '{}',
    -- JSON: the life tracker's state.
    state             TEXT NOT NULL,
    PRIMARY KEY (device_id, name)
);

-- Lives ended by a replacement; `life` is NULL when the part was replaced too
-- early to tell how long it would have lasted. `body` is the whole record.
CREATE TABLE consumable_lives (
    device_id   TEXT NOT NULL,
    name        TEXT NOT NULL,
    profile     TEXT NOT NULL,
    started_ms  INTEGER NOT NULL,
    ended_ms    INTEGER NOT NULL,
    life        REAL,
    used        REAL NOT NULL,
    body        TEXT NOT NULL,
    PRIMARY KEY (device_id, name, started_ms)
);
CREATE INDEX consumable_lives_by_kind ON consumable_lives (profile, name);
