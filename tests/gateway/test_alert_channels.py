"""The alert channels (gateway/alertsend.py) against real receivers started here: a webhook
receiver that is down for 10 minutes gets every alert afterwards, exactly once per idempotency
key unless it failed to answer; the signature checks out; e-mail through a real SMTP server
(STARTTLS by default: a server without it gets nothing); the MQTT topic on a real broker."""

import email
import email.policy
import hashlib
import hmac
import json
import os
import threading

import paho.mqtt.client as mqtt
from alert_receivers import SmtpServer, WebhookReceiver
from gw_site_support import MIN, SITE_TOML, T0, open_db
from paho.mqtt.enums import CallbackAPIVersion

from gateway import alerts, alertsend, site, store
from gateway.worker import Worker
from protocol import messages

KEY = "k3y-only-in-the-secrets-file"


def _setup(tmp_path, channels, mode=0o600, hours="09:00-21:00"):
    secrets = tmp_path / "alert-secrets.toml"
    secrets.write_text('webhook_key = "%s"\nsmtp_password = "pw-%s"\n' % (KEY, KEY))
    os.chmod(secrets, mode)
    text = SITE_TOML + '\n[alerts]\nhours = "%s"\nsecrets = "%s"\nchannels = %s\n' % (
        hours,
        secrets,
        json.dumps(sorted(channels)),
    )
    for name, table in channels.items():
        text += "\n[alerts.%s]\n" % name + "".join("%s = %s\n" % (k, json.dumps(v)) for k, v in table.items())
    db = open_db("sqlite:///%s" % (tmp_path / "rating.db"))
    site.apply(db, site.parse(text), T0, "test.toml")
    return db


def _stuck(db, device, at_ms):
    state = {"online": True, "boot": 1, "up": 1000, "t": at_ms, "fw": "1", "seq": 0, "pending": 0}
    state.update(dropped=0, heap=1, rssi=-50, faults=["stuck:yes"], cfg=None, cfg_err=None)
    with db.transaction():
        store.upsert_state(db, "msk", device, messages.decode_state(messages.encode_state(state)), at_ms, "{}")


