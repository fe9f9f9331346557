"""The gateway's schema: the numbered migrations (gateway/migrations/) and the SQL functions
SQLite needs to run them. `open_database` is what every command that touches the store calls.
"""

from gateway import db as dbmod
from gateway import store

# SQLite has no sha256: 004_dead_letter_key.sqlite.sql computes the key through this
SQLITE_FUNCTIONS = {"rating_dead_letter_key": (2, store.dead_letter_key)}


def migrate(db):
    """Apply the migrations `db` has not seen yet; returns their names."""
    return db.migrate(sqlite_functions=SQLITE_FUNCTIONS)


def open_database(url=None):
    """connect() + the migrations: a store ready for use."""
    db = dbmod.connect(url)
    try:
        migrate(db)
    except Exception:
        db.close()
        raise
    return db
