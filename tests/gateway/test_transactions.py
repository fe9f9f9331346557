"""POS sales in the store (gateway/transactions.py) on SQLite and PostgreSQL: stored once per
(office, id), raw card numbers never stored, matches kept as polls and sales arrive equal a
full rebuild, unmatched polls and sales, exact conversion per panel and employee, loyalty
references purged by the worker, the site file's till, and the CSV import."""

import json

import pytest
from gw_site_support import MIN, SITE_TOML, T0, Panel, apply_site, open_db, run_cli, store_events

from gateway import derive, doubt, site, transactions, worker

TILL_SITE = SITE_TOML.replace('device = "desk-1"\n', 'device = "desk-1"\ntill = "till-1"\n', 1)


def sale(tx_id, at_ms, till="till-1", loyalty=None):
    tx = {"id": tx_id, "till": till, "t": at_ms}
    if loyalty is not None:
        tx["loyalty"] = loyalty
    return tx


def put(db, sales, now_ms=T0 + 3 * 3600000, site_id="msk"):
    with db.transaction():
        return transactions.store_many(db, [(site_id, transactions.check(site_id, s)) for s in sales], "test", now_ms)


def matches(db):
    return sorted(
        (r["device"], r["open_seq"], r["tx_id"])
        for r in db.query("SELECT device, open_seq, tx_id FROM tx_matches ORDER BY device, open_seq")
    )


@pytest.fixture
def office(any_db):
    apply_site(any_db, TILL_SITE)
    return any_db


def polls_at(db, minutes, answer="yes"):
    """desk-1 polls at T0 + each minute; derived now. Returns the panel (seqs 1, 3, 5 ...)."""
    p = Panel()
    for m in minutes:
        p.poll(T0 + m * MIN, answer)
    store_events(db, p.events)
    derive.update(db, [("msk", "desk-1")], T0 + 3 * 3600000)
    return p


def test_a_sale_is_stored_once_however_often_it_comes(office):
    assert put(office, [sale("R-1", T0), sale("R-1", T0)]) == 1
    assert put(office, [sale("R-1", T0 + MIN)]) == 0  # the first arrival wins
    assert office.query("SELECT tx_id, at_ms FROM transactions") == [{"tx_id": "R-1", "at_ms": T0}]


def test_a_raw_card_number_is_never_stored_and_the_same_card_gives_the_same_reference(office):
    put(office, [sale("R-1", T0, loyalty="4276 1234 5678 9012"), sale("R-2", T0 + MIN, loyalty="4276123456789012")])
    put(office, [sale("R-3", T0 + 2 * MIN, loyalty="crm-7f3a")])
    refs = {r["tx_id"]: r["loyalty"] for r in office.query("SELECT tx_id, loyalty FROM transactions")}
    assert refs["R-1"] == refs["R-2"] and refs["R-1"].startswith("h:") and "4276" not in refs["R-1"]
    assert refs["R-3"] == "crm-7f3a"  # already pseudonymous: kept as the POS sent it


def test_bad_sales_are_refused_naming_the_field():
    for tx, field in (
        ({"id": "R 1", "till": "till-1", "t": T0}, "id"),
        ({"id": "R-1", "till": "Касса 1", "t": T0}, "till"),
        ({"id": "R-1", "till": "till-1", "t": 12}, "t"),
        ({"id": "R-1", "till": "till-1"}, "t"),
    ):
        with pytest.raises(transactions.TransactionError) as exc:
            transactions.check("msk", tx)
        assert str(exc.value).startswith(field + ":"), exc.value


def test_polls_and_sales_match_whichever_arrives_first_and_a_rebuild_gives_the_same(office):
    put(office, [sale("R-1", T0 - 30_000)])  # before its poll is derived
    polls_at(office, [0, 1, 30])  # seqs 1, 3, 5 (answers 2, 4, 6)
    put(office, [sale("R-2", T0 + 29 * MIN)])  # after
    got = matches(office)
    assert got == [("desk-1", 1, "R-1"), ("desk-1", 5, "R-2")]
    derive.rebuild(office, T0 + 3 * 3600000)
    assert matches(office) == got
    assert transactions.match_of(office, "msk", "desk-1", 1) == {
        "tx_id": "R-1",
        "at_ms": T0 - 30_000,
        "till": "till-1",
        "loyalty": None,
    }
    assert transactions.match_of(office, "msk", "desk-1", 3) is None


