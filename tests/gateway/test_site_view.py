"""Site files read by people: question placeholders and languages checked (item 12), `site
apply` shows old -> new with the effective time and zone and warns about unstaffed panels,
`site show` and `site export` (the settings in force as a file `site apply` takes back)."""

import pytest
from gw_site_support import SITE_TOML, run_cli

from gateway import site
from rating import cli


def errors_of(text):
    with pytest.raises(site.SiteFileError) as info:
        site.parse(text)
    return info.value.errors


# --- item 12: placeholders and languages ---------------------------------------------------------


@pytest.mark.parametrize("typo", ["{employe}", "{сотрудник}", "{Employee}", "{}"])
def test_an_unknown_placeholder_in_a_question_is_refused_naming_the_known_one(typo):
    text = SITE_TOML.replace("менеджера {employee}?", "менеджера %s?" % typo)
    assert "questions[0].text_ru: unknown placeholder %s (known: {employee})" % typo in errors_of(text)


def test_a_lone_brace_in_a_question_is_refused():
    text = SITE_TOML.replace("work of {employee}?", "work of {employee?")
    assert any(e.startswith("questions[0].text_en: a brace without its pair") for e in errors_of(text))


def test_a_russian_deployment_needs_no_english_texts_and_an_english_one_no_russian():
    ru_only = "\n".join(line for line in SITE_TOML.splitlines() if not line.startswith("text_en"))
    ru_only = ru_only.replace('lang = "en"', 'lang = "ru"')
    questions = site.parse(ru_only).of("question")
    assert [q[3]["text_en"] for q in questions] == [None, None, None]
    assert errors_of(ru_only.replace('lang = "ru"', 'lang = "en"'))[0] == "questions[0].text_en: is required (text)"
    en_only = "\n".join(line for line in SITE_TOML.splitlines() if not line.startswith("text_ru"))
    assert site.parse(en_only).of("question")[0][3]["text_ru"] is None


def test_a_russian_only_deployment_is_applied_and_its_question_pushed(tmp_path, capsys):
    from gateway import configpush
    from gateway.schema import open_database

    ru_only = "\n".join(line for line in SITE_TOML.splitlines() if not line.startswith("text_en"))
    path = tmp_path / "ru.toml"
    path.write_text(ru_only.replace('lang = "en"', 'lang = "ru"'), encoding="utf-8")
    url = "sqlite:///%s" % (tmp_path / "rating.db")
    assert cli.main(["site", "apply", str(path), "--db", url]) == 0
    db = open_database(url)
    knobs = configpush.desired(site.load(db), "msk", "desk-1", 1736150400000)
    assert knobs is not None and knobs["question"] == "Довольны ли Вы работой менеджера Елена Иванова?"


# --- item 13: site apply output, warnings, show, export -----------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path):
    if request.param == "sqlite":
        return "sqlite:///%s" % (tmp_path / "rating.db")
    return request.getfixturevalue("pg_url")


def apply(tmp_path, capsys, url, text, *extra):
    path = tmp_path / "site.toml"
    path.write_text(text, encoding="utf-8")
    return run_cli(capsys, "site", "apply", str(path), "--db", url, *extra)


def test_apply_shows_old_and_new_of_every_change_with_its_time_and_zone(url, tmp_path, capsys):
    code, out, _err = apply(tmp_path, capsys, url, SITE_TOML)
    assert code == 0
    # the file's `from` (2025-01-01T00:00Z) shown in the office's timezone, with the zone
    assert "  panel      msk/desk-1 from 2025-01-01 03:00:00 MSK" in out
    assert "      new: " in out and 'question="staff"' in out
    changed = SITE_TOML.replace("window_s = 30", "window_s = 45").replace(
        'name = "Сергей Петров"', 'name = "С. Петров"'
    )
    changed = changed.replace(
        '[[roster]]\npanel = "msk/desk-1"\nemployee = "ivanova"\nfrom = 2025-01-01T00:00:00Z\n', ""
    )
    changed += (
        '\n[[roster]]\npanel = "msk/desk-1"\nemployee = "petrov"\nhours = "09:00-14:00"\nfrom = 2025-02-03T09:00:00\n'
    )
    code, out, _err = apply(tmp_path, capsys, url, changed, "--dry-run")
    assert code == 0 and "would record 4 changes:" in out
    assert "      window_s: 30 -> 45" in out
    assert '      name: "Сергей Петров" -> "С. Петров"' in out
    # a local `from` is the office's time, shown as such (not "(apply time)")
    assert "  roster     msk/desk-1 (09:00-14:00) from 2025-02-03 09:00:00 MSK" in out
    assert '      new: employee="petrov"' in out
    assert "  roster     msk/desk-1 (all day) from 2025-01-01 03:00:00 MSK" in out
    assert '      removed (was {employee="ivanova"})' in out
    assert "(apply time)" not in out


