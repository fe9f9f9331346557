"""Scheduled reports: the week's report of an account's offices reaches a real SMTP server
started here, as HTML with a text alternative, its charts inline as PNG parts the HTML shows by
cid:, and the full report attached as .xlsx and PDF,
its numbers those of `rating report --format json`; a server that is down loses nothing and
the mail arrives once; failures are shown by `rating reports outbox`."""

import email
import email.policy
import io
import json

import openpyxl
import pypdf
import pytest
from alert_receivers import SmtpServer, free_port
from gw_site_support import MIN, T0
from report_support import chain_db, check_inline_charts

from gateway import reportmail, users
from gateway.cli_common import open_db
from rating import cli

DAY = 24 * 60 * MIN
# Monday 2025-01-13 09:00 in Moscow: the week of the polls (2025-W02, Jan 6-12) has closed
NEXT_MONDAY = T0 + 7 * DAY - 2 * 60 * MIN


@pytest.fixture
def deployment(tmp_path):
    port = free_port()
    extra = (
        '\n[alerts]\n\n[alerts.email]\nhost = "127.0.0.1"\nport = %d\nstarttls = false\n'
        'from = "rating@example.org"\nto = "ops@example.org"\n' % port
    )
    url = chain_db(tmp_path, extra)
    db = open_db(url)
    users.add(db, "director", "a-long-password-1", "store-manager", T0, offices=["msk"], lang="en")
    yield url, db, port
    db.close()


