-- Polls of one office in a time range (the console's review queue and KPI page for one office,
-- `rating report --site`, `rating review list --site`): without it SQLite walks every office's
-- polls of the range through polls_opened and looks each row up. bench/console.py measures it.
CREATE INDEX polls_site_opened ON polls (site, opened_ms);
CREATE INDEX force_majeure_site_start ON force_majeure (site, start_ms);