def test_a_late_sale_between_matched_ones_rematches_from_its_time_on(office):
    polls_at(office, [0, 20, 40])  # seqs 1, 3, 5
    put(office, [sale("R-1", T0 - MIN), sale("R-3", T0 + 39 * MIN)])
    assert matches(office) == [("desk-1", 1, "R-1"), ("desk-1", 5, "R-3")]
    put(office, [sale("R-2", T0 + 19 * MIN)])
    assert matches(office) == [("desk-1", 1, "R-1"), ("desk-1", 3, "R-2"), ("desk-1", 5, "R-3")]


def test_unmatched_polls_and_sales_and_the_conversion_per_panel_and_employee(office):
    polls_at(office, [0, 1, 30])  # the poll a minute later has no sale
    put(office, [sale("R-1", T0 - 20_000), sale("R-2", T0 + 29 * MIN), sale("R-9", T0 + 90 * MIN)])
    put(office, [sale("X-1", T0 + 5 * MIN, till="till-9")])  # no panel stands there: left out
    history = site.load(office)
    polls, sales = transactions.unmatched(office, history, "msk")
    assert [(p["device"], p["open_seq"]) for p in polls] == [("desk-1", 3)]
    assert [(s["tx_id"], s["panel"], s["employee"]) for s in sales] == [("R-9", "desk-1", "ivanova")]
    rows = transactions.conversion_rows(office, history, "msk", "device")
    assert [
        (r["key"], r["transactions"], r["polls"], r["matched"], r["unmatched_polls"], r["unmatched_sales"])
        for r in rows
    ] == [("desk-1", 3, 3, 2, 1, 1)]
    by_emp = transactions.conversion_rows(office, history, "msk", "employee")
    assert [(r["key"], r["transactions"], r["matched"]) for r in by_emp] == [("ivanova", 3, 2)]
    # the doubt scorer marks exactly that poll
    ids = transactions.no_sale_ids(office, history, ["msk"])
    assert ids == {"msk/desk-1/3"}
    rows = derive.panel_polls_between(office, "msk", "desk-1")
    scored = doubt.score(rows, no_sale=ids)
    assert "no_sale" in scored["msk/desk-1/3"].reasons and "no_sale" not in scored["msk/desk-1/1"].reasons


def test_a_poll_the_pos_feed_has_not_reached_yet_is_not_called_unmatched(office):
    polls_at(office, [0, 60])
    put(office, [sale("R-1", T0 - 20_000)])  # the feed stops before the second poll
    polls, _sales = transactions.unmatched(office, site.load(office), "msk")
    assert polls == []


def test_panels_without_a_till_feed_take_no_part(office):
    p = Panel(device="exit")
    p.poll(T0, "no")
    store_events(office, p.events)
    derive.update(office, [("msk", "exit")], T0 + 3600000)
    put(office, [sale("R-1", T0 - 20_000)])
    polls, _ = transactions.unmatched(office, site.load(office), "msk")
    assert polls == [] and matches(office) == []
    # a sale naming the panel itself is its till
    put(office, [sale("R-2", T0 - 10_000, till="exit")])
    assert matches(office) == [("exit", 1, "R-2")]


def test_the_worker_wipes_loyalty_references_older_than_the_site_files_days(office, tmp_path):
    apply_site(office, TILL_SITE.replace('lang = "en"\n', 'lang = "en"\nloyalty_days = 30\n', 1), T0 + MIN)
    put(office, [sale("R-1", T0, loyalty="crm-1"), sale("R-2", T0 + 40 * 86400000, loyalty="crm-2")])
    w = worker.Worker(office.url if hasattr(office, "url") else "", "rating/v1")
    w._purge_loyalty(office, T0 + 45 * 86400000)
    refs = {r["tx_id"]: r["loyalty"] for r in office.query("SELECT tx_id, loyalty FROM transactions")}
    assert refs == {"R-1": None, "R-2": "crm-2"} and w.stats["loyalty_purged"] == 1


def test_the_site_file_till_must_be_an_id():
    bad = TILL_SITE.replace('till = "till-1"', 'till = "Касса 1"')
    with pytest.raises(site.SiteFileError) as exc:
        site.parse(bad)
    assert "panels[0].till" in str(exc.value) and "till" in str(exc.value)
    with pytest.raises(site.SiteFileError) as exc:
        site.parse(TILL_SITE.replace('lang = "en"\n', 'lang = "en"\nloyalty_days = 0\n', 1))
    assert "deployment.loyalty_days" in str(exc.value)


# ---- `rating transactions import` ----------------------------------------------------------------


@pytest.fixture
def url(any_db_url):
    u = any_db_url
    db = open_db(u)
    apply_site(db, TILL_SITE)
    db.close()
    return u


