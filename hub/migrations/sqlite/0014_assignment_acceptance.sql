-- A technician accepts an assignment (`accepted_ms`, cleared when the order
-- is reassigned) or declines it: the order is open again and dispatch does
-- not choose a decliner for it again (`declined_by`, a JSON array of names).
ALTER TABLE work_orders ADD COLUMN accepted_ms INTEGER;
ALTER TABLE work_orders ADD COLUMN declined_by TEXT NOT NULL DEFAULT '[]';