def run(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def parts(raw):
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    found = {}
    for part in msg.walk():
        if part.is_multipart():
            continue
        name = part.get_filename() or part.get_content_type()
        found[name] = part.get_content()
    return msg, found


def test_the_weekly_report_arrives_with_its_parts_and_the_reports_numbers(deployment, capsys):
    url, db, port = deployment
    code, out, err = run(
        capsys,
        "reports",
        "schedule",
        "add",
        "--db",
        url,
        "--user",
        "director",
        "--every",
        "week",
        "--to",
        "boss@example.org",
    )
    assert code == 0, err
    server = SmtpServer(port)
    try:
        assert reportmail.send_due(db, NEXT_MONDAY) == {"queued": 1, "sent": 1, "failed": 0, "pending": 0}
        assert len(server.messages) == 1
        mail_from, rcpt, raw = server.messages[0]
    finally:
        server.close()
    assert mail_from == "<rating@example.org>" and rcpt == ["<boss@example.org>"]
    msg, found = parts(raw)
    assert msg["Subject"] == "KPI report (weekly): 2025-W02"
    assert msg["Message-ID"] == "<report-1-2025-W02@rating.invalid>"
    assert set(found) == {"text/plain", "text/html", "image/png", "rating-2025-W02.xlsx", "rating-2025-W02.pdf"}
    check_inline_charts(msg)

    code, out, _ = run(
        capsys, "report", "--db", url, "--format", "json", "--from", "2025-01-06", "--to", "2025-01-12", "--lang", "en"
    )
    data = json.loads(out)
    row = data["rows"][0]
    di = row["kpi"]["di_staff"]
    for body in (found["text/plain"], found["text/html"]):
        assert row["label"] in body and di["text"] in body
        assert "(Polls: %d)" % row["polls"]["valid"] in body or ">%d<" % row["polls"]["valid"] in body
    assert "Range: 2025-01-06 — 2025-01-13" in found["text/plain"]
    assert "Europe/Moscow" in found["text/html"]

    sheet = openpyxl.load_workbook(io.BytesIO(found["rating-2025-W02.xlsx"]))["Offices"]
    header = [c.value for c in sheet[1]]
    values = [c.value for c in sheet[2]]
    assert values[header.index("DI-staff")] == pytest.approx(di["value"])
    assert values[header.index("Polls")] == row["polls"]["valid"]

    pdf = pypdf.PdfReader(io.BytesIO(found["rating-2025-W02.pdf"]))
    images = sum(len(p.images) for p in pdf.pages)
    assert images == len([p for p in msg.walk() if p.get_content_type() == "image/png"])  # the mail's charts
    text = " ".join(" ".join(p.extract_text() for p in pdf.pages).split())
    assert row["label"] in text and di["text"].split(" (")[0] in text

    # the next pass has nothing new: the week is queued once
    assert reportmail.send_due(db, NEXT_MONDAY + 3600_000) == {"queued": 0, "sent": 0, "failed": 0, "pending": 0}


def test_a_server_that_is_down_for_a_while_loses_nothing_and_the_mail_arrives_once(deployment, capsys):
    url, db, port = deployment
    reportmail.add_schedule(db, "week", ["boss@example.org"], T0, username="director")
    # nobody listens on the port yet
    assert reportmail.send_due(db, NEXT_MONDAY) == {"queued": 1, "sent": 0, "failed": 1, "pending": 1}
    code, out, _ = run(capsys, "reports", "outbox", "--db", url, "--lang", "en")
    assert code == 0 and "failing" in out and "ConnectionRefusedError" in out and "next try" in out
    (row,) = reportmail.outbox(db)
    assert row["attempts"] == 1 and row["delivered_ms"] is None
    assert row["next_ms"] == NEXT_MONDAY + 10_000  # back-off: 10 s, doubling

    server = SmtpServer(port)
    try:
        # still backing off: not tried
        assert reportmail.send_due(db, NEXT_MONDAY + 5_000)["sent"] == 0
        assert server.messages == []
        assert reportmail.send_due(db, NEXT_MONDAY + 11_000) == {"queued": 0, "sent": 1, "failed": 0, "pending": 0}
        assert reportmail.send_due(db, NEXT_MONDAY + 3600_000)["sent"] == 0
        assert len(server.messages) == 1
    finally:
        server.close()
    code, out, _ = run(capsys, "reports", "outbox", "--db", url, "--lang", "en")
    assert "sent" in out and "2 attempts" in out


def test_the_report_covers_the_accounts_offices_only(deployment):
    url, db, port = deployment
    users.add(db, "elsewhere", "a-long-password-2", "store-manager", T0, offices=["nowhere"], lang="en")
    reportmail.add_schedule(db, "week", ["other@example.org"], T0, username="elsewhere")
    server = SmtpServer(port)
    try:
        reportmail.send_due(db, NEXT_MONDAY)
        ((_, _, raw),) = server.messages
    finally:
        server.close()
    _, found = parts(raw)
    assert "No polls in the chosen period." in found["text/plain"]


def test_a_disabled_account_gets_nothing_and_the_schedule_says_why(deployment, capsys):
    url, db, port = deployment
    reportmail.add_schedule(db, "day", ["boss@example.org"], T0, username="director")
    users.set_disabled(db, "director", True, T0)
    assert reportmail.send_due(db, NEXT_MONDAY)["queued"] == 0
    code, out, _ = run(capsys, "reports", "schedule", "list", "--db", url, "--lang", "en")
    assert "the account director is disabled or gone" in out


def test_a_role_schedule_covers_the_offices_its_accounts_see(deployment, capsys):
    url, db, port = deployment
    users.add(db, "other", "a-long-password-2", "store-manager", T0, offices=["nowhere"])
    users.add(db, "analyst", "a-long-password-3", "analyst", T0, offices=["nowhere"])
    code, _, err = run(
        capsys,
        "reports",
        "schedule",
        "add",
        "--db",
        url,
        "--role",
        "store-manager",
        "--every",
        "week",
        "--to",
        "sm@example.org",
    )
    assert code == 0, err
    reportmail.add_schedule(db, "week", ["an@example.org"], T0, role="analyst")
    server = SmtpServer(port)
    try:
        assert reportmail.send_due(db, NEXT_MONDAY)["sent"] == 2
        bodies = {m[1][0]: parts(m[2])[1]["text/plain"] for m in server.messages}
    finally:
        server.close()
    # the store managers together see msk (director) and nowhere (other); the analyst only nowhere
    assert "(Polls: 36)" in bodies["<sm@example.org>"] or "(Опросы: 36)" in bodies["<sm@example.org>"]
    assert "36" not in bodies["<an@example.org>"].split("\n\n", 1)[1]
    code, out, _ = run(capsys, "reports", "schedule", "list", "--db", url, "--lang", "en")
    assert "role:store-manager" in out and "role:analyst" in out
    with pytest.raises(ValueError, match="role 'boss'"):
        reportmail.add_schedule(db, "week", ["a@b.org"], T0, role="boss")


def test_periods_close_in_local_time():
    import datetime as dt

    now = dt.datetime(2025, 1, 13, 0, 30)  # a Monday, just after midnight
    assert reportmail.closed_period("day", now)[0] == "2025-01-12"
    assert reportmail.closed_period("week", now)[:2] == ("2025-W02", dt.datetime(2025, 1, 6))
    assert reportmail.closed_period("month", now)[1:] == (dt.datetime(2024, 12, 1), dt.datetime(2025, 1, 1))


def test_schedule_commands_and_one_line_errors(deployment, capsys):
    url, db, port = deployment
    code, _, err = run(
        capsys, "reports", "schedule", "add", "--db", url, "--user", "nobody", "--every", "day", "--to", "a@b.org"
    )
    assert code == 2 and err.count("\n") == 1 and "no console account 'nobody'" in err
    code, _, err = run(
        capsys, "reports", "schedule", "add", "--db", url, "--user", "director", "--every", "day", "--to", "boss"
    )
    assert code == 2 and err.count("\n") == 1 and "is not an e-mail address" in err
    assert reportmail.schedules(db) == []
    assert (
        run(
            capsys,
            "reports",
            "schedule",
            "add",
            "--db",
            url,
            "--user",
            "director",
            "--every",
            "month",
            "--to",
            "a@b.org",
        )[0]
        == 0
    )
    code, out, _ = run(capsys, "reports", "schedule", "list", "--db", url, "--format", "json")
    assert [(s["username"], s["every"], s["recipients"]) for s in json.loads(out)] == [
        ("director", "month", ["a@b.org"])
    ]
    assert run(capsys, "reports", "schedule", "remove", "--db", url, "1")[0] == 0
    code, _, err = run(capsys, "reports", "schedule", "remove", "--db", url, "1")
    assert code == 2 and "no report schedule #1" in err


def test_send_due_without_an_smtp_server_fails_visibly(tmp_path, capsys):
    url = chain_db(tmp_path)
    db = open_db(url)
    users.add(db, "director", "a-long-password-1", "store-manager", T0, offices=["msk"], lang="en")
    reportmail.add_schedule(db, "day", ["boss@example.org"], T0, username="director")
    db.close()
    code, out, _ = run(capsys, "reports", "send-due", "--db", url, "--lang", "en")
    assert code == 1 and "1 queued, 0 sent, 1 failed, 1 waiting" in out
    code, out, _ = run(capsys, "reports", "outbox", "--db", url, "--lang", "en")
    assert "[alerts.email]" in out


def test_the_outbox_works_on_both_databases(any_db):
    from gw_site_support import SITE_TOML, apply_site

    server = SmtpServer()
    try:
        text = SITE_TOML + (
            '\n[alerts]\n\n[alerts.email]\nhost = "127.0.0.1"\nport = %d\nstarttls = false\n'
            'from = "rating@example.org"\nto = "ops@example.org"\nid_domain = "example.org"\n' % server.port
        )
        apply_site(any_db, text)
        users.add(any_db, "boss", "a-long-password-1", "admin", T0)
        reportmail.add_schedule(any_db, "day", ["boss@example.org"], T0, username="boss")
        assert reportmail.send_due(any_db, NEXT_MONDAY) == {"queued": 1, "sent": 1, "failed": 0, "pending": 0}
        assert reportmail.send_due(any_db, NEXT_MONDAY + 60_000)["queued"] == 0
        ((_, _, raw),) = server.messages
    finally:
        server.close()
    msg, _ = parts(raw)
    assert msg["Message-ID"] == "<report-1-2025-01-12@example.org>"
    assert reportmail.schedules(any_db)[0]["last_period"] == "2025-01-12"


def test_a_report_that_cannot_be_built_stops_neither_the_others_nor_sending(deployment, monkeypatch, capsys):
    url, db, port = deployment
    reportmail.add_schedule(db, "week", ["broken@example.org"], T0, username="director")
    reportmail.add_schedule(db, "week", ["boss@example.org"], T0, username="director")
    real = reportmail.compose

    def compose(reports, every, period, sender, recipients, message_id, trend=None):
        if recipients == ["broken@example.org"]:
            raise OSError("disk full")  # e.g. the PDF could not be rendered
        return real(reports, every, period, sender, recipients, message_id, trend)

    monkeypatch.setattr(reportmail, "compose", compose)
    server = SmtpServer(port)
    try:
        assert reportmail.send_due(db, NEXT_MONDAY) == {"queued": 1, "sent": 1, "failed": 0, "pending": 0}
        assert [m[1] for m in server.messages] == [["<boss@example.org>"]]
    finally:
        server.close()
    code, out, _ = run(capsys, "reports", "schedule", "list", "--db", url, "--lang", "en")
    assert "the last report could not be built: OSError: disk full" in out
    # fixed: the next pass queues the broken one's week
    monkeypatch.setattr(reportmail, "compose", real)
    assert reportmail.queue_due(db, NEXT_MONDAY + 60_000) == 1
    assert reportmail.schedules(db)[0]["last_error"] is None


def test_the_mail_speaks_the_accounts_language(deployment):
    url, db, port = deployment
    users.add(db, "direktor", "a-long-password-4", "store-manager", T0, offices=["msk"], lang="ru")
    reportmail.add_schedule(db, "month", ["boss@example.org"], T0, username="direktor")
    server = SmtpServer(port)
    try:
        reportmail.send_due(db, T0 + 30 * DAY)  # 2025-02-05: January has closed
        ((_, _, raw),) = server.messages
    finally:
        server.close()
    msg, found = parts(raw)
    assert msg["Subject"] == "Отчёт по KPI (ежемесячный): 2025-01"
    assert "Период: 2025-01-01 — 2025-02-01" in found["text/plain"]
    assert "(Опросы: 36)" in found["text/plain"] and '<html lang="ru">' in found["text/html"]


def test_the_mailed_report_carries_the_pos_section_of_rating_report_without_loyalty_references(deployment, capsys):
    from gateway import transactions

    url, db, port = deployment
    device = db.query_one("SELECT device FROM polls WHERE site = 'msk' ORDER BY opened_ms LIMIT 1")["device"]
    first = db.query("SELECT opened_ms FROM polls WHERE site = 'msk' AND device = ? ORDER BY opened_ms", (device,))
    sales = [
        (
            "msk",
            transactions.check(
                "msk", {"id": "R-%d" % i, "till": device, "t": p["opened_ms"] - 30_000, "loyalty": "crm-secret"}
            ),
        )
        for i, p in enumerate(first[:5])
    ]
    with db.transaction():
        transactions.store_many(db, sales, "test", NEXT_MONDAY)
    code, _out, err = run(
        capsys,
        "reports",
        "schedule",
        "add",
        "--db",
        url,
        "--user",
        "director",
        "--every",
        "week",
        "--to",
        "boss@example.org",
    )
    assert code == 0, err
    server = SmtpServer(port)
    try:
        assert reportmail.send_due(db, NEXT_MONDAY)["sent"] == 1
        _from, _rcpt, raw = server.messages[0]
    finally:
        server.close()
    _msg, found = parts(raw)
    code, out, _ = run(
        capsys, "report", "--db", url, "--format", "json", "--from", "2025-01-06", "--to", "2025-01-12", "--lang", "en"
    )
    pos = json.loads(out)["pos"]
    (row,) = [r for r in pos["by_device"] if r["key"] == device]
    assert row["transactions"] == 5 and row["matched"] >= 1
    wb = openpyxl.load_workbook(io.BytesIO(found["rating-2025-W02.xlsx"]))
    got = [r for r in wb["POS"].iter_rows(min_row=2, values_only=True) if r[0] == "Panel" and r[2] == device]
    assert got and got[0][3:9] == (
        5,
        row["polls"],
        row["matched"],
        row["unmatched_polls"],
        row["unmatched_sales"],
        row["conversion"]["value"],
    )
    pdf = " ".join(
        " ".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(found["rating-2025-W02.pdf"])).pages).split()
    )
    for body in (found["text/plain"], found["text/html"], pdf):
        assert "Sales matched to polls" in body and device in body and "crm-secret" not in body
