-- Dispatch: technicians (skills, home base, capacity, working hours),
-- device locations, and what a visit leaves behind (parts used, the
-- customer's rating).
CREATE TABLE technicians (
    name                TEXT PRIMARY KEY,
    -- JSON array of skills: causes, `family:*` or `*`.
    skills              TEXT NOT NULL,
    latitude            DOUBLE PRECISION NOT NULL,
    longitude           DOUBLE PRECISION NOT NULL,
    capacity            BIGINT NOT NULL,
    shift_start         BIGINT NOT NULL,
    shift_end           BIGINT NOT NULL,
    utc_offset_minutes  BIGINT NOT NULL DEFAULT 0,
    -- 0: no new assignments (left, on leave).
    active              BIGINT NOT NULL DEFAULT 1
);
ALTER TABLE devices ADD COLUMN latitude DOUBLE PRECISION;
ALTER TABLE devices ADD COLUMN longitude DOUBLE PRECISION;
-- JSON array of the parts used, from the resolution.
ALTER TABLE work_orders ADD COLUMN parts TEXT NOT NULL DEFAULT '[]';
ALTER TABLE work_orders ADD COLUMN rating BIGINT;
ALTER TABLE work_orders ADD COLUMN rating_comment TEXT;
