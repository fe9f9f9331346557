"""Delivering the alert outbox (gateway/alerts.py) through its channels: e-mail (SMTP, smtplib),
a webhook (HTTP POST of the JSON, signed) and an MQTT topic. Runs on the gateway's background
worker; `deliver(db, config, now_ms)` is one pass.

At least once, nothing lost, never sent by two senders at once: a sender claims a row before
sending it (`claim`, one conditional UPDATE checked by its row count: several `rating gateway
run` on one PostgreSQL, or a pass and the console's "Retry now", cannot both send it); the claim
is a lease of LEASE_S, so the row of a sender killed while sending goes out later. An outbox row is marked delivered only after its channel took it
(SMTP accepted the message, the webhook answered 2xx, the broker acknowledged the QoS 1
publish); anything else leaves it undelivered with `next_ms` backed off (BACKOFF_S doubling up
to BACKOFF_MAX_S, never given up) and the error kept. A receiver that was down for a while gets
every message afterwards, in order; a message it got but did not acknowledge may come twice,
with the same idempotency key (`id` in the JSON, the webhook's `X-Rating-Idempotency-Key`,
the e-mail's Message-ID).

Webhook signature: header `X-Rating-Signature: sha256=<hex>` = HMAC-SHA256 with the shared key
over `<X-Rating-Timestamp>.<body>` (the timestamp in epoch seconds: a receiver refuses old ones,
so a captured request cannot be replayed later).

Secrets come from the file named by the site file's `alerts.secrets` (TOML: smtp_password,
webhook_key, mqtt_password), read at delivery and refused when others may read it (the SMTP
password may come from $RATING_SMTP_PASSWORD instead); never from a command line, never logged
(errors are logged without URLs' user info).
"""

import hashlib
import hmac
import json
import logging
import os
import re
import smtplib
import ssl
import stat
import tomllib
import urllib.error
import urllib.request
import uuid
from email.message import EmailMessage

from gateway import alerts

log = logging.getLogger("gateway.alertsend")

BACKOFF_S = 10
BACKOFF_MAX_S = 3600
TIMEOUT_S = 5
# How long a sender's claim on an outbox row lasts: far longer than one send takes (TIMEOUT_S
# per socket operation of one message), so a live sender never loses it; a sender killed while
# sending leaves its rows to be sent again after this.
LEASE_S = 300


class SecretsError(Exception):
    pass


def read_secrets(path):
    """The secrets file as a dict ({} when the site file names none)."""
    if not path:
        return {}
    try:
        st = os.stat(path)
        if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise SecretsError("%s may be read by others: chmod 600 it" % path)
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise SecretsError("cannot read the alert secrets file %s: %s" % (path, exc.__class__.__name__)) from None
    return data


def backoff_ms(attempts):
    return min(BACKOFF_S * 2 ** max(attempts - 1, 0), BACKOFF_MAX_S) * 1000


def sign(key, timestamp, body):
    return "sha256=" + hmac.new(key.encode(), b"%d." % timestamp + body, hashlib.sha256).hexdigest()


def send_webhook(settings, secrets, payload, now_ms):
    body = payload.encode()
    ts = now_ms // 1000
    headers = {
        "Content-Type": "application/json",
        "X-Rating-Idempotency-Key": json.loads(payload)["id"],
        "X-Rating-Timestamp": str(ts),
    }
    key = secrets.get("webhook_key")
    if not key:
        raise SecretsError("no webhook_key in the alert secrets file: the webhook would be unsigned")
    headers["X-Rating-Signature"] = sign(key, ts, body)
    req = urllib.request.Request(settings["url"], data=body, headers=headers, method="POST")
    with urllib.request.urlopen(req, timeout=TIMEOUT_S) as resp:  # noqa: S310 - the site file's URL
        if not 200 <= resp.status < 300:
            raise OSError("HTTP %d" % resp.status)


def send_email(settings, secrets, payload, now_ms):
    data = json.loads(payload)
    msg = EmailMessage()
    msg["Subject"] = "[rating] %s: %s" % (data["severity"], data["summary"])
    msg["From"] = settings["from"]
    to = settings["to"]
    msg["To"] = ", ".join(to) if isinstance(to, list) else to
    msg["Message-ID"] = "<%s@%s>" % (data["id"], settings.get("id_domain", "rating.invalid"))
    msg.set_content(json.dumps(data, indent=2, ensure_ascii=False))
    smtp_send(settings, secrets, msg)


