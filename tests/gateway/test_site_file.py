"""Site file: validation messages, history kept on apply, roster shifts, config push."""

import json
import os

import pytest
from gw_site_support import MIN, SITE_TOML, T0, Panel, apply_site, derived, sqlite_db, store_events  # noqa: F401

from gateway import configpush, derive, site
from protocol import messages

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def errors_of(text):
    with pytest.raises(site.SiteFileError) as info:
        site.parse(text, "bad.toml")
    return info.value.errors


def test_gw_site_example_file_parses_and_covers_every_kind():
    with open(os.path.join(REPO, "docs", "examples", "two-offices.toml"), encoding="utf-8") as f:
        sf = site.parse(f.read())
    kinds = {e[0] for e in sf.entries}
    assert kinds == set(site.KINDS)
    assert len(sf.of("site")) == 2 and 3 <= len(sf.of("panel")) <= 4
    assert {e[3]["kind"] for e in sf.of("question")} == {"staff", "office", "loyalty"}
    assert any(e[3]["name"] == "Елена Иванова" for e in sf.of("employee"))


def test_gw_site_validation_names_field_and_problem():
    text = SITE_TOML.replace('device = "exit"', 'device = "Panel 1"')
    assert "panels[1].device: 'Panel 1' is not a valid id ([a-z0-9-], 1-32 chars)" in errors_of(text)


@pytest.mark.parametrize(
    "old,new,expected",
    [
        ('question = "office"', 'question = "nope"', "panels[1].question: 'nope' is not listed in [[questions]]"),
        (
            'timezone = "Europe/Moscow"',
            'timezone = "Mars/Olympus"',
            "sites[0].timezone: 'Mars/Olympus' is not a known IANA timezone",
        ),
        ('kind = "office"', 'kind = "mood"', "questions[1].kind: must be one of staff, office, loyalty, got 'mood'"),
        ('lang = "en"', 'lang = "de"', "deployment.lang: must be one of ru, en, got 'de'"),
        ("k = 0.8", "k = 1.5", "deployment.k: must be between 0.0 and 1.0, got 1.5"),
        ("window_s = 30", "window_s = 2", "panels[0].window_s: must be between 5 and 600, got 2"),
        ("fm_minutes = 15", "fm_minutes = 7.5", "panels[0].fm_minutes: must be a whole number, got 7.5"),
        (
            'employee = "ivanova"',
            'employee = "sidorov"',
            "roster[0].employee: 'sidorov' is not listed in [[employees]]",
        ),
        ('panel = "msk/desk-1"', 'panel = "desk-1"', "roster[0].panel: 'desk-1' is not a panel of [[panels]]"),
        (
            'employee = "ivanova"\nfrom',
            'employee = "ivanova"\nhours = "9-14"\nfrom',
            "roster[0].hours: '9-14' is not a time range",
        ),
        (
            'camera = "https://nvr.local/cam/3/archive?t={iso}"',
            'camera = "https://x/{when}"',
            "panels[0].camera: bad placeholder {when}",
        ),
        ('name = "Елена Иванова"', 'name = "Елена Иванова"\nage = 30', "employees[0].age: unknown field"),
        ('[[sites]]\nid = "msk"', '[[sites]]\nid = "msk"\nfrom = "2025-01-01T10:00:00"', None),
        (
            "di_staff = 0.10",
            "di_staff = 10",
            "deployment.reference.di_staff: must be a fraction between 0 and 1, got 10",
        ),
        ("di_staff = 0.10", "di_staf = 0.1", "deployment.reference.di_staf: unknown reference value"),
        (
            "[deployment.reference]",
            "[deployment.thresholds]\ncoverage_min = 2\nmin_x = 1\n[deployment.reference]",
            "deployment.thresholds.min_x: unknown threshold (known: conversion_min, coverage_min, fm_rate_max, min_n)",
        ),
        (
            "[deployment.reference]",
            "[deployment.thresholds]\ncoverage_min = 2\n[deployment.reference]",
            "deployment.thresholds: coverage_min",
        ),
        (
            "from = 2025-01-01T00:00:00Z\n\n[deployment.reference]",
            'from = "yesterday"\n\n[deployment.reference]',
            "deployment.from: 'yesterday' is not an ISO 8601 date-time",
        ),
    ],
)
def test_gw_site_validation_errors(old, new, expected):
    assert old in SITE_TOML
    text = SITE_TOML.replace(old, new, 1)
    if expected is None:
        site.parse(text)  # a local time is read in the site's own timezone: fine
        return
    errs = errors_of(text)
    assert any(e.startswith(expected) for e in errs), errs


