-- The review queue of every office (console/queue.py: derive.index over a week of the whole
-- chain, every poll scored for doubt) read each of ~56,000 rows through polls_opened and looked
-- it up in the table: half the cold page's time on a 100-office chain. The same index, now
-- covering the columns derive.INDEX_POLL_COLUMNS reads, in the query's order (no sort):
-- every query that used polls_opened still can. bench/console.py measures it (bench/README.md).
DROP INDEX polls_opened;
CREATE INDEX polls_opened ON polls (
    opened_ms, site, device, open_seq, answer, employee, answered_ms, extra_presses, seller_presses, seller_hold_ms
);
