-- The contact polls of one office in a time range, with their panel and employee: what a report
-- row with transactions or visitors counts inside the counted time (derive.count_contact_polls_in,
-- one index range per counted span). Partial (only the polls that count toward conversion and
-- coverage) and covering (device, employee in the index): the COUNT reads no table row; without
-- it SQLite looked up every poll of the range (a chain's weekly report with daily counts: ~5 s
-- of 12,000 COUNTs on 1M polls -> ~0.6 s; bench/README.md, "rollup.py").
CREATE INDEX polls_contact_time ON polls (site, opened_ms, device, employee) WHERE contact = 1;