def test_gw_site_all_problems_reported_at_once_and_bad_toml():
    text = SITE_TOML.replace('device = "exit"', 'device = "EXIT"').replace('kind = "loyalty"', 'kind = "x"')
    assert len(errors_of(text)) == 2
    errs = errors_of("[[sites]\n")
    assert errs[0].startswith("not valid TOML")


def test_gw_site_apply_is_idempotent_and_history_is_appended(any_db):
    first = apply_site(any_db)
    assert len(first) == 11  # deployment, site, 3 questions, 2 employees, 3 panels, 1 roster
    assert apply_site(any_db, now_ms=T0 + 1000) == []
    # without deployment.from a change takes effect at the time of the apply
    no_from = SITE_TOML.replace("from = 2025-01-01T00:00:00Z\n\n[deployment.reference]", "\n[deployment.reference]")
    assert apply_site(any_db, no_from, now_ms=T0 + 2000) == []
    changed = no_from.replace('question = "staff"', 'question = "loyalty"')
    new = apply_site(any_db, changed, now_ms=T0 + 60 * MIN)
    assert [(k, key, frm) for k, key, frm, _e, _d in new] == [("panel", "msk/desk-1", T0 + 60 * MIN)]
    h = site.load(any_db)
    assert h.panel("msk", "desk-1", T0)["question"] == "staff"
    assert h.panel("msk", "desk-1", T0 + 61 * MIN)["question"] == "loyalty"
    # the first apply had explicit froms everywhere except panels... both rows are kept
    assert len(h.rows("panel", "msk/desk-1")) == 2
    removed = apply_site(
        any_db,
        changed.replace('[[panels]]\nsite = "msk"\ndevice = "door"\nquestion = "loyalty"\n', ""),
        now_ms=T0 + 120 * MIN,
    )
    assert [(k, key, d) for k, key, _f, _e, d in removed] == [("panel", "msk/door", None)]
    h = site.load(any_db)
    assert ("msk", "door") in h.panels(T0 + 100 * MIN) and ("msk", "door") not in h.panels(T0 + 121 * MIN)
    revs = any_db.query("SELECT rev, changes FROM site_revisions ORDER BY rev")
    assert [r["changes"] for r in revs] == [11, 1, 1]


def test_gw_site_first_apply_covers_earlier_events_but_explicit_from_does_not():
    rows = [
        ("panel", "s/d", 5000, 1, 0, json.dumps({"question": "q"})),
        ("roster", "s/d#", 5000, 1, 1, json.dumps({"employee": "e"})),
    ]
    h = site.History(rows)
    assert h.panel("s", "d", 1000)["question"] == "q"  # stamped at apply time: covers the past
    assert h.employee_at("s", "d", 1000) is None  # explicit from: not before it
    assert h.employee_at("s", "d", 5000) == "e"


def roster_file(entries):
    return SITE_TOML.split("[[roster]]")[0] + "".join("[[roster]]\n%s\n" % e for e in entries)


def test_gw_site_shifts_and_supersession():
    text = roster_file(
        [
            'panel = "msk/desk-1"\nemployee = "ivanova"\nfrom = 2025-01-06T00:00:00',
            'panel = "msk/desk-1"\nemployee = "petrov"\nhours = "15:00-23:59"\nfrom = 2025-01-06T00:00:00',
            'panel = "msk/desk-1"\nemployee = "petrov"\nfrom = 2025-01-07T00:00:00',
            'panel = "msk/desk-1"\nemployee = "ivanova"\ndays = ["sat"]\nhours = "10:00-12:00"\nfrom = 2025-01-07T00:00:00',
        ]
    )
    sf = site.parse(text)
    h = site.History(
        [(k, key, f if f is not None else 0, 1, int(f is not None), site._canon(d)) for k, key, f, d in sf.entries]
    )
    msk = 3 * 3600000  # Moscow is UTC+3
    monday = 1736121600000 - msk  # 2025-01-06T00:00 Moscow
    hour = 3600000
    assert h.employee_at("msk", "desk-1", monday + 10 * hour) == "ivanova"
    assert h.employee_at("msk", "desk-1", monday + 16 * hour) == "petrov"
    assert h.employee_at("msk", "desk-1", monday + 23 * hour + 59 * MIN + 59000) == "petrov"
    assert h.employee_at("msk", "desk-1", monday - hour) is None
    # Tuesday: the new all-day entry ends Monday's afternoon shift
    assert h.employee_at("msk", "desk-1", monday + 24 * hour + 10 * hour) == "petrov"
    assert h.employee_at("msk", "desk-1", monday + 24 * hour + 16 * hour) == "petrov"
    saturday = monday + 5 * 24 * hour
    assert h.employee_at("msk", "desk-1", saturday + 11 * hour) == "ivanova"
    assert h.employee_at("msk", "desk-1", saturday + 13 * hour) == "petrov"


