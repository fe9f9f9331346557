"""Russian and English through gettext: the catalogue is complete and current, plurals and numbers
are Russian, the language is chosen as documented, and with `lang = ru` a Russian operator or
expert reads Russian everywhere (help, errors, status, dead letters, site apply, verdicts,
review history)."""

import argparse
import gettext
import io
import json
import os
import re

import pytest
from babel.messages.extract import extract_from_dir, extract_from_file
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from gw_site_support import MIN, SITE_TOML, T0, Panel, apply_site, sqlite_db, store_events

from gateway import derive, i18n, ingest, times
from protocol import ProtocolError, messages, topics
from rating import cli

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PO = os.path.join(i18n.LOCALEDIR, "ru", "LC_MESSAGES", "rating.po")
MO = os.path.join(i18n.LOCALEDIR, "ru", "LC_MESSAGES", "rating.mo")
KEYWORDS = {"_": None, "N_": None, "ngettext": (1, 2)}
CYRILLIC = re.compile("[а-яА-ЯёЁ]")


def catalogue():
    with open(PO, "rb") as f:
        return read_po(f)


def marked_messages():
    """Every message the code marks for translation, and argparse's own."""
    found = set()
    for folder in ("gateway", "rating"):
        for _file, _line, message, _comments, _ctx in extract_from_dir(os.path.join(REPO, folder), keywords=KEYWORDS):
            found.add(message)
    for _line, message, _comments, _ctx in extract_from_file("python", argparse.__file__, keywords=KEYWORDS):
        found.add(message)
    return found


def test_every_message_has_both_languages():
    cat = catalogue()
    missing = []
    for message in marked_messages():
        key = message[0] if isinstance(message, tuple) else message
        entry = cat.get(key)
        strings = () if entry is None else (entry.string if isinstance(entry.string, tuple) else (entry.string,))
        if entry is None or entry.fuzzy or not strings or not all(strings):
            missing.append(key)
    assert missing == [], "messages without a Russian translation (run make i18n and translate): %r" % missing
    assert cat.num_plurals == 3
    problems = [(m.id, errs) for m, errs in cat.check()]  # placeholders the same in both languages
    assert problems == []


def test_the_compiled_catalogue_is_the_current_one():
    cat = catalogue()
    buf = io.BytesIO()
    write_mo(buf, cat)
    buf.seek(0)
    fresh = gettext.GNUTranslations(buf)
    with open(MO, "rb") as f:
        shipped = gettext.GNUTranslations(f)
    assert shipped._catalog == fresh._catalog, "rating.mo is stale: run make i18n"  # type: ignore[attr-defined]


def test_russian_plurals_numbers_and_ranges():
    words = i18n.Words("ru")
    said = [words.ngettext("%d poll", "%d polls", n) % n for n in (1, 2, 5, 11, 21, 22, 25, 111)]
    assert said == [
        "1 опрос",
        "2 опроса",
        "5 опросов",
        "11 опросов",
        "21 опрос",
        "22 опроса",
        "25 опросов",
        "111 опросов",
    ]
    assert i18n.Words("en").ngettext("%d poll", "%d polls", 21) % 21 == "21 polls"
    assert words.number(0.5) == "0,5" and i18n.number(1234.5, 1, "en") == "1,234.5"
    assert words.number(1234.25, 2) == "1\xa0234,25"
    assert words.percent(0.29) == "29\xa0%" and i18n.percent(0.29, lang="en") == "29%"
    assert words.range(0.29, 0.84) == "от +29 до +84\xa0%"
    assert i18n.range_text(0.29, 0.84, lang="en") == "+29% to +84%"
    assert i18n.range_text(-0.05, 0.3, lang="ru") == "от -5 до +30\xa0%"


