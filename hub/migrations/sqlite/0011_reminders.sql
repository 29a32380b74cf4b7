-- Customer reminders: each customer's settings (channels, reminder points
-- in days of life left, quiet hours, opt-out) and every reminder queued,
-- with its delivery state. A reminder is unique per device, consumable,
-- life (its start), point and channel, so it is sent once whatever the
-- number of predictions, restarts or hubs.
CREATE TABLE reminder_settings (
    customer_id         INTEGER PRIMARY KEY REFERENCES customers (id),
    -- JSON array: `portal`, `webhook`.
    channels            TEXT NOT NULL,
    -- JSON array of days of life left.
    points              TEXT NOT NULL,
    quiet_start         INTEGER NOT NULL,
    quiet_end           INTEGER NOT NULL,
    utc_offset_minutes  INTEGER NOT NULL,
    opted_out           INTEGER NOT NULL,
    webhook_url         TEXT,
    webhook_secret      TEXT
);

CREATE TABLE reminders (
    id               INTEGER PRIMARY KEY,
    customer_id      INTEGER NOT NULL,
    device_id        TEXT NOT NULL,
    consumable       TEXT NOT NULL,
    life_start_ms    INTEGER NOT NULL,
    point_days       REAL NOT NULL,
    channel          TEXT NOT NULL,
    remaining_days   REAL NOT NULL,
    message          TEXT NOT NULL,
    -- `pending`, `sent`, `failed` (attempts used up) or `skipped` (opted out).
    status           TEXT NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms  INTEGER NOT NULL,
    last_error       TEXT,
    created_ms       INTEGER NOT NULL,
    sent_ms          INTEGER,
    UNIQUE (device_id, consumable, life_start_ms, point_days, channel)
);
CREATE INDEX reminders_due ON reminders (status, next_attempt_ms);
CREATE INDEX reminders_by_customer ON reminders (customer_id, id);
