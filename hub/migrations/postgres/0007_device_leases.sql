-- Hubs sharing one store (a shared subscription) split each device's
-- messages between them; one hub at a time holds a device's lease and
-- makes its predictions from the store, where every hub's samples meet.
CREATE TABLE device_leases (
    device_id   TEXT PRIMARY KEY,
    -- The holding hub's MQTT client id.
    owner       TEXT NOT NULL,
    -- Wall-clock ms; after it, any hub may take the lease.
    expires_ms  BIGINT NOT NULL
);
