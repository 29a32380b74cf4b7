-- E-mail reminders and booked visits: a customer's e-mail address for the
-- `email` reminder channel, and a work order's planned visit (set when it
-- is assigned: by dispatch, the technician's next shift start with time to
-- travel; by a manager, the `visit` of the `assign` transition), which the
-- reminders name.
ALTER TABLE reminder_settings ADD COLUMN email TEXT;
ALTER TABLE work_orders ADD COLUMN visit_ms BIGINT;
