-- Reminders on the `indicator` channel: the id of the command sent to the
-- device's gateway whose result is awaited (NULL when none is). The
-- reminder is `sent` once the agent reports that command, or an earlier
-- one for the same reminder, carried out.
ALTER TABLE reminders ADD COLUMN command_id TEXT;