def test_apply_warns_about_a_staff_panel_with_no_one_rostered_while_the_office_is_open(url, tmp_path, capsys):
    shifts = SITE_TOML.replace('timezone = "Europe/Moscow"', 'timezone = "Europe/Moscow"\nhours = "09:00-21:00"')
    shifts = shifts.replace('employee = "ivanova"\nfrom', 'employee = "ivanova"\nhours = "09:00-14:00"\nfrom')
    code, _out, err = apply(tmp_path, capsys, url, shifts)
    assert code == 0
    (line,) = err.splitlines()
    assert line.startswith("warning: panel msk/desk-1 asks about an employee but no one is on its roster for 58%")
    assert "MSK" in line and "add [[roster]] entries" in line
    # a second shift covers the afternoon: no warning (the office and door panels need no one)
    covered = shifts + '\n[[roster]]\npanel = "msk/desk-1"\nemployee = "petrov"\nhours = "14:00-21:00"\n'
    code, _out, err = apply(tmp_path, capsys, url, covered)
    assert code == 0 and err == ""


def test_a_staff_panel_with_no_roster_at_all_is_warned_about_without_opening_hours(url, tmp_path, capsys):
    text = SITE_TOML.replace(
        '[[roster]]\npanel = "msk/desk-1"\nemployee = "ivanova"\nfrom = 2025-01-01T00:00:00Z\n', ""
    )
    code, _out, err = apply(tmp_path, capsys, url, text)
    assert code == 0 and "warning: panel msk/desk-1 asks about an employee but no one is on its roster for 100%" in err


def test_site_show_lists_the_settings_in_force(url, tmp_path, capsys):
    apply(tmp_path, capsys, url, SITE_TOML)
    code, out, _err = run_cli(capsys, "site", "show", "--db", url)
    assert code == 0
    assert "  office     msk  Офис на Тверской  Europe/Moscow" in out
    assert "    panel    desk-1  question=staff (staff)" in out
    assert "      roster   Елена Иванова  all day" in out
    assert "  employee   petrov: Сергей Петров" in out
    assert "MSK (revision 1)" in out


def test_site_export_is_taken_back_by_site_apply_without_a_change(url, tmp_path, capsys):
    text = SITE_TOML.replace(
        'timezone = "Europe/Moscow"', 'timezone = "Europe/Moscow"\nhours = "09:00-21:00"\ndays = "mon-sat"'
    )
    text += '\n[[roster]]\npanel = "msk/desk-1"\nemployee = "petrov"\ndays = "sat"\nhours = "10:00-16:00"\n'
    text += '\n[[roster]]\npanel = "msk/desk-1"\nemployee = "petrov"\ndays = "sun"\n'
    text = text.replace('name = "Сергей Петров"', 'name = "Сергей \\"Серж\\" Петров"\nin_question = "Сергея Петрова"')
    text = text.replace(
        '[[panels]]\nsite = "msk"\ndevice = "door"',
        '[[panels]]\nsite = "msk"\ndevice = "door"\nconversion = false\nheartbeat_s = 120',
    )
    assert apply(tmp_path, capsys, url, text)[0] == 0
    exported = tmp_path / "exported.toml"
    code, out, _err = run_cli(capsys, "site", "export", "--db", url, "-o", str(exported))
    assert code == 0 and str(exported) in out
    code, out, _err = run_cli(capsys, "site", "apply", str(exported), "--db", url)
    assert code == 0 and "no changes" in out
    # what it says is the settings, not a copy of the file: a change made since is in it
    assert 'days = "sat"' in exported.read_text() and "heartbeat_s = 120" in exported.read_text()
    assert run_cli(capsys, "site", "export", "--db", url, "-o", str(exported))[0] == 2  # never overwritten
    # to stdout as well; applied to an empty database it gives the same settings
    code, out, _err = run_cli(capsys, "site", "export", "--db", url)
    assert code == 0 and settings(out) == settings(exported.read_text())
    fresh = "sqlite:///%s" % (tmp_path / "fresh.db")
    assert run_cli(capsys, "site", "apply", str(exported), "--db", fresh)[0] == 0
    code, out, _err = run_cli(capsys, "site", "export", "--db", fresh)
    assert code == 0 and settings(out) == settings(exported.read_text())


def settings(exported):
    """An export without its comment lines (they name the time it was written)."""
    return [line for line in exported.splitlines() if not line.startswith("#")]