def test_the_language_is_flag_then_env_then_locale():
    assert i18n.choose("en", {"RATING_LANG": "ru", "LANG": "ru_RU.UTF-8"}) == ("en", True)
    assert i18n.choose(None, {"RATING_LANG": "ru", "LANG": "en_US.UTF-8"}) == ("ru", True)
    assert i18n.choose(None, {"LANG": "ru_RU.UTF-8"}) == ("ru", False)
    assert i18n.choose(None, {"LC_ALL": "C.UTF-8", "LANG": "ru_RU.UTF-8"}) == ("en", False)
    assert i18n.choose(None, {}) == ("en", False)
    with pytest.raises(ValueError, match="RATING_LANG"):
        i18n.choose(None, {"RATING_LANG": "de"})


def test_a_deployment_language_is_followed_unless_the_user_chose(monkeypatch):
    i18n.activate("en", explicit=False)
    assert i18n.follow_deployment("ru") == "ru"
    i18n.activate("en", explicit=True)
    assert i18n.follow_deployment("ru") == "en"
    i18n.activate("en")


def test_every_protocol_reason_reads_in_russian():
    """Dead letters keep the validator's English reason; a Russian reader sees it in Russian."""
    reasons = set()
    decoders = {
        "events": messages.decode_event,
        "state": messages.decode_state,
        "ack": messages.decode_ack,
        "config": messages.decode_config,
        "counts": messages.decode_counts,
    }
    for name, decode in decoders.items():
        with open(os.path.join(REPO, "tests", "vectors", name + ".json"), encoding="utf-8") as f:
            for case in json.load(f):
                if case.get("ok") or "payload" not in case:
                    continue
                payload = case["payload"]
                try:
                    decode(payload if isinstance(payload, str) else json.dumps(payload))
                except ProtocolError as exc:
                    reasons.add(str(exc))
    with open(os.path.join(REPO, "tests", "vectors", "topics.json"), encoding="utf-8") as f:
        for case in json.load(f):
            if not case.get("ok"):
                try:
                    getattr(topics, case["call"])(*case["args"])
                except ProtocolError as exc:
                    reasons.add(str(exc))
    assert len(reasons) > 60
    untranslated = [r for r in reasons if not CYRILLIC.search(i18n.reason(r, "ru"))]
    assert untranslated == []
    assert (
        i18n.reason("seq: must be an integer >= 1, got -3", "ru") == "seq: должно быть целым числом >= 1, получено -3"
    )
    assert i18n.reason("seq: must be an integer >= 1, got -3", "en") == "seq: must be an integer >= 1, got -3"
    assert i18n.reason("something new", "ru") == "something new"


@pytest.fixture()
def russian_deployment(tmp_path):
    """A deployment whose site file says lang = "ru", with polls, a dead letter and a verdict to show."""
    db = sqlite_db(tmp_path)
    apply_site(db, SITE_TOML.replace('lang = "en"', 'lang = "ru"'))
    p = Panel("msk", "desk-1", booted_at=T0 - 3600000)
    p.poll(T0 + 10 * MIN, "no")
    store_events(db, p.events)
    derive.rebuild(db, T0 + 60 * MIN)
    ing = ingest.Ingestor(db, topics.DEFAULT_ROOT)
    ing.handle("rating/v1/msk/desk-1/event", b'{"v":1,"seq":-3}', T0)
    ing.flush()
    db.close()
    return "sqlite:///%s" % (tmp_path / "rating.db"), tmp_path


def run(capsys, *argv):
    try:
        code = cli.main(list(argv))
    except SystemExit as exc:  # argparse: --help, a bad argument
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


