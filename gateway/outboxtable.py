"""The rows of a delivery outbox table (alert_outbox, followup_outbox): which are due, how many
wait, and the claim / delivered / failed updates gateway/alertsend.deliver_outbox makes. The
owner module of each table makes one `OutboxTable` with its own table's name (docs/architecture.md,
"Who owns which table"), so the table is still read and written through its owner only.

Every such table has the columns id, channel, next_ms, attempts, last_error, delivered_ms,
claimed_by and claimed_until (migrations 030, 050, 077)."""


class OutboxTable:
    def __init__(self, table):
        self.table = table

    def due(self, db, now_ms, limit=50):
        """Undelivered rows to try now, oldest first, in each channel's order: a channel's rows
        wait behind its oldest undelivered one until that one's retry time has come (a receiver
        that was down gets them in the order they were made)."""
        rows = db.query("SELECT * FROM %s WHERE delivered_ms IS NULL ORDER BY id LIMIT %d" % (self.table, int(limit)))
        heads = {}
        for r in rows:
            heads.setdefault(r["channel"], r)
        return [r for r in rows if heads[r["channel"]]["next_ms"] <= now_ms]

    def pending(self, db):
        return db.scalar("SELECT COUNT(*) FROM %s WHERE delivered_ms IS NULL" % self.table) or 0

    def claim(self, db, row_id, token, now_ms, until_ms):
        """Take the row for one sender (`token`) until `until_ms`: True when this sender has it,
        False when it went out meanwhile, is not due, or another sender holds an unexpired claim
        (several gateways on one database: gateway/alertsend.deliver_outbox)."""
        changed = db.execute(
            "UPDATE %s SET claimed_by = ?, claimed_until = ? WHERE id = ? AND delivered_ms IS NULL"
            " AND next_ms <= ? AND (claimed_until IS NULL OR claimed_until <= ?)" % self.table,
            (token, until_ms, row_id, now_ms, now_ms),
        )
        return changed == 1

    def delivered(self, db, row_id, now_ms, token=None):
        """The channel took the row: marked delivered (whoever holds the claim now: it went out)."""
        db.execute(
            "UPDATE %s SET delivered_ms = ?, attempts = attempts + 1, last_error = NULL,"
            " claimed_by = NULL, claimed_until = NULL WHERE id = ?" % self.table,
            (now_ms, row_id),
        )

    def failed(self, db, row_id, attempts, error, next_ms, token=None):
        """The channel did not take the row: kept with the error and the back-off, the claim let
        go (only the claim of `token` when given: a sender whose lease ran out leaves the row alone)."""
        guard, args = ("", ()) if token is None else (" AND claimed_by = ?", (token,))
        db.execute(
            "UPDATE %s SET attempts = ?, last_error = ?, next_ms = ?, claimed_by = NULL, claimed_until = NULL"
            " WHERE id = ?" % self.table + guard,
            (attempts, error[:500], next_ms, row_id, *args),
        )
