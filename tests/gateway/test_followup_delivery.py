"""The follow-ups' webhook (gateway/followups.py through gateway/alertsend.py's outbox pass): a
receiver that is down for 10 minutes gets every alert AND every follow-up and retraction exactly
once afterwards, in order, each signed with its integration's key; the key comes from a file or
the environment and never reaches a log."""

import hashlib
import hmac
import json
import os

from alert_receivers import WebhookReceiver
from gw_site_support import MIN, SITE_TOML, T0, apply_site, review_scenario

from gateway import alerts, alertsend, followups, review
from gateway.worker import Worker

ALERT_KEY = "alert-k3y-only-in-a-file"
CRM_KEY = "crm-k3y-only-in-a-file"


def _secrets(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    os.chmod(path, 0o600)
    return path


def _site(tmp_path, url, crm_secrets=True):
    alert_file = _secrets(tmp_path, "alerts.toml", 'webhook_key = "%s"\n' % ALERT_KEY)
    text = SITE_TOML + '\n[alerts]\nsecrets = "%s"\nchannels = ["webhook"]\n\n[alerts.webhook]\nurl = "%s"\n' % (
        alert_file,
        url,
    )
    text += '\n[followups]\nhold_min = 1\n\n[followups.webhooks.crm]\nurl = "%s"\n' % url
    if crm_secrets:
        text += 'secrets = "%s"\n' % _secrets(tmp_path, "crm.toml", 'webhook_key = "%s"\n' % CRM_KEY)
    return text


def _verify(key, headers, body):
    ts = int(headers["X-Rating-Timestamp"])
    want = "sha256=" + hmac.new(key.encode(), b"%d." % ts + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(headers["X-Rating-Signature"], want)


def _pending(db):
    return alerts.outbox_pending(db) + followups.outbox_pending(db)


def _run(worker, db, now, until, step=30000):
    while now < until:
        now += step
        worker.run_round(db, now)
    return now


def test_followup_delivery_receiver_down_for_10_minutes_gets_every_alert_and_followup_once(any_db, tmp_path, caplog):
    db = any_db
    receiver = WebhookReceiver()  # not started: down
    try:
        review_scenario(db)  # polls T0 .. T0+16 min; a force-majeure report over desk-1/7 and /9
        apply_site(db, _site(tmp_path, receiver.url), T0 + 1)
        worker = Worker(db.url, "rating/v1", alerts_every_s=0, followups_every_s=0)
        worker.changed({("msk", "desk-1"), ("msk", "exit")})
        now = T0 + 30 * MIN  # the force-majeure period (T0+10..25 min) is over
        worker.run_round(db, now)
        assert followups.outbox_pending(db) == 4 and alerts.outbox_pending(db) >= 1
        review.record(db, review.POLL, "msk/exit/1", "invalid", "the seller pressed No", "expert", now + 5 * MIN)
        now = _run(worker, db, now, T0 + 40 * MIN)  # down for 10 minutes: kept, none lost
        assert followups.outbox_pending(db) == 5  # the retraction issued meanwhile too
        assert receiver.requests == []
        receiver.start()
        now = _run(worker, db, now, now + alertsend.BACKOFF_MAX_S * 1000 + MIN)
        assert _pending(db) == 0
        keys = receiver.keys()
        alert_ids = ["alert-%d" % r["id"] for r in reversed(alerts.listing(db, limit=100))]
        followup_ids = [e["id"] for e in followups.feed(db, 0, None, 100)[0]]
        assert sorted(keys) == sorted(alert_ids + followup_ids) and len(keys) == len(set(keys))  # once each
        assert [k for k in keys if k.startswith("followup:")] == followup_ids  # in the order issued
        assert "followup:msk/exit/1:2" in followup_ids and len(followup_ids) == 5
        for headers, body in receiver.requests:
            key = CRM_KEY if headers["X-Rating-Idempotency-Key"].startswith("followup:") else ALERT_KEY
            assert _verify(key, headers, body)
            assert json.loads(body)["id"] == headers["X-Rating-Idempotency-Key"]
        assert followups.delivered_ids(db, "crm") == followup_ids
        assert CRM_KEY not in caplog.text and ALERT_KEY not in caplog.text
    finally:
        receiver.stop()


def test_followup_delivery_key_from_the_environment(any_db, tmp_path, monkeypatch):
    receiver = WebhookReceiver().start()
    try:
        review_scenario(any_db)
        apply_site(any_db, _site(tmp_path, receiver.url, crm_secrets=False), T0 + 1)
        followups.update(any_db, T0 + 30 * MIN)
        from gateway import site

        history = site.load(any_db)
        assert followups.deliver(any_db, history, T0 + 30 * MIN) == (0, 1)  # no key: nothing unsigned goes out
        monkeypatch.setenv(followups.env_key_name("crm"), CRM_KEY)
        now = T0 + 30 * MIN + alertsend.backoff_ms(1)
        assert followups.deliver(any_db, history, now) == (4, 0)
        assert all(_verify(CRM_KEY, h, b) for h, b in receiver.requests)
    finally:
        receiver.stop()


def test_followup_delivery_an_integration_gets_only_its_offices(any_db, tmp_path):
    crm = WebhookReceiver().start()
    other = WebhookReceiver().start()
    try:
        review_scenario(any_db)
        key = _secrets(tmp_path, "crm.toml", 'webhook_key = "%s"\n' % CRM_KEY)
        text = SITE_TOML + '\n[[sites]]\nid = "spb"\nname = "Невский"\ntimezone = "Europe/Moscow"\n'
        text += "\n[followups]\nhold_min = 1\n"
        for name, receiver, offices in (("crm", crm, ["msk"]), ("spb-crm", other, ["spb"])):
            text += '\n[followups.webhooks.%s]\nurl = "%s"\nsecrets = "%s"\noffices = %s\n' % (
                name,
                receiver.url,
                key,
                json.dumps(offices),
            )
        apply_site(any_db, text, T0 + 1)
        followups.update(any_db, T0 + 30 * MIN)
        from gateway import site

        assert followups.deliver(any_db, site.load(any_db), T0 + 30 * MIN) == (4, 0)
        assert len(crm.requests) == 4 and other.requests == []
    finally:
        crm.stop()
        other.stop()