def test_with_lang_ru_an_operator_and_an_expert_read_russian(russian_deployment, capsys, monkeypatch):
    url, tmp_path = russian_deployment
    for name in ("RATING_LANG", "LANGUAGE", "LC_ALL", "LC_MESSAGES"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LANG", "C.UTF-8")  # a server's locale says nothing: the deployment decides
    code, out, _err = run(capsys, "status", "--db", url)
    assert code == 0 and "панель" in out and "была слышна" in out and "отвергнутых сообщений: 1" in out
    assert "настроена, ни разу не выходила на связь" in out
    code, out, _err = run(capsys, "deadletter", "list", "--db", url)
    assert code == 0 and "причина" in out and "boot: отсутствует" in out and "последний раз" in out
    code, out, _err = run(
        capsys, "review", "poll", "msk/desk-1/1", "--invalid", "--reason", "тест", "--expert", "anna", "--db", url
    )
    assert code == 0 and out.strip() == "опрос msk/desk-1/1 признан недействительным (anna)"
    code, _out, err = run(capsys, "review", "poll", "msk/desk-1/1", "--invalid", "--expert", "anna", "--db", url)
    assert code == 2 and err.startswith("ошибка: чтобы признать опрос недействительным")
    code, out, _err = run(capsys, "review", "history", "msk/desk-1/1", "--db", url)
    assert code == 0 and "недействителен" in out and "действует: недействителен" in out and "MSK" in out
    code, out, _err = run(capsys, "review", "list", "--db", url, "--share", "0")
    assert code == 0 and "ответ «Нет»" in out and "1 запись" in out
    site_file = tmp_path / "site.toml"
    site_file.write_text(SITE_TOML.replace('lang = "en"', 'lang = "ru"').replace("window_s = 30", "window_s = 40"))
    code, out, _err = run(capsys, "site", "apply", str(site_file), "--db", url)
    assert (
        code == 0
        and "записано 1 изменение:" in out
        and "панель" in out
        and "window_s: 30 -> 40" in out
        and " с 2025-01-01 03:00:00 MSK" in out
    )
    # help and argument errors come before any database: --lang (or $RATING_LANG, the locale) decides
    code, out, _err = run(capsys, "--lang", "ru", "status", "--help")
    assert code == 0 and "использование:" in out and "параметры:" in out and "формат вывода" in out
    code, _out, err = run(capsys, "status", "--format", "xml", "--lang", "ru")
    assert code == 2 and "ошибка: аргумент --format: недопустимый вариант" in err
    monkeypatch.setenv("RATING_LANG", "ru")
    code, _out, err = run(capsys, "deadletter", "list", "--since", "yesterday", "--db", url)
    assert code == 2 and "ошибка: --since 'yesterday': укажите давность" in err
    # and the same deployment read by someone who asked for English
    code, out, _err = run(capsys, "--lang", "en", "status", "--db", url)
    assert "last seen" in out and "dead letters: 1" in out
    assert not CYRILLIC.search(out.replace("Офис на Тверской", ""))


def test_a_bad_language_is_one_line_error(capsys, monkeypatch):
    monkeypatch.setenv("RATING_LANG", "de")
    code, _out, err = run(capsys, "status", "--help")
    assert code == 2 and err.strip() == "error: $RATING_LANG=de: must be one of ru, en"


def test_times_in_messages_are_russian_too():
    i18n.activate("ru")
    try:
        with pytest.raises(ValueError, match="нет смещения от UTC"):
            times.parse_instant("2025-01-06T09:00:00")
    finally:
        i18n.activate("en")


def test_speaking_changes_the_language_of_one_thread_only():
    """The console checks a form in its reader's language (i18n.speaking) while other requests,
    in other threads, keep theirs and the process's language stays as it was."""
    import threading

    message = "must be true or false, got %r"
    before = dict(i18n._state)
    seen = {}
    inside = threading.Event()
    done = threading.Event()

    def other_thread():
        inside.wait(5)
        seen["other"] = i18n._(message)
        done.set()

    i18n.activate("en")
    try:
        worker = threading.Thread(target=other_thread)
        worker.start()
        with i18n.speaking("ru"):
            seen["here"] = i18n._(message)
            inside.set()
            done.wait(5)
        seen["after"] = i18n._(message)
        worker.join(5)
    finally:
        i18n._state.update(before)
    assert seen == {"here": "должно быть true или false, а не %r", "other": message, "after": message}