def _verify(headers, body):
    ts = int(headers["X-Rating-Timestamp"])
    want = "sha256=" + hmac.new(KEY.encode(), b"%d." % ts + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(headers["X-Rating-Signature"], want)


def test_alert_channels_webhook_down_for_10_minutes_gets_every_alert_once_afterwards(tmp_path, caplog):
    receiver = WebhookReceiver()  # not started: down
    db = _setup(tmp_path, {"webhook": {"url": receiver.url}})
    worker = Worker(db.url, "rating/v1", alerts_every_s=0)
    try:
        now = T0  # 11:00 in Moscow: open; three panels never heard from
        worker.run_round(db, now)
        assert alerts.outbox_pending(db) == 3
        while now < T0 + 10 * MIN:
            now += 30000
            if now == T0 + 5 * MIN:
                _stuck(db, "desk-1", now)  # a new alert while the receiver is down
            worker.run_round(db, now)
        raised = alerts.listing(db, limit=10)
        assert len(raised) == 4 and alerts.outbox_pending(db) == 4  # kept, none lost
        receiver.start()
        deadline = now + alertsend.BACKOFF_MAX_S * 1000 + MIN
        while alerts.outbox_pending(db) and now < deadline:
            now += 30000
            worker.run_round(db, now)
        assert alerts.outbox_pending(db) == 0
        assert receiver.keys() == ["alert-%d" % r["id"] for r in reversed(raised)]  # once each, in order
        for headers, body in receiver.requests:
            assert _verify(headers, body)
            assert json.loads(body)["id"] == headers["X-Rating-Idempotency-Key"]
        assert KEY not in caplog.text
    finally:
        receiver.stop()


def test_alert_channels_a_lost_answer_repeats_the_message_with_the_same_key(tmp_path):
    receiver = WebhookReceiver(fail_once=True).start()
    db = _setup(tmp_path, {"webhook": {"url": receiver.url}})
    try:
        alerts.evaluate(db, T0)
        now = T0
        while alerts.outbox_pending(db) and now < T0 + 30 * MIN:
            alertsend.deliver(db, site.load(db).alerts(now), now)
            now += 10000
        keys = receiver.keys()
        assert alerts.outbox_pending(db) == 0
        assert sorted(set(keys)) == sorted("alert-%d" % r["id"] for r in alerts.listing(db))
        assert all(keys.count(k) == 2 for k in keys)  # at least once: the unanswered one again
    finally:
        receiver.stop()


def test_alert_channels_wrong_signing_key_fails_verification(tmp_path):
    body = b'{"id": "alert-1"}'
    headers = {"X-Rating-Timestamp": "1700000000", "X-Rating-Signature": alertsend.sign("other", 1700000000, body)}
    assert not _verify(headers, body)
    headers["X-Rating-Signature"] = alertsend.sign(KEY, 1700000000, body)
    assert _verify(headers, body)


def test_alert_channels_email_through_a_real_smtp_server(tmp_path):
    server = SmtpServer()
    try:
        mail = {"host": "127.0.0.1", "port": server.port, "from": "rating@example.com", "to": ["ops@example.com"]}
        db = _setup(tmp_path, {"email": dict(mail, starttls=False)})
        alerts.evaluate(db, T0)
        assert alertsend.deliver(db, site.load(db).alerts(T0), T0) == (3, 0)
        assert len(server.messages) == 3
        sender, rcpt, data = server.messages[0]
        assert sender == "<rating@example.com>" and rcpt == ["<ops@example.com>"]
        msg = email.message_from_bytes(data, policy=email.policy.default)
        assert msg["Subject"].strip() == "[rating] critical: panel msk/desk-1 was never heard from during opening hours"
        assert msg["Message-ID"] == "<alert-1@rating.invalid>"
        assert json.loads(msg.get_content())["id"] == "alert-1"
        assert KEY not in data.decode()
    finally:
        server.close()


def test_alert_channels_email_insists_on_starttls_by_default(tmp_path):
    server = SmtpServer()
    try:
        mail = {"host": "127.0.0.1", "port": server.port, "from": "rating@example.com", "to": ["ops@example.com"]}
        db = _setup(tmp_path, {"email": mail})
        alerts.evaluate(db, T0)
        assert alertsend.deliver(db, site.load(db).alerts(T0), T0) == (0, 1)  # the rest wait behind the first
        assert server.messages == []
        assert alerts.outbox_pending(db) == 3
        (row, *_rest) = alerts.outbox_due(db, T0 + 3600000)
        assert "STARTTLS" in row["last_error"]
    finally:
        server.close()


def test_alert_channels_secrets_file_others_may_read_sends_nothing(tmp_path, caplog):
    receiver = WebhookReceiver().start()
    try:
        db = _setup(tmp_path, {"webhook": {"url": receiver.url}}, mode=0o644)
        alerts.evaluate(db, T0)
        assert alertsend.deliver(db, site.load(db).alerts(T0), T0) == (0, 1)  # the rest wait behind the first
        assert receiver.requests == []
        assert "chmod 600" in caplog.text and KEY not in caplog.text
    finally:
        receiver.stop()


def test_alert_channels_mqtt_topic_on_a_real_broker(tmp_path, broker, mqtt_root):
    topic = mqtt_root + "/alerts"
    got, ready = [], threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2)
    client.on_connect = lambda c, u, f, rc, p: (c.subscribe(topic, qos=1), ready.set())
    client.on_message = lambda c, u, m: got.append(json.loads(m.payload))
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        assert ready.wait(10)
        db = _setup(tmp_path, {"mqtt": {"url": broker.url, "topic": topic}})
        alerts.evaluate(db, T0)
        assert alertsend.deliver(db, site.load(db).alerts(T0), T0) == (3, 0)
        deadline = threading.Event()
        for _ in range(100):
            if len(got) == 3:
                break
            deadline.wait(0.05)
        assert sorted(m["id"] for m in got) == sorted("alert-%d" % r["id"] for r in alerts.listing(db))
        assert {m["rule"] for m in got} == {"panel_offline"}
    finally:
        client.loop_stop()
        client.disconnect()


def test_alert_channels_the_running_gateway_raises_and_delivers(tmp_path, broker, mqtt_root):
    """`rating gateway run` with a site file whose panels were never heard from: its worker
    raises their alerts and the webhook receiver gets each once, signed."""
    import time

    from gw_ingest_support import Gateway

    receiver = WebhookReceiver().start()
    db = _setup(tmp_path, {"webhook": {"url": receiver.url}}, hours="00:00-24:00")  # runs on the real clock
    db.close()
    gw = Gateway(broker.url, "sqlite:///%s" % (tmp_path / "rating.db"), mqtt_root, "gw-alerts").start()
    try:
        deadline = time.monotonic() + 60
        while len(receiver.requests) < 3 and time.monotonic() < deadline:
            time.sleep(0.2)
        bodies = receiver.bodies()
        assert sorted(b["subject"] for b in bodies) == ["msk/desk-1", "msk/door", "msk/exit"], gw.output()
        assert all(_verify(h, b) for h, b in receiver.requests)
    finally:
        gw.terminate()
        receiver.stop()
    assert KEY not in gw.output()