def test_a_site_files_problems_are_told_in_its_own_language(tmp_path, capsys, monkeypatch):
    for name in ("RATING_LANG", "LANGUAGE", "LC_ALL", "LC_MESSAGES"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LANG", "C.UTF-8")
    path = tmp_path / "site.toml"
    path.write_text(SITE_TOML.replace('lang = "en"', 'lang = "ru"').replace("{employee}?", "{employe}?"), "utf-8")
    code = cli.main(["site", "apply", str(path), "--db", "sqlite:///%s" % (tmp_path / "r.db")])
    err = capsys.readouterr().err
    assert code == 2 and "questions[0].text_ru: неизвестная подстановка {employe} (известные: {employee})" in err


def _brute_unstaffed(history, now_ms, step_ms=5 * 60000):
    """The same question, looked at every `step_ms` (the reference for site_view.unstaffed)."""
    from gateway import site_view, times

    out = []
    for site_id, device in history.panels(now_ms):
        question = history.question((history.panel(site_id, device, now_ms) or {}).get("question"), now_ms)
        if (question or {}).get("kind") != "staff":
            continue
        office = history.get("site", site_id, now_ms) or {}
        tz = history.tz(site_id)
        has_hours = bool(office.get("hours") or office.get("days"))
        open_ms = missing = 0
        for t in range(now_ms, now_ms + site_view.WEEK_MS, step_ms):
            if has_hours and not site_view._open_at(office, times.local(t, tz)):
                continue
            open_ms += step_ms
            missing += step_ms if history.employee_at(site_id, device, t) is None else 0
        if missing and (has_hours or missing == open_ms):
            out.append(("%s/%s" % (site_id, device), missing, open_ms))
    return out


@pytest.mark.parametrize(
    "zone,office_hours,shifts,now",
    [
        ("Europe/Moscow", 'hours = "09:00-21:00"', [("09:00-14:00", None)], "2025-01-06T08:00:00Z"),
        (
            "America/New_York",
            'hours = "08:00-20:00"\ndays = "mon-sat"',
            [("08:00-13:00", "mon-fri"), (None, "sat")],
            "2025-03-06T13:05:00Z",
        ),
        ("America/New_York", 'hours = "22:00-06:00"', [("23:00-05:00", None)], "2025-11-01T10:00:00Z"),
        ("Europe/Moscow", "", [("09:00-14:00", None)], "2025-01-06T08:00:00Z"),
        ("Europe/Moscow", 'days = "sat-sun"', [(None, "sun")], "2025-01-06T08:00:00Z"),
    ],
)
def test_unstaffed_time_equals_a_look_every_five_minutes(zone, office_hours, shifts, now):
    """Across DST changes (New York, March and November), overnight hours and opening days, the
    stretches between breakpoints give what looking every five minutes gives."""
    from gateway import site_view, times

    text = SITE_TOML.replace('timezone = "Europe/Moscow"', 'timezone = "%s"\n%s' % (zone, office_hours))
    text = text.replace('[[roster]]\npanel = "msk/desk-1"\nemployee = "ivanova"\nfrom = 2025-01-01T00:00:00Z\n', "")
    for hours, days in shifts:
        text += '\n[[roster]]\npanel = "msk/desk-1"\nemployee = "ivanova"\nfrom = 2025-01-01T00:00:00Z\n'
        text += ('hours = "%s"\n' % hours if hours else "") + ('days = "%s"\n' % days if days else "")
    sf = site.parse(text)
    history = site.History([(k, key, frm or 0, 1, 1 if frm else 0, site._canon(d)) for k, key, frm, d in sf.entries])
    now_ms = times.parse_instant(now)
    fast = [(p, m, o) for p, m, o, _first in site_view.unstaffed(history, now_ms)]
    assert fast == _brute_unstaffed(history, now_ms)


ALERTS_AND_REGIONS = SITE_TOML.replace(
    "[[sites]]",
    '[[regions]]\nid = "europe"\nname = "Europe"\n\n[[regions]]\nid = "russia"\nname = "Russia"\nparent = "europe"\n\n[[sites]]',
    1,
).replace('timezone = "Europe/Moscow"\n', 'timezone = "Europe/Moscow"\nregion = "russia"\n', 1) + (
    '\n[alerts]\nhours = "09:00-21:00"\nchannels = ["email"]\nsecrets = "/etc/rating/alert-secrets.toml"\n'
    '[alerts.offices.msk]\nhours = "10:00-22:00"\n'
    "[alerts.rules.negative_run]\nh = 10\n[alerts.rules.fm_unreviewed]\nenabled = false\n"
    '[alerts.email]\nhost = "smtp.example.com"\nport = 587\nfrom = "rating@example.com"\nto = ["a@example.com", "b@example.com"]\n'
    '[followups]\nhold_min = 45\n[followups.webhooks.crm]\nurl = "https://crm.example.com/hook"\noffices = ["msk"]\n'
)


def test_site_export_writes_alerts_regions_and_followups_that_site_apply_takes_back(url, tmp_path, capsys):
    assert apply(tmp_path, capsys, url, ALERTS_AND_REGIONS)[0] == 0
    code, out, _err = run_cli(capsys, "site", "show", "--db", url)
    assert code == 0 and "fm_unreviewed  enabled=false" in out and "negative_run  h=10" in out
    exported = tmp_path / "exported.toml"
    assert run_cli(capsys, "site", "export", "--db", url, "-o", str(exported))[0] == 0
    text = exported.read_text()
    assert '[alerts.offices.msk]\nhours = "10:00-22:00"' in text and 'to = ["a@example.com", "b@example.com"]' in text
    assert '[[regions]]\nid = "russia"\nname = "Russia"\nparent = "europe"' in text
    assert "[followups.webhooks.crm]\n" in text and 'url = "https://crm.example.com/hook"' in text
    code, out, _err = run_cli(capsys, "site", "apply", str(exported), "--db", url)
    assert code == 0 and "no changes" in out