def test_a_russian_excel_export_is_imported_in_the_offices_timezone_once(url, tmp_path, capsys):
    text = (
        "site;till;time;id;loyalty\r\nmsk;till-1;06.01.2025 10:59:30;R-1;crm-1\r\nmsk;till-1;2025-01-06T11:20;R-2;\r\n"
    )
    path = tmp_path / "sales.csv"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    code, out, err = run_cli(capsys, "transactions", "import", str(path), "--db", url)
    assert (code, err) == (0, "") and "2 sales read, 2 sales new" in out, out
    code, out, err = run_cli(capsys, "transactions", "import", str(path), "--db", url)
    assert code == 0 and "0 sales new" in out
    db = open_db(url)
    try:
        rows = db.query("SELECT tx_id, at_ms, loyalty FROM transactions ORDER BY tx_id")
    finally:
        db.close()
    # 10:59:30 Moscow = 07:59:30 UTC
    assert rows == [
        {"tx_id": "R-1", "at_ms": T0 - 30_000, "loyalty": "crm-1"},
        {"tx_id": "R-2", "at_ms": T0 + 20 * MIN, "loyalty": None},
    ]


def test_a_file_with_bad_lines_imports_nothing_and_lists_every_problem(url, tmp_path, capsys):
    path = tmp_path / "bad.csv"
    path.write_text(
        "site,till,time,id\nmsk,till-1,2025-01-06T11:00,R-1\nspb,till-1,2025-01-06T11:00,R-2\n"
        "msk,Касса 1,2025-01-06T11:00,R-3\nmsk,till-1,yesterday,R-4\nmsk,till-1,2025-01-06T11:00,R 5\n",
        encoding="utf-8",
    )
    code, out, err = run_cli(capsys, "transactions", "import", str(path), "--db", url)
    assert code == 2 and "Traceback" not in err
    for line in ("line 3: site", "line 4: till", "line 5: time", "line 6: id"):
        assert line in err, err
    db = open_db(url)
    try:
        assert transactions.count(db) == 0
    finally:
        db.close()
    path.write_text("site,till,when,id\n", encoding="utf-8")
    code, _out, err = run_cli(capsys, "transactions", "import", str(path), "--db", url)
    assert code == 2 and "missing column(s) time" in err and "unknown column(s) when" in err
    path.write_bytes("site,till,time,id\nmsk,till-1,06.01.2025 11:00,Чек\n".encode("cp1251"))
    code, _out, err = run_cli(capsys, "transactions", "import", str(path), "--db", url)
    assert code == 2 and "CSV UTF-8" in err


def test_the_report_and_unmatched_listing_show_the_matches_never_the_loyalty_reference(url, capsys):
    db = open_db(url)
    try:
        polls_at(db, [0, 1])
        put(db, [sale("R-1", T0 - 20_000, loyalty="crm-secret"), sale("R-9", T0 + 30 * MIN, loyalty="crm-other")])
    finally:
        db.close()
    code, out, err = run_cli(capsys, "transactions", "unmatched", "--db", url)
    assert code == 0, err
    assert "msk/desk-1/3" in out and "R-9" in out and "crm-" not in out
    assert "1 poll without a sale, 1 sale without a poll" in out
    code, out, err = run_cli(capsys, "report", "--by", "device", "--db", url)
    assert code == 0, err
    assert "exact conversion = matched polls / sales" in out and "crm-" not in out
    line = next(x for x in out.splitlines() if x.startswith("msk ") and " desk-1 " in x)
    assert line.split()[2:7] == ["2", "2", "1", "1", "1"], line
    code, out, err = run_cli(capsys, "report", "--format", "json", "--db", url)
    import json

    pos = json.loads(out)["pos"]
    assert [(r["key"], r["transactions"], r["matched"]) for r in pos["by_device"]] == [("desk-1", 2, 1)]
    assert pos["by_device"][0]["conversion"]["value"] == 0.5


def test_a_panel_moved_to_another_till_is_matched_there_from_then_on(office):
    polls_at(office, [0, 60])  # seqs 1 and 3
    put(office, [sale("R-1", T0 - 20_000), sale("T2-1", T0 + 60 * MIN - 20_000, till="till-2")])
    assert matches(office) == [("desk-1", 1, "R-1")]
    moved = TILL_SITE.replace('till = "till-1"\n', 'till = "till-2"\nfrom = 2025-01-06T08:30:00Z\n', 1)
    apply_site(office, moved, T0 + 2 * 3600000)
    derive.update(office, [("msk", "desk-1")], T0 + 3 * 3600000)
    assert matches(office) == [("desk-1", 1, "R-1"), ("desk-1", 3, "T2-1")]
    derive.rebuild(office, T0 + 3 * 3600000)
    assert matches(office) == [("desk-1", 1, "R-1"), ("desk-1", 3, "T2-1")]


