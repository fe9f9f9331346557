-- PostgreSQL: migration 056 moved polls into a partitioned table, which dropped the index 046
-- had made on the old one (polls of one panel from a time on: POS matching re-matches a till
-- from the time a sale or poll arrived, docs/transactions.md). Made again on the partitioned
-- table (each month's partition gets its own). SQLite keeps 046's index.
CREATE INDEX IF NOT EXISTS polls_panel_opened ON polls (site, device, opened_ms);
