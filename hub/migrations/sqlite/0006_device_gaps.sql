-- Sequence numbers missing per device: counted when a later number arrives
-- (except after an agent restart, which skips unused numbers), and taken
-- back when a missing one arrives late.
ALTER TABLE devices ADD COLUMN gaps INTEGER NOT NULL DEFAULT 0;