# ---- ingest: the MQTT door --------------------------------------------------------------------


def test_ingest_keeps_a_sale_it_could_not_commit_and_stores_it_once_later(office):
    """flush() raises when the sales table is gone (not the message's fault): nothing of the
    batch is committed, so the service PUBACKs nothing and the sale stays buffered; once the
    table is back the same batch goes in, and a redelivery is a duplicate."""
    from gateway import ingest
    from protocol import messages, topics

    ing = ingest.Ingestor(office, "rating/v1")
    topic = topics.transactions_topic("rating/v1", "msk")
    body = messages.encode_transaction({"id": "R-1", "till": "till-1", "t": T0 - 20_000})
    ing.handle(topic, body, T0)
    office.execute("ALTER TABLE transactions RENAME TO transactions_away")
    with pytest.raises(Exception, match="transactions"):  # no such table / relation
        ing.flush()
    assert len(ing) == 1 and ing.stats["transactions"] == 0
    office.execute("ALTER TABLE transactions_away RENAME TO transactions")
    ing.flush()
    ing.handle(topic, body, T0 + 1000)  # the broker delivers it again
    ing.flush()
    assert transactions.count(office) == 1
    assert (ing.stats["transactions"], ing.stats["tx_duplicates"], ing.stats["dead_letters"]) == (1, 1, 0)


# ---- the matching window as a site-file setting ------------------------------------------------


def _window(minutes_before, minutes_after=None, from_="2025-01-06T08:30:00Z"):
    dep = 'lang = "en"\nk = 0.8\nfrom = %s\npos_before_minutes = %d\n' % (from_, minutes_before)
    if minutes_after is not None:
        dep += "pos_after_minutes = %d\n" % minutes_after
    return TILL_SITE.replace('lang = "en"\nk = 0.8\nfrom = 2025-01-01T00:00:00Z\n', dep, 1)


def test_a_wider_window_from_a_date_on_matches_the_polls_after_it_and_leaves_the_earlier_ones(office):
    polls_at(office, [0, 60])  # seqs 1 and 3
    put(office, [sale("R-1", T0 - 15 * MIN), sale("R-2", T0 + 45 * MIN)])  # 15 minutes before each press
    assert matches(office) == []  # the default window: 10 minutes
    assert _window(20) != TILL_SITE
    apply_site(office, _window(20), T0 + 2 * 3600000)  # 20 minutes from 08:30 UTC (after the first poll)
    derive.update(office, [("msk", "desk-1")], T0 + 3 * 3600000)
    assert matches(office) == [("desk-1", 3, "R-2")]
    history = site.load(office)
    assert transactions.rules_at(history, T0).before_ms == 10 * MIN
    assert transactions.rules_at(history, T0 + 60 * MIN).before_ms == 20 * MIN
    assert transactions.rules_at(history, T0 + 60 * MIN).skew_ms == 2 * MIN  # not given: the default
    derive.rebuild(office, T0 + 3 * 3600000)
    assert matches(office) == [("desk-1", 3, "R-2")]
    put(office, [sale("R-3", T0 + 59 * MIN + 30_000)])  # a later sale, closer: incremental re-match
    assert matches(office) == [("desk-1", 3, "R-3")]


def test_the_window_settings_are_checked_with_one_line_per_problem():
    for text, field in (
        (_window(0), "deployment.pos_before_minutes"),
        (_window(10, 31), "deployment.pos_after_minutes"),
        (_window(10).replace("pos_before_minutes = 10", 'pos_before_minutes = "ten"'), "deployment.pos_before_minutes"),
    ):
        with pytest.raises(site.SiteFileError) as exc:
            site.parse(text)
        assert field in str(exc.value) and len(str(exc.value).strip().splitlines()) <= 2, str(exc.value)
    parsed = site.parse(_window(15, 0))
    assert parsed is not None


def test_the_report_names_the_window_in_force(url, capsys):
    db = open_db(url)
    try:
        apply_site(db, _window(15, 1, "2025-01-01T00:00:00Z"), T0)
        polls_at(db, [0])
        put(db, [sale("R-1", T0 - 12 * MIN)])
    finally:
        db.close()
    code, out, err = run_cli(capsys, "report", "--format", "json", "--db", url)
    assert code == 0, err
    pos = json.loads(out)["pos"]
    assert pos["rules"] == {"before_ms": 15 * MIN, "skew_ms": 1 * MIN}
    assert pos["by_device"][0]["matched"] == 1  # 12 minutes before: within 15
