"""The e-mailed report as its reader gets it, through aiosmtpd (a real SMTP server, started
here): the summary with the numbers of `rating report --format json`, the charts inline as PNG
parts the HTML shows by cid: (the offices' figures with intervals, then the week by day), the
same charts in the attached PDF, and the attached .xlsx the same workbook as
`rating report --format xlsx` for the same week."""

import email
import email.policy
import io
import json

import openpyxl
import pypdf
import pytest
from aiosmtpd.controller import Controller
from alert_receivers import free_port
from gw_site_support import MIN, T0
from report_support import chain_db, check_inline_charts

from gateway import report_docs, reportmail, users
from gateway.cli_common import open_db
from rating import cli

DAY = 24 * 60 * MIN
NEXT_MONDAY = T0 + 7 * DAY - 2 * 60 * MIN  # Monday 2025-01-13 09:00 Moscow: 2025-W02 has closed
WEEK = ("--from", "2025-01-06", "--to", "2025-01-12")


class Inbox:
    """aiosmtpd's handler: keeps (mail_from, rcpt_tos, bytes) of every message."""

    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content))
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp():
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller.port, inbox
    controller.stop()


@pytest.fixture
def deployment(tmp_path, smtp):
    port, inbox = smtp
    extra = (
        '\n[alerts]\n\n[alerts.email]\nhost = "127.0.0.1"\nport = %d\nstarttls = false\n'
        'from = "rating@example.org"\nto = "ops@example.org"\n' % port
    )
    url = chain_db(tmp_path, extra)
    db = open_db(url)
    users.add(db, "director", "a-long-password-1", "store-manager", T0, offices=["msk"], lang="en")
    yield url, db, inbox
    db.close()


def cli_out(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


def test_the_mail_has_the_summary_the_inline_charts_and_both_attachments(deployment, capsys, tmp_path):
    url, db, inbox = deployment
    reportmail.add_schedule(db, "week", ["boss@example.org"], T0, username="director")
    assert reportmail.send_due(db, NEXT_MONDAY)["sent"] == 1
    ((mail_from, rcpt, raw),) = inbox.messages
    assert mail_from == "rating@example.org" and rcpt == ["boss@example.org"]
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    images = check_inline_charts(msg)

    office = json.loads(cli_out(capsys, "report", "--db", url, "--format", "json", "--lang", "en", *WEEK))
    by_day = json.loads(
        cli_out(capsys, "report", "--db", url, "--format", "json", "--lang", "en", "--period", "day", *WEEK)
    )
    # the charts: the week's figures with intervals, then one trend per figure over its days
    expected = report_docs.figures(office, ("svg",)) + report_docs.figures(by_day, ("svg",))
    assert len(images) == len(expected) >= 2
    html = msg.get_body(("html",)).get_content()
    for fig in expected:
        assert "<figcaption>%s</figcaption>" % fig.title in html
    assert "<figcaption>DI-staff, by day</figcaption>" in html

    # the summary: the office's row with its numbers, in the mail's text and HTML
    row = office["rows"][0]
    text = msg.get_body(("plain",)).get_content()
    for body in (text, html):
        assert row["label"] in body and row["kpi"]["di_staff"]["text"] in body
    assert "Europe/Moscow" in html

    _alternative, xlsx_part, pdf_part = msg.iter_parts()
    pdf = pypdf.PdfReader(io.BytesIO(pdf_part.get_content()))
    assert sum(len(p.images) for p in pdf.pages) == len(images)  # the same charts in the PDF

    # the attached workbook is `rating report --format xlsx` of the same week
    path = tmp_path / "week.xlsx"
    cli_out(capsys, "report", "--db", url, "--lang", "en", "-o", str(path), *WEEK)
    attached = openpyxl.load_workbook(io.BytesIO(xlsx_part.get_content()))
    from_cli = openpyxl.load_workbook(str(path))
    assert attached.sheetnames == from_cli.sheetnames
    for name in attached.sheetnames:
        mine = [[c.value for c in r] for r in attached[name].iter_rows()]
        theirs = [[c.value for c in r] for r in from_cli[name].iter_rows()]
        assert _without_generated(mine) == _without_generated(theirs), name


def _without_generated(rows):
    """The sheet's cells but the line saying when it was generated (it differs by seconds)."""
    return [r for r in rows if not any(isinstance(v, str) and v.startswith("Generated") for v in r)]


def test_a_monthly_mail_shows_the_month_by_week(deployment):
    url, db, inbox = deployment
    reportmail.add_schedule(db, "month", ["boss@example.org"], T0, username="director")
    first_of_february = T0 + 26 * DAY  # 2025-02-01 in Moscow: January has closed
    assert reportmail.send_due(db, first_of_february)["sent"] == 1
    msg = email.message_from_bytes(inbox.messages[0][2], policy=email.policy.default)
    images = check_inline_charts(msg)
    html = msg.get_body(("html",)).get_content()
    assert "<figcaption>DI-staff, by week</figcaption>" not in html  # the polls are in one ISO week
    assert len(images) == 1  # so the month shows its figures with intervals only
