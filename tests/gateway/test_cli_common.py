"""Commands that read the store refuse a database that does not exist or was never set up,
name the file meant (absolute) and the command that creates one, and create nothing."""

import os

import pytest
from gw_site_support import apply_site, run_cli, sqlite_db

from gateway import db as dbmod
from rating import cli

# every command that only reads (or writes into settings that must exist), with its arguments
READERS = [
    ("report",),
    ("status",),
    ("review", "list"),
    ("review", "history", "msk/desk-1/1"),
    ("review", "poll", "msk/desk-1/1", "--valid", "--expert", "anna"),
    ("deadletter", "list"),
    ("counts", "list"),
    ("site", "show"),
    ("site", "export"),
    ("rebuild",),
    ("web",),  # the console only reads the store it is given (refused before it listens)
]


def tree(folder):
    return sorted(os.path.relpath(os.path.join(d, f), folder) for d, _dirs, files in os.walk(folder) for f in files)


@pytest.mark.parametrize("argv", READERS, ids=[" ".join(a[:2]) for a in READERS])
def test_a_mistyped_db_is_refused_naming_the_file_and_nothing_is_created(argv, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(capsys, *argv, "--db", "sqlite:///data/ratng.db")
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("error: no database at %s" % (tmp_path / "data" / "ratng.db"))
    # which file a relative URL means, and how to write an absolute one
    assert "relative to the current folder" in err and "sqlite:////" in err
    assert "rating site apply FILE.toml --db sqlite:///data/ratng.db" in err
    assert tree(tmp_path) == [] and not (tmp_path / "data").exists()


def test_an_absolute_url_names_its_file_without_the_slash_rule(tmp_path, capsys):
    code, _out, err = run_cli(capsys, "report", "--db", "sqlite:///%s" % (tmp_path / "x.db"))
    assert code == 2 and "no database at %s;" % (tmp_path / "x.db") in err and "relative" not in err


@pytest.mark.parametrize("url", ["sqlite:x.db", "sqlite:/x.db", "sqlite://x.db"])
def test_a_sqlite_url_with_too_few_slashes_creates_no_folder_named_sqlite(url, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for argv in (("report",), ("site", "apply", "missing.toml")):
        code, _out, err = run_cli(capsys, *argv, "--db", url)
        assert code == 2 and err.startswith("error:")
    code, _out, err = run_cli(capsys, "report", "--db", url)
    assert "sqlite:///relative/path.db or sqlite:////absolute/path.db" in err
    assert tree(tmp_path) == []


def test_an_empty_file_or_another_file_is_not_a_rating_database(tmp_path, capsys):
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    code, _out, err = run_cli(capsys, "status", "--db", str(empty))
    assert code == 2 and "was never set up as a rating database" in err and "rating site apply" in err
    assert empty.read_bytes() == b""  # not migrated into a database
    other = tmp_path / "notes.txt"
    other.write_text("hello, this is not a database at all\n")
    code, _out, err = run_cli(capsys, "report", "--db", str(other))
    assert code == 2 and "is not a rating database" in err and "Traceback" not in err


def test_a_set_up_database_without_a_site_file_says_to_apply_one(tmp_path, capsys):
    sqlite_db(tmp_path).close()  # migrated, as `rating gateway run` leaves it before any site file
    url = "sqlite:///%s" % (tmp_path / "rating.db")
    for argv in (("report",), ("review", "list"), ("site", "show"), ("counts", "list")):
        code, _out, err = run_cli(capsys, *argv, "--db", url)
        assert code == 2 and "no site file was applied" in err and "rating site apply FILE.toml" in err
    code, out, _err = run_cli(capsys, "status", "--db", url)  # the fleet needs no site file
    assert code == 0


def test_a_set_up_database_is_read(tmp_path, capsys):
    db = sqlite_db(tmp_path)
    apply_site(db)
    db.close()
    code, out, _err = run_cli(capsys, "site", "show", "--db", "sqlite:///%s" % (tmp_path / "rating.db"))
    assert code == 0 and "msk" in out


def test_a_postgresql_database_never_set_up_is_refused_and_left_empty(pg_url, capsys):
    code, _out, err = run_cli(capsys, "report", "--db", pg_url)
    assert code == 2 and "was never set up as a rating database" in err and "rating site apply" in err
    db = dbmod.connect(pg_url)
    try:
        assert db.scalar("SELECT COUNT(*) AS n FROM information_schema.tables WHERE table_schema = 'public'") == 0
    finally:
        db.close()
    code, _out, _err = run_cli(capsys, "status", "--db", pg_url)
    assert code == 2


def test_in_russian_the_refusal_is_russian(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = cli.main(["--lang", "ru", "report", "--db", "sqlite:///r.db"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("ошибка: нет базы данных %s" % (tmp_path / "r.db"))
    assert "путь от текущей папки" in err