def test_gw_site_roster_change_mid_day_attributes_polls(tmp_path):
    db = sqlite_db(tmp_path)
    apply_site(db)
    p = Panel()
    p.poll(T0, "yes")
    p.poll(T0 + 60 * MIN, "no")
    p.poll(T0 + 180 * MIN)
    store_events(db, p.events)
    derive.update(db, [("msk", "desk-1")], T0 + 300 * MIN)
    # at 13:00 Moscow (T0 + 2 h) Petrov takes over the panel: told a day later, history kept
    changed = SITE_TOML + '\n[[roster]]\npanel = "msk/desk-1"\nemployee = "petrov"\nfrom = 2025-01-06T13:00:00+03:00\n'
    apply_site(db, changed, now_ms=T0 + 26 * 60 * MIN)
    derive.update(db, [("msk", "desk-1")], T0 + 26 * 60 * MIN)
    polls = db.query("SELECT open_seq, employee, answer, question, kind, video_url FROM polls ORDER BY open_seq")
    assert [(r["employee"], r["answer"]) for r in polls] == [("ivanova", "yes"), ("ivanova", "no"), ("petrov", None)]
    assert polls[0]["video_url"] == "https://nvr.local/cam/3/archive?t=2025-01-06T11:00:00+03:00"
    assert {r["kind"] for r in polls} == {"staff"}
    before = derived(db)
    derive.rebuild(db, T0 + 26 * 60 * MIN)
    assert derived(db) == before


def test_gw_site_config_push_versions_and_language(any_db):
    apply_site(any_db)
    due = configpush.due(any_db, T0)
    by_topic = {t: messages.decode_config(p) for t, p in due}
    desk = by_topic["rating/v1/msk/desk-1/config"]
    assert desk == {
        "v": 1,
        "ver": 1,
        "question": "Are you satisfied with the work of Елена Иванова?",
        "kind": "staff",
        "window_s": 30,
        "rearm_s": 3,
        "fm_minutes": 15,
    }
    for topic, payload in due:
        configpush.mark_pushed(any_db, topic, payload, T0)
    assert configpush.due(any_db, T0 + 1000) == []
    apply_site(any_db, SITE_TOML.replace('lang = "en"', 'lang = "ru"'), now_ms=T0 + 10 * MIN)
    due = dict(configpush.due(any_db, T0 + 11 * MIN, root="shop/v1"))
    assert set(due) == {"shop/v1/msk/desk-1/config", "shop/v1/msk/exit/config", "shop/v1/msk/door/config"}
    desk = messages.decode_config(due["shop/v1/msk/desk-1/config"])
    assert desk["ver"] == 2 and desk["question"] == "Довольны ли Вы работой менеджера Елена Иванова?"


def test_gw_site_config_push_uses_question_form_of_name(tmp_path):
    db = sqlite_db(tmp_path)
    apply_site(
        db,
        SITE_TOML.replace('lang = "en"', 'lang = "ru"').replace(
            'name = "Елена Иванова"', 'name = "Елена Иванова"\nin_question = "Елены Ивановой"'
        ),
    )
    due = dict(configpush.due(db, T0))
    desk = messages.decode_config(due["rating/v1/msk/desk-1/config"])
    assert desk["question"] == "Довольны ли Вы работой менеджера Елены Ивановой?"
    # nobody on the roster: the placeholder disappears, the text stays readable
    h = site.load(db)
    assert (
        configpush.desired(h, "msk", "desk-1", T0 - 400 * 24 * 60 * MIN)["question"]
        == "Довольны ли Вы работой менеджера?"
    )


