-- Polls of one panel from a time on (derive.panel_polls_between: POS matching re-matches a till
-- from the time a sale or poll arrived, docs/transactions.md). Without it PostgreSQL's generic
-- plan walks the panel's whole history through the primary key. bench/transactions.py.
CREATE INDEX polls_panel_opened ON polls (site, device, opened_ms);
