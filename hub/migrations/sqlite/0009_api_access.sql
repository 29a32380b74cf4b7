-- API access: customers, who owns which device, how critical a device is,
-- and the API's bearer tokens (only their SHA-256 is kept).
CREATE TABLE customers (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    -- Whom the service provider calls or writes to about the customer's devices.
    contact     TEXT,
    email       TEXT,
    phone       TEXT,
    created_ms  INTEGER NOT NULL
);

-- The customer a device belongs to (none: the provider's own, or not yet assigned).
ALTER TABLE devices ADD COLUMN customer_id INTEGER REFERENCES customers (id);
-- `low`, `normal` or `high`: how much a failure costs (work-order priority).
ALTER TABLE devices ADD COLUMN criticality TEXT NOT NULL DEFAULT 'normal'
    CHECK (criticality IN ('low', 'normal', 'high'));
CREATE INDEX devices_by_customer ON devices (customer_id);
CREATE INDEX work_orders_by_assignee ON work_orders (assignee, id);

CREATE TABLE api_tokens (
    id           INTEGER PRIMARY KEY,
    -- Who holds it (a person or a system), for the operator and the audit trail.
    name         TEXT NOT NULL,
    role         TEXT NOT NULL CHECK (role IN ('admin', 'manager', 'technician', 'customer')),
    customer_id  INTEGER REFERENCES customers (id),
    -- The technician's name, as in `work_orders.assignee`.
    technician   TEXT,
    -- SHA-256 of the token, lowercase hex. The token itself is shown once and never stored.
    hash         TEXT NOT NULL UNIQUE,
    created_ms   INTEGER NOT NULL,
    -- Set once revoked; a revoked token is refused.
    revoked_ms   INTEGER,
    CHECK ((role = 'customer') = (customer_id IS NOT NULL)),
    CHECK ((role = 'technician') = (technician IS NOT NULL))
);
-- One active token per name, so that `wearline token revoke --name` is unambiguous.
CREATE UNIQUE INDEX api_tokens_active_name ON api_tokens (name) WHERE revoked_ms IS NULL;
