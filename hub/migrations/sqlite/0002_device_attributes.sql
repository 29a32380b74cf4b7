-- Text fields read from devices (serial number, firmware version…), latest value of each.
ALTER TABLE devices ADD COLUMN attributes TEXT NOT NULL DEFAULT '{}';
