"""With lang ru, what an operator reads is Russian: every `--help` page of `rating` and the output
of the everyday commands (status, dead letters, review list/history/verdicts, report, backup,
the technician's port list).
What is left after taking out what is code (options, metavars, paths, URLs, ids, `code`,
quoted values, command and choice names) must be Russian words, numbers, or a name on ALLOWED
(products, units, protocol terms that have no Russian form)."""

import argparse
import re

import pytest
from gw_site_support import T_OFFICES, two_offices

from gateway import i18n, ingest, schema
from rating import cli

# product and protocol names, file formats, the method's names, units: the same in Russian text
ALLOWED = {
    "rating", "SQLite", "PostgreSQL", "Mosquitto", "mosquitto", "MQTT", "QoS", "TLS", "JSON", "OpenAPI",
    "CSV", "csv", "json", "toml", "TOML", "xlsx", "Excel", "KPI", "ISO", "Unix", "Wi-Fi", "USB",
    "MicroPython", "ESP32", "esptool", "mpremote", "amqtt", "umqtt", "gc", "Ctrl-C", "pid", "pid-",
    "acl", "loopback", "retained", "Wilson", "n", "k", "K", "N", "S", "T", "m", "h", "d", "x",
    "DI-staff", "DI-office", "ELI", "LA", "MSK", "PST", "dBm", "KB",
    # names the help shows as written: positional arguments, TOML keys of the settings example,
    # CSV columns, id prefixes of the examples
    "name", "scenario", "root", "inflight", "false", "true", "from", "to", "transactions", "visitors",
    "office-", "panel-", "rating-gateway",
    # the columns and values of a verdicts file (rating review batch)
    "id", "verdict", "reason", "invalid", "valid", "confirm", "reject",
}  # fmt: skip

CODE = (
    r"`[^`]*`",  # code spans
    r"\b[a-z][a-z0-9+]*://\S*",  # URLs
    r"\S*[/\\]\S*",  # paths and a/b alternatives
    r"(?<![\w-])--?[A-Za-z][\w-]*",  # options
    r"'[^'\s]*'",  # quoted values
    r"\"[^\"]*\"",
    r"\{[^}]*\}",
    r"\[\[\w+\]\]",  # site file tables
    r"\S*[._<>=@$%:#*]\S*[A-Za-z]\S*",  # ids with dots, placeholders, key=value
    r"\b[A-Z][A-Z0-9_]+\b",  # metavars
)


def english_words(text, names=()):
    """The Latin-alphabet words of `text` that are not code, a name in `names`, or ALLOWED."""
    for pattern in CODE:
        text = re.sub(pattern, " ", text)
    return {w for w in re.findall(r"[A-Za-z][A-Za-z-]*", text) if w not in ALLOWED and w not in names}


def commands():
    """Every subcommand path of `rating` ([] is `rating` itself) and every command and choice name."""
    paths, names = [], set()

    def walk(parser, path):
        paths.append(path)
        for action in parser._actions:
            names.update(str(c) for c in action.choices or ())
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, path + [name])

    walk(cli.build_parser(), [])
    return paths, names


def run(capsys, *argv):
    try:
        status = cli.main(["--lang", "ru", *argv])
    except SystemExit as exc:  # --help
        status = exc.code
    out = capsys.readouterr()
    assert status == 0, (argv, out.err)
    return out.out


def test_the_check_finds_english_in_russian_text():
    assert english_words("панель msk/desk-1 `rating status` --db URL: the panel is offline") == {
        "the", "panel", "is", "offline"
    }  # fmt: skip


def test_every_help_page_is_russian(capsys):
    paths, names = commands()
    assert len(paths) > 40
    leftovers = {}
    for path in paths:
        words = english_words(run(capsys, *path, "--help"), names)
        if words:
            leftovers[" ".join(path) or "rating"] = sorted(words)
    assert leftovers == {}


