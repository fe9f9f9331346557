-- A sender claims an outbox row before it hands it to the channel (gateway/alertsend.py
-- deliver_outbox, gateway/reportmail.py): one conditional UPDATE, checked by its row count, so
-- two senders (the console's "Retry now" and a `rating reports send-due` pass; several
-- `rating gateway run` on one PostgreSQL) never both send the same message. The claim is a
-- lease: a sender killed while sending leaves `claimed_until` behind, and the row goes out
-- again once that time has passed (alertsend.LEASE_S). NULL: nobody is sending it.
ALTER TABLE report_outbox ADD COLUMN claimed_by TEXT;
ALTER TABLE report_outbox ADD COLUMN claimed_until BIGINT;
ALTER TABLE alert_outbox ADD COLUMN claimed_by TEXT;
ALTER TABLE alert_outbox ADD COLUMN claimed_until BIGINT;
ALTER TABLE followup_outbox ADD COLUMN claimed_by TEXT;
ALTER TABLE followup_outbox ADD COLUMN claimed_until BIGINT;
