-- Alerts: raised at the edge (detectors) or by the hub (a gateway's last
-- will, a device gone silent). At most one open alert per device and kind.
CREATE TABLE alerts (
    id          INTEGER PRIMARY KEY,
    -- The device, or the gateway for `gateway_offline`.
    device_id   TEXT NOT NULL,
    gateway     TEXT NOT NULL,
    kind        TEXT NOT NULL,
    -- `edge` or `hub`.
    source      TEXT NOT NULL,
    severity    TEXT NOT NULL,
    -- `open` or `cleared`.
    state       TEXT NOT NULL,
    opened_ms   INTEGER NOT NULL,
    cleared_ms  INTEGER,
    -- JSON: what raised it (metric, score, baseline, value; silence).
    detail      TEXT NOT NULL DEFAULT '{}'
);
CREATE UNIQUE INDEX alerts_one_open ON alerts (device_id, kind) WHERE state = 'open';