@pytest.fixture
def shop(tmp_path):
    """Two offices with polls, three dead letters; -> the database URL."""
    url = two_offices(
        tmp_path, [(h, ("yes", "no", "so_so")[h % 3]) for h in range(1, 9)], [(h, "yes") for h in range(1, 5)]
    )
    db = schema.open_database(url)
    ing = ingest.Ingestor(db, "rating/v1")
    ing.handle("rating/v1/msk/desk-1/event", b'{"v":1,"seq":"x"}', T_OFFICES)
    ing.handle("rating/v1/msk/desk-1/stat", b"{}", T_OFFICES)
    # seq 1 again with other content: a conflict the gateway explains in its own words
    ing.handle("rating/v1/msk/desk-1/event", b'{"v":1,"seq":1,"boot":7,"up":5,"t":null,"ev":"no"}', T_OFFICES)
    ing.flush()
    db.close()
    return url


def test_what_an_operator_reads_is_russian(shop, tmp_path, capsys):
    _paths, names = commands()
    window = ["--from", "2025-01-01", "--to", "2025-01-31"]
    said = {
        "status": run(capsys, "status", "--db", shop),
        "deadletter": run(capsys, "deadletter", "list", "--db", shop),
        "review list": run(capsys, "review", "list", "--db", shop),
        "verdict": run(capsys, "review", "poll", "msk/desk-1/1", "--invalid", "--reason", "тест", "--expert", "anna", "--db", shop),
        "verdict undone": run(capsys, "review", "poll", "msk/desk-1/1", "--valid", "--expert", "anna", "--db", shop),
        "review history": run(capsys, "review", "history", "msk/desk-1/1", "--db", shop),
        "report": run(capsys, "report", "--db", shop, *window),
        "report by employee": run(capsys, "report", "--db", shop, "--by", "employee", "--period", "day", *window),
        "backup": run(capsys, "db", "backup", "--db", shop, str(tmp_path / "b.db")),
        "device list": run(capsys, "device", "list"),
    }  # fmt: skip
    assert all(said.values())
    ids = {"anna", "desk-1", "desk-9", "door", "exit", "msk", "aaa", "stat", "kind", "boot", "event", "state",
           "ack", "config", "seq", "v", "so_so", "yes", "no"}  # fmt: skip
    leftovers = {what: sorted(english_words(text, names | ids)) for what, text in said.items()}
    assert {what: words for what, words in leftovers.items() if words} == {}
    assert "k = 0,8" in said["report"]  # a decimal comma
    assert "ошибка прошивки?); сохранённое событие остаётся" in said["deadletter"]  # the conflict's reason


def test_plurals_ranges_and_decimal_commas_in_russian():
    with i18n.cli_language("ru"):
        i18n.activate("ru", explicit=True)
        polls = [i18n.ngettext("%d poll", "%d polls", n) % n for n in (1, 2, 5, 21, 11, 104)]
        assert polls == ["1 опрос", "2 опроса", "5 опросов", "21 опрос", "11 опросов", "104 опроса"]
        assert i18n.range_text(0.29, 0.84, lang="ru") == "от +29 до +84\xa0%"
        assert i18n.number(0.8, 1, "ru") == "0,8" and i18n.number(12345.5, 1, "ru") == "12\xa0345,5"


def test_a_signed_interval_reads_from_to_and_decimals_take_a_comma_in_the_russian_report():
    from gateway import report_export
    from kpi_core import Figure

    eli = Figure(0.12, -0.03, 0.2, 230, signed=True)
    small = Figure(0.004, 0.001, 0.012, 900)
    ru = [report_export._cell(report_export_fig(f), "ru") for f in (eli, small)]
    assert ru == ["+12 % (от -3 до +20 %, n=230)", "0,4 % (0,1-1,2 %, n=900)"]
    assert report_export._cell(report_export_fig(eli), "en") == "+12 % (-3 to +20 %, n=230)"


def report_export_fig(f):
    from gateway import report_core

    return report_core.fig_dict(f)
