-- Work orders v2: the lifecycle (assignee, the times of each step), service
-- levels (due times per priority, escalations) and an audit trail of every
-- change and who made it.
ALTER TABLE work_orders ADD COLUMN assignee TEXT;
ALTER TABLE work_orders ADD COLUMN updated_ms INTEGER NOT NULL DEFAULT 0;
ALTER TABLE work_orders ADD COLUMN respond_by_ms INTEGER NOT NULL DEFAULT 0;
ALTER TABLE work_orders ADD COLUMN resolve_by_ms INTEGER NOT NULL DEFAULT 0;
ALTER TABLE work_orders ADD COLUMN started_ms INTEGER;
ALTER TABLE work_orders ADD COLUMN resolved_ms INTEGER;
ALTER TABLE work_orders ADD COLUMN closed_ms INTEGER;
-- Targets missed so far, comma-separated (`response`, `resolution`): each
-- escalates once.
ALTER TABLE work_orders ADD COLUMN escalated TEXT NOT NULL DEFAULT '';
UPDATE work_orders SET updated_ms = opened_at_ms,
    respond_by_ms = opened_at_ms + 86400000, resolve_by_ms = opened_at_ms + 259200000;
CREATE INDEX work_orders_by_status ON work_orders (status, id);

-- Every change of every work order: who, when, what, from and to.
CREATE TABLE work_order_events (
    id             INTEGER PRIMARY KEY,
    work_order_id  INTEGER NOT NULL REFERENCES work_orders (id),
    at_ms          INTEGER NOT NULL,
    -- `hub` for the hub's own decisions, else the caller's name.
    actor          TEXT NOT NULL,
    -- `opened`, a lifecycle action, `escalated` or `comment`.
    action         TEXT NOT NULL,
    from_status    TEXT,
    to_status      TEXT NOT NULL,
    -- JSON: the note, the assignee, the breach…
    detail         TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX work_order_events_by_order ON work_order_events (work_order_id, id);
