-- Dispatch: technicians (skills, home base, capacity, working hours),
-- device locations, and what a visit leaves behind (parts used, the
-- customer's rating).
CREATE TABLE technicians (
    name                TEXT PRIMARY KEY,
    -- JSON array of skills: causes, `family:*` or `*`.
    skills              TEXT NOT NULL,
    latitude            REAL NOT NULL,
    longitude           REAL NOT NULL,
    capacity            INTEGER NOT NULL,
    shift_start         INTEGER NOT NULL,
    shift_end           INTEGER NOT NULL,
    utc_offset_minutes  INTEGER NOT NULL DEFAULT 0,
    -- 0: no new assignments (left, on leave).
    active              INTEGER NOT NULL DEFAULT 1
);
ALTER TABLE devices ADD COLUMN latitude REAL;
ALTER TABLE devices ADD COLUMN longitude REAL;
-- JSON array of the parts used, from the resolution.
ALTER TABLE work_orders ADD COLUMN parts TEXT NOT NULL DEFAULT '[]';
ALTER TABLE work_orders ADD COLUMN rating INTEGER;
ALTER TABLE work_orders ADD COLUMN rating_comment TEXT;
