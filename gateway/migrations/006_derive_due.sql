-- When a panel's derived rows may change by the clock alone (a poll's window or a force-majeure
-- period still open after the last update ends then): the gateway's derive worker advances only
-- the panels that are due, instead of every panel seen in the last hours (gateway/derive.py).
-- NULL: nothing open. Rows from before: due at once, so the first update computes it.
ALTER TABLE derive_state ADD COLUMN due_ms BIGINT;
UPDATE derive_state SET due_ms = 0;
CREATE INDEX derive_state_due ON derive_state (due_ms);
