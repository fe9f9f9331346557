"""With lang ru, what an operator reads is Russian: every `--help` page of `rating` and the output
of the everyday commands (status, dead letters, review list/history/verdicts, report, backup,
the technician's port list).
What is left after taking out what is code (options, metavars, paths, URLs, ids, `code`,
quoted values, command and choice names) must be Russian words, numbers, or a name on ALLOWED
(products, units, protocol terms that have no Russian form)."""

import argparse
import re
from pathlib import Path

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
    "till", "time", "loyalty",
    "office-", "panel-", "rating-gateway",
    # the columns and values of a verdicts file (rating review batch)
    "id", "verdict", "reason", "invalid", "valid", "confirm", "reject",
    # the ids of the examples in `rating user set --help`
    "anna", "boris", "msk-tverskaya", "north-west", "spb-nevsky",
}  # fmt: skip

CODE = (
    r"`[^`]*`",  # code spans
    r"\b[a-z][a-z0-9+]*://\S*",  # URLs
    r"\S*[/\\]\S*",  # paths and a/b alternatives
    r"(?<![\w-])--?[A-Za-z][\w-]*",  # options
    r"'[^'\s]*'",  # quoted values
    r"\"[^\"]*\"",
    r"\{[^}]*\}",
    r"\b0x[0-9A-Fa-f]+\b",  # hex numbers
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


def refusal(capsys, *argv):
    """`rating --lang ru ...` that must refuse: -> its one line on standard error."""
    status = cli.main(["--lang", "ru", *argv])
    out = capsys.readouterr()
    assert status == 2 and out.out == "" and out.err.count("\n") == 1, (argv, out)
    return out.err


def test_what_a_technician_reads_when_a_device_command_refuses_is_russian(tmp_path, capsys):
    _paths, names = commands()
    bad_image = tmp_path / "firmware.zip"
    bad_image.write_bytes(b"PK\x03\x04" + bytes(60))
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "main.py").write_text("import firmware.main\n")
    (bundle / "manifest.json").write_text('{"fw": "0.2.0", "files": {"main.py": "00"}}')
    torn = tmp_path / "torn"
    torn.mkdir()
    (torn / "manifest.json").write_text('{"fw": "0.2.0", "files": {"lib/firmware/main.mpy": "00"}}')
    deploy = ["device", "deploy", "--port", "/dev/ttyUSB0", "--site", "msk", "--device", "desk-1", "--dry-run"]
    said = {
        "missing port": refusal(capsys, "device", "deploy", "--port", str(tmp_path / "ttyUSB9"), "--site", "msk",
                                "--device", "desk-1"),
        "missing image": refusal(capsys, "device", "flash", "--port", "/dev/ttyUSB0", "--image",
                                 str(tmp_path / "ESP32_GENERIC.bin"), "--dry-run"),
        "bad image": refusal(capsys, "device", "flash", "--port", "/dev/ttyUSB0", "--image", str(bad_image), "--dry-run"),
        "no bundle": refusal(capsys, *deploy, "--bundle", str(tmp_path)),
        "bundle file missing": refusal(capsys, *deploy, "--bundle", str(torn)),
        "password file": refusal(capsys, *deploy, "--bundle", str(bundle), "--wifi-ssid", "shop",
                                 "--wifi-password-file", str(tmp_path / "wifi.txt")),
        "user in the broker URL": refusal(capsys, *deploy, "--bundle", str(bundle), "--broker", "mqtt://u:p@gw:1883"),
    }  # fmt: skip
    ids = {"msk", "desk-1", "zip", "hex", "uf2", "bin", "u"}
    leftovers = {what: sorted(english_words(text, names | ids)) for what, text in said.items()}
    assert {what: words for what, words in leftovers.items() if words} == {}
    assert "последовательного порта" in said["missing port"] and "не найден" in said["missing image"]
    assert "не образ прошивки ESP32" in said["bad image"] and "нет комплекта прошивки" in said["no bundle"]
    assert "файла комплекта" in said["bundle file missing"] and "такого файла нет" in said["password file"]


def test_the_device_check_report_is_russian_with_decimal_commas():
    from technician import check

    lines = [
        'CHECK system {"version": "1.27.0", "machine": "ESP32", "freq_mhz": 240, "flash_bytes": 4194304, '
        '"fs_free": 1900000, "path": ["", "/lib"]}',
        'CHECK heap_bare {"gc_free": 110000, "gc_alloc": 4000, "idf_free": 150000, "idf_largest": 65536, '
        '"idf_min_free": 140000}',
        "CHECK-HELP-MODULES-BEGIN",
        "__main__          gc                umqtt/simple",
        "CHECK-HELP-MODULES-END",
        'CHECK modules {"umqtt.simple": {"file": null}, "firmware": {"where": "/lib/firmware/__init__.mpy"}}',
        'CHECK boot {"ms": 812, "state": {}}',
        'CHECK heap_boot {"gc_free": 70000, "gc_alloc": 44000}',
        'CHECK connect {"ms": 3400, "timeout_s": 60, "link": {"connects": 1}}',
        'CHECK heap_connected {"gc_free": 65000, "gc_alloc": 36000}',
        'CHECK reconnect {"noticed_ms": 10, "back_ms": 4100, "link": {"connects": 2}}',
        'CHECK journal {"n": 21, "min_us": 9000, "median_us": 21300, "max_us": 48000, "all_us": []}',
        'CHECK counters {"boot": 5, "seq": 10, "pending": 0, "dropped": 0, "rssi": -61, "link": {"connects": 2}, '
        '"reset_cause": 5}',
        'CHECK config {"ver": 4, "kept": true, "restart_ms": 3020}',
        'CHECK config_check {"ms": 1450, "restart": true}',
        'CHECK config_applied {"ver": 4, "applied": true, "error": null, "put_back": true}',
        "CHECK end {}",
    ]
    report = check.CheckReport()
    for line in lines:
        report.feed(line)
    said = []
    cli.build_parser()  # installs the catalogue's translator in technician/
    with i18n.cli_language("ru"):
        i18n.activate("ru", explicit=True)
        check.format_report(report, "/dev/ttyUSB0", out=said.append)
    text = "\n".join(said)
    _paths, names = commands()
    ids = {"umqtt", "simple", "firmware", "gc", "lib", "main", "help", "IDF", "ESP-IDF", "TCP", "IP"}  # code, names
    assert sorted(english_words(text, names | ids)) == []
    assert "Подключение: на связи через 3,4 с после загрузки" in text
    assert "медиана 21,3 мс" in text and "(21 запись)" in text  # a decimal comma, a plural
    assert "занято прошивкой после загрузки: 39,1 KB (в пределах бюджета 40 KB)" in text


def test_a_short_simulated_day_reports_in_russian(tmp_path, capsys):
    scenario = str(Path(cli.__file__).parents[1] / "simulator" / "scenarios" / "smoke-day.toml")
    said = run(capsys, "sim", "run", scenario, "--pure", "--check", "--out", str(tmp_path / "sim"))
    _paths, names = commands()
    ids = {"smoke-day", "truth", "site", "report", "txt"}
    assert sorted(english_words(said, names | ids)) == []
    assert "проверка: всё сходится" in said and re.search(r"\d+ панеле-дн", said)
    assert re.search(r"за \d+,\d с", said)  # the elapsed time with a decimal comma
