-- How long the seller held the button that opened the poll (the `hold` of its seller_short
-- event, ms; NULL when the panel did not report it). The press went down at opened_ms minus
-- this: an answer pressed in between was pressed while the seller's button was still held
-- (gateway/doubt.py `seller_held`). NULL on rows derived before this migration: `rating
-- rebuild` fills it.
ALTER TABLE polls ADD COLUMN seller_hold_ms BIGINT;