def test_gw_site_cli_apply_dry_run_and_errors(tmp_path, capsys):
    from rating import cli

    url = "sqlite:///%s" % (tmp_path / "rating.db")
    good = tmp_path / "site.toml"
    good.write_text(SITE_TOML, encoding="utf-8")
    assert cli.main(["site", "apply", str(good), "--db", url, "--dry-run"]) == 0
    assert "would record 11 changes:" in capsys.readouterr().out
    assert cli.main(["site", "apply", str(good), "--db", url]) == 0
    assert "recorded 11 changes:" in capsys.readouterr().out
    assert cli.main(["site", "apply", str(good), "--db", url]) == 0
    assert "no changes" in capsys.readouterr().out
    bad = tmp_path / "bad.toml"
    bad.write_text(SITE_TOML.replace('device = "exit"', 'device = "Panel 1"'), encoding="utf-8")
    assert cli.main(["site", "apply", str(bad), "--db", url]) == 2
    err = capsys.readouterr().err
    assert "panels[1].device: 'Panel 1' is not a valid id" in err and "docs/site-file.md" in err
    assert cli.main(["site", "apply", str(tmp_path / "missing.toml"), "--db", url]) == 2
    assert "cannot read the site file" in capsys.readouterr().err
    db = sqlite_db(tmp_path)
    assert db.scalar("SELECT COUNT(*) FROM site_revisions") == 1


@pytest.mark.parametrize(
    "camera",
    ["https://nvr/{unix:>50000000}", "https://nvr/{iso.year}", "https://nvr/{0}", "https://nvr/{iso", "x}", "{}"],
)
def test_a_camera_template_takes_only_the_documented_placeholders(camera):
    """str.format turned {unix:>50000000} into a 50 MB link per poll and allowed attribute access."""
    text = SITE_TOML.replace('camera = "https://nvr.local/cam/3/archive?t={iso}"', 'camera = "%s"' % camera, 1)
    (err,) = [e for e in errors_of(text) if ".camera" in e]
    assert "bad placeholder" in err


def test_a_camera_link_is_filled_in_and_an_old_stored_template_is_not_expanded():
    msk = site.times.zone("Europe/Moscow")
    url = site.camera_url("https://nvr/a?t={iso}&s={unix}&ms={unix_ms}", 1736143200123, msk)
    assert url == "https://nvr/a?t=2025-01-06T09:00:00+03:00&s=1736143200&ms=1736143200123"
    # a template stored before templates were checked is left as it is, never padded out
    assert site.camera_url("https://nvr/{unix:>50000000}", 1736143200123) == "https://nvr/{unix:>50000000}"
    assert site.camera_problem("x" * (site.MAX_CAMERA + 1))


def test_an_empty_site_file_removes_nothing_without_remove_all(tmp_path, capsys):
    from rating import cli

    url = "sqlite:///%s" % (tmp_path / "rating.db")
    good, empty = tmp_path / "site.toml", tmp_path / "empty.toml"
    good.write_text(SITE_TOML, encoding="utf-8")
    empty.write_text("", encoding="utf-8")
    assert cli.main(["site", "apply", str(good), "--db", url]) == 0
    capsys.readouterr()
    for extra in ([], ["--dry-run"]):
        assert cli.main(["site", "apply", str(empty), "--db", url, *extra]) == 2
        err = capsys.readouterr().err
        assert "--remove-all" in err and "msk/desk-1" in err
    db = sqlite_db(tmp_path)
    assert db.scalar("SELECT COUNT(*) FROM site_revisions") == 1
    assert site.load(db).panels(2**62)
    # a file that keeps the offices but drops every panel is refused the same way
    no_panels = SITE_TOML.split("[[panels]]")[0]
    with pytest.raises(site.SiteFileError, match="remove-all"):
        site.apply(db, site.parse(no_panels), T0)
    assert cli.main(["site", "apply", str(empty), "--db", url, "--remove-all", "--lang", "en"]) == 0
    assert "removed" in capsys.readouterr().out
    assert site.load(sqlite_db(tmp_path)).panels(2**62) == []