def smtp_send(settings, secrets, msg, to_addrs=None):
    """Hand one message to the SMTP server of `settings` (host, port, starttls, tls, user; the
    password: the secrets' smtp_password, else $RATING_SMTP_PASSWORD); raises when the server
    did not take it. Also sends the scheduled reports (gateway/reportmail.py)."""
    port = int(settings.get("port", 587))
    if settings.get("tls") == "implicit" or port == 465:
        smtp = smtplib.SMTP_SSL(settings["host"], port, timeout=TIMEOUT_S, context=ssl.create_default_context())
    else:
        smtp = smtplib.SMTP(settings["host"], port, timeout=TIMEOUT_S)
    with smtp:
        # secure by default: STARTTLS unless the site file says starttls = false (a local relay)
        if not isinstance(smtp, smtplib.SMTP_SSL) and settings.get("starttls", True):
            smtp.starttls(context=ssl.create_default_context())
        if settings.get("user"):
            smtp.login(settings["user"], secrets.get("smtp_password") or os.environ.get("RATING_SMTP_PASSWORD", ""))
        if isinstance(msg, bytes):  # a message kept as built (the same bytes on every retry)
            # stored with bare LF line ends (as_string); SMTP wants CRLF, and servers that refuse
            # bare LF (aiosmtpd, Postfix's smtpd_forbid_bare_newline) would refuse the whole mail
            smtp.sendmail(settings["from"], to_addrs or [], re.sub(rb"\r?\n", b"\r\n", msg))
        else:
            smtp.send_message(msg, to_addrs=to_addrs)


def send_mqtt(settings, secrets, payload, now_ms):
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from protocol import mqtturl

    host, port, user, _password, tls = mqtturl.parse(settings["url"])
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="", protocol=mqtt.MQTTv311)
    if user:
        client.username_pw_set(user, secrets.get("mqtt_password"))
    if tls:
        client.tls_set()
    client.connect(host, port, keepalive=30)
    client.loop_start()
    try:
        info = client.publish(settings["topic"], payload.encode(), qos=1)
        info.wait_for_publish(TIMEOUT_S)
        if not info.is_published():
            raise OSError("the broker did not acknowledge the publish")
    finally:
        client.disconnect()
        client.loop_stop()


SENDERS = {"webhook": send_webhook, "email": send_email, "mqtt": send_mqtt}


def deliver(db, config, now_ms, limit=50, senders=None):
    """One pass over the alert outbox rows due: (delivered, failed messages)."""
    senders = senders or SENDERS
    config = config or {}
    try:
        secrets, broken = read_secrets(config.get("secrets")), None
    except SecretsError as exc:
        secrets, broken = {}, str(exc)

    def route(channel):
        if broken:
            raise SecretsError(broken)
        settings = config.get(channel)
        if not settings:
            raise SecretsError("the site file has no [alerts.%s] table now" % channel)
        return senders[channel], settings, secrets

    return deliver_outbox(db, alerts.OUTBOX, route, now_ms, limit, "alert channel")


def deliver_outbox(db, outbox, route, now_ms, limit=50, what="channel"):
    """One pass over `outbox`'s rows due (an outboxtable.OutboxTable its owner module made):
    (delivered, failed messages). `route(channel)` ->
    (send, settings, secrets), raising when the channel cannot be used now. A channel that fails
    is not tried again in this pass: its later rows wait behind the failed one, which alone backs
    off (a receiver that is down costs one timeout a retry, not one per message). Each row is
    claimed before it is sent (a lease of LEASE_S); a row another sender holds is left to it,
    and so are its channel's later rows in this pass (they stay in order). The alerts and the
    CRM follow-ups (gateway/followups.py) are both delivered here."""
    rows = outbox.due(db, now_ms, limit)
    token = uuid.uuid4().hex
    down, busy = {}, set()
    delivered = failed = 0
    for row in rows:
        channel = row["channel"]
        if channel in down or channel in busy:
            continue  # waits behind the channel's row that failed, or that another sender has
        with db.transaction():
            claimed = outbox.claim(db, row["id"], token, now_ms, now_ms + LEASE_S * 1000)
        if not claimed:
            busy.add(channel)
            continue
        try:
            send, settings, secrets = route(channel)
            send(settings, secrets, row["payload"], now_ms)
        except Exception as exc:  # any failure: kept, retried later
            down[channel] = "%s: %s" % (exc.__class__.__name__, _safe(exc))
        attempts = row["attempts"] + 1
        with db.transaction():
            if channel not in down:
                outbox.delivered(db, row["id"], now_ms, token)
                delivered += 1
            else:
                outbox.failed(db, row["id"], attempts, down[channel], now_ms + backoff_ms(attempts), token)
                failed += 1
    for channel, error in down.items():
        log.warning("%s %s failed (%s); retried with back-off", what, channel, error)
    return delivered, failed


def _safe(exc):
    """An error text without a URL's user info (a secret never reaches the log)."""
    text = str(exc)
    if isinstance(exc, urllib.error.HTTPError):
        return "HTTP %d" % exc.code
    return text.split("@")[-1] if "://" in text else text
