"""The portable database adapter: transactions end cleanly however COMMIT fails."""

import sqlite3

from gateway import schema


def test_failed_commit_leaves_no_open_transaction(tmp_path):
    """A COMMIT that fails (here: a deferred foreign key; in the field: disk full, I/O error)
    must not leave SQLite inside the transaction: the batch's writes would linger, ride along
    with the next batch's commit, and every later BEGIN would fail - ingest stuck for good."""
    import pytest

    db = schema.open_database("sqlite:///%s" % (tmp_path / "c.db"))
    try:
        db.execute("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
        db.execute(
            "CREATE TABLE child (id INTEGER PRIMARY KEY, p INTEGER"
            " REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED)"
        )
        with pytest.raises(sqlite3.IntegrityError):  # the deferred foreign key fails at COMMIT
            with db.transaction():
                db.execute("INSERT INTO child (id, p) VALUES (1, 42)")
        assert not db.conn.in_transaction
        with db.transaction():  # the retry works
            db.execute("INSERT INTO parent (id) VALUES (42)")
            db.execute("INSERT INTO child (id, p) VALUES (1, 42)")
        assert db.scalar("SELECT COUNT(*) FROM child") == 1
    finally:
        db.close()


def test_migration_scripts_keep_a_dollar_quoted_function_body_in_one_statement():
    from gateway.db import split_statements

    script = (
        "CREATE FUNCTION f() RETURNS INTEGER LANGUAGE plpgsql AS $$\nBEGIN\n  PERFORM 'a;b'; -- x;\n"
        "  RETURN 1;\nEND\n$$;\nSELECT 'c;d'; -- e;\nSELECT 2"
    )
    parts = split_statements(script)
    assert len(parts) == 3 and parts[0].endswith("END\n$$") and "RETURN 1;" in parts[0]
    assert parts[1:] == ["SELECT 'c;d'", "SELECT 2"]
