"""An outbox message is never sent by two senders: the console's "Retry now" racing a
`rating reports send-due` pass sends a report mail once, two gateways delivering the same
alert outbox send each alert once (a real SMTP server / webhook receiver started here, slow
enough that both senders are inside a send together), on SQLite and PostgreSQL; and a sender
killed while sending leaves its claim to run out, after which the message goes out once."""

import os
import signal
import subprocess
import sys
import threading
import time

from alert_receivers import SmtpServer, WebhookReceiver
from gw_site_support import MIN, SITE_TOML, T0, apply_site

from gateway import alerts, alertsend, reportmail, schema, site, users

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NOW = T0 + 7 * 24 * 60 * MIN  # the day's report of the schedule below has closed


def _report_queued(db, port):
    text = SITE_TOML + (
        '\n[alerts]\n\n[alerts.email]\nhost = "127.0.0.1"\nport = %d\nstarttls = false\n'
        'from = "rating@example.org"\nto = "ops@example.org"\n' % port
    )
    apply_site(db, text)
    users.add(db, "boss", "a-long-password-1", "admin", T0)
    reportmail.add_schedule(db, "day", ["boss@example.org"], T0, username="boss")
    assert reportmail.queue_due(db, NOW) == 1
    (row,) = reportmail.outbox(db)
    return row["id"]


def _race(*calls):
    """Run the calls in threads started together; their results (or exceptions) in order."""
    start = threading.Barrier(len(calls))
    results = [None] * len(calls)

    def run(i, call):
        start.wait()
        try:
            results[i] = call()
        except Exception as exc:  # reported by the caller's assertion
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


def test_retry_now_racing_a_send_due_pass_sends_the_report_mail_once(any_db):
    server = SmtpServer(data_delay=0.5)
    other = [schema.open_database(any_db.url) for _ in range(2)]
    try:
        row_id = _report_queued(any_db, server.port)
        config = site.load(any_db).alerts(NOW)
        results = _race(
            lambda: reportmail.retry_now(other[0], row_id, NOW),
            lambda: reportmail.deliver(other[1], config, NOW),
        )
        assert len(server.messages) == 1, results  # one of the two sent it, the other left it
        assert results[0] is None or results[0].startswith("another sender"), results
        assert results[1] in ((1, 0), (0, 0)), results
        (row,) = reportmail.outbox(any_db)
        assert row["delivered_ms"] == NOW and row["attempts"] == 1 and row["claimed_until"] is None
        assert reportmail.deliver(any_db, config, NOW + MIN) == (0, 0)  # nothing left to send
        assert len(server.messages) == 1
    finally:
        for db in other:
            db.close()
        server.close()


def test_a_sender_killed_while_sending_leaves_the_mail_to_go_out_once_after_its_lease(any_db):
    server = SmtpServer()
    server.hold_banner = True  # the sender connects and waits: killed in the middle of its send
    try:
        _report_queued(any_db, server.port)
        script = (
            "import os; from gateway import reportmail, schema, site\n"
            "db = schema.open_database(os.environ['RATING_TEST_DB'])\n"
            "reportmail.deliver(db, site.load(db).alerts(%d), %d)\n" % (NOW, NOW)
        )
        env = dict(os.environ, RATING_TEST_DB=any_db.url, PYTHONPATH=REPO)
        sender = subprocess.Popen([sys.executable, "-c", script], env=env, cwd=REPO)
        try:
            deadline = time.monotonic() + 30
            while reportmail.outbox(any_db)[0]["claimed_until"] is None:
                assert sender.poll() is None and time.monotonic() < deadline, "the sender never claimed the mail"
                time.sleep(0.02)
        finally:
            sender.send_signal(signal.SIGKILL)
            sender.wait(10)
        server.hold_banner = False
        config = site.load(any_db).alerts(NOW)
        assert reportmail.outbox(any_db)[0]["claimed_until"] == NOW + alertsend.LEASE_S * 1000
        assert reportmail.deliver(any_db, config, NOW + MIN) == (0, 0)  # still the dead sender's
        assert reportmail.retry_now(any_db, reportmail.outbox(any_db)[0]["id"], NOW + MIN).startswith("another sender")
        assert server.messages == []
        later = NOW + alertsend.LEASE_S * 1000
        assert reportmail.deliver(any_db, config, later) == (1, 0)  # its lease has run out
        assert len(server.messages) == 1
        assert reportmail.deliver(any_db, config, later + MIN) == (0, 0)
        assert len(server.messages) == 1
    finally:
        server.hold_banner = False
        server.close()


def test_two_gateways_delivering_the_alert_outbox_send_each_alert_once(any_db, tmp_path):
    receiver = WebhookReceiver(delay=0.3).start()
    secrets = tmp_path / "alert-secrets.toml"
    secrets.write_text('webhook_key = "k3y-for-the-test"\n')
    os.chmod(secrets, 0o600)
    text = SITE_TOML + '\n[alerts]\nhours = "09:00-21:00"\nsecrets = "%s"\nchannels = ["webhook"]\n' % secrets
    text += '\n[alerts.webhook]\nurl = "%s"\n' % receiver.url
    gateways = [schema.open_database(any_db.url) for _ in range(2)]
    try:
        site.apply(any_db, site.parse(text), T0, "test.toml")
        alerts.evaluate(any_db, T0)  # three panels never heard from during opening hours
        raised = alerts.listing(any_db, limit=10)
        assert len(raised) == 3 and alerts.outbox_pending(any_db) == 3
        config = site.load(any_db).alerts(T0)
        results = _race(*[lambda db=db: alertsend.deliver(db, config, T0) for db in gateways])
        assert sorted(receiver.keys()) == sorted("alert-%d" % r["id"] for r in raised), results  # once each
        assert sum(r[0] for r in results) == 3 and alerts.outbox_pending(any_db) == 0, results
        assert receiver.keys() == ["alert-%d" % r["id"] for r in reversed(raised)]  # and in order
    finally:
        for db in gateways:
            db.close()
        receiver.stop()


def test_the_outbox_listing_says_which_mail_a_sender_is_sending_now(any_db, capsys):
    from rating import cli

    server = SmtpServer()
    try:
        row_id = _report_queued(any_db, server.port)
        assert cli.main(["reports", "outbox", "--db", any_db.url, "--lang", "en"]) == 0
        assert "being sent" not in capsys.readouterr().out
        assert reportmail._claim(any_db, row_id, int(time.time() * 1000)) is not None  # a sender, now
        assert cli.main(["reports", "outbox", "--db", any_db.url, "--lang", "en"]) == 0
        assert "being sent (claimed until " in capsys.readouterr().out
    finally:
        server.close()
