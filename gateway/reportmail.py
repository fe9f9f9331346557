"""Reports that arrive by themselves: schedules (a console account's scope, in its language, or
a role's: the offices its enabled accounts see; every day, ISO week or month, to listed
addresses) and a durable outbox of the messages built
(migration 040: `report_schedules`, `report_outbox`; nothing else reads these tables).

`send_due(db, now_ms)` is one pass, run by `rating reports send-due` from cron or a systemd
timer (deploy/): it queues the periods that have closed since the last pass, then sends what
the outbox holds.

- A period is closed when it has ended in the account's (first) office's timezone; its report
  covers that day / ISO week / month in each office's own local time (as `rating report --from
  --to` without --site does). A pass that was missed (the machine was off) queues the last
  closed period only: a report is a summary to read, not a ledger to complete.
- Queueing builds the whole message (HTML summary with a text alternative and its charts
  inline: each office's figures with intervals, and for a week or a month the trend by day or
  week with bands, as PNG parts the HTML shows by cid:; the full report as .xlsx with every
  grouping and as PDF with the same charts) and writes it to the outbox in the same transaction
  that moves the schedule's `last_period` on: a crash queues it once or not at all.
- Sending hands the stored bytes to the SMTP server of the site file's `[alerts.email]` (host,
  port, starttls, user, from; the password from the `alerts.secrets` file or
  $RATING_SMTP_PASSWORD, gateway/alertsend.smtp_send). A row is marked sent only after the
  server took it; a failure keeps it with the error and a doubling back-off, never given up,
  and the pass stops there (a server that is down costs one timeout a pass). A message the
  server took but did not confirm may come twice, with the same Message-ID.
- A sender claims the row before it sends it (one conditional UPDATE, checked by its row
  count; migration 077): the console's "Retry now" and a `rating reports send-due` pass never
  both send a message. The claim is a lease (alertsend.LEASE_S): the message of a sender killed
  while sending goes out after it has passed.
"""

import datetime as _dt
import json
import logging
import re
import uuid
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any

from gateway import alertsend, i18n, report, report_docs, report_export, report_pos, times, users
from gateway import site as site_mod

log = logging.getLogger("gateway.reportmail")

EVERY = ("day", "week", "month")
_ADDRESS = re.compile(r"^[^@\s<>,;\"]+@[^@\s<>,;\"]+\.[^@\s<>,;\"]+$")


class ScheduleError(ValueError):
    """A schedule the store cannot take; the message says what to do."""


# --- pure ----------------------------------------------------------------------------------------


def closed_period(every: str, local_now: _dt.datetime) -> tuple[str, _dt.datetime, _dt.datetime]:
    """The last period that has ended by the local time `local_now`: (key, start, end), the
    bounds naive local midnights, end exclusive."""
    today = _dt.datetime(local_now.year, local_now.month, local_now.day)
    if every == "day":
        start = today - _dt.timedelta(days=1)
        return start.strftime("%Y-%m-%d"), start, today
    if every == "week":
        end = today - _dt.timedelta(days=today.weekday())  # this week's Monday
        start = end - _dt.timedelta(days=7)
        year, week, _ = start.isocalendar()
        return "%d-W%02d" % (year, week), start, end
    if every == "month":
        end = today.replace(day=1)
        start = (end - _dt.timedelta(days=1)).replace(day=1)
        return start.strftime("%Y-%m"), start, end
    raise ValueError("every: must be one of %s, got %r" % (", ".join(EVERY), every))


def check_recipients(addresses) -> list[str]:
    out = []
    for a in addresses or ():
        a = a.strip()
        if not _ADDRESS.match(a):
            raise ScheduleError("%r is not an e-mail address (name@example.org)" % a)
        if a not in out:
            out.append(a)
    if not out:
        raise ScheduleError("give at least one address: --to name@example.org (repeatable)")
    return out


# the trend a scheduled mail shows next to its summary: a week by day, a month by week
TREND_PERIOD = {"day": None, "week": "day", "month": "week"}


def mail_figures(main, trend=None) -> list:
    """The charts of a scheduled mail (and of its PDF), as PNG: each office's figures with
    their intervals, then the trend over the period's days or weeks when there are several."""
    figs = report_docs.figures(main, ("png",))
    if trend is not None:
        figs += report_docs.figures(trend, ("png",)) if len({r["period"] for r in trend["rows"]}) > 1 else []
    return [f for f in figs if f.png]


def compose(reports, every, period, sender, recipients, message_id, trend=None) -> EmailMessage:
    """The e-mail: the summary as HTML with its charts inline (PNG parts the HTML shows by
    Content-ID) and a text alternative, the full report attached as .xlsx (every grouping) and
    PDF (the same charts). `reports`: the report dicts, one per grouping, by "site" first."""
    main = next(r for r in reports if r["by"] == "site")
    lang = main["lang"]
    msg = EmailMessage()
    msg["Subject"] = "%s (%s): %s" % (i18n.t(lang, "report_title"), i18n.t(lang, "every_" + every), period)
    msg["From"] = sender
    msg["To"] = ", ".join(recipients)
    msg["Date"] = formatdate(main["generated_ms"] / 1000.0, usegmt=True)
    msg["Message-ID"] = message_id
    note = i18n.t(lang, "doc_attached")
    facts = "".join("%s: %s\n" % fact for fact in report_docs.summary(main)["facts"])
    msg.set_content(facts + "\n" + report_export.render_table(main) + "\n" + note + "\n")
    figs = mail_figures(main, trend)
    # the charts as PNG parts next to the HTML (multipart/related), shown by their Content-ID:
    # mail clients show no SVG and block remote images
    cids = ["chart-%d.%s" % (n, message_id.strip("<>")) for n in range(len(figs))]
    msg.add_alternative(report_docs.render_html(main, figs, "<p>%s</p>" % note, cids), subtype="html")
    html_part = msg.get_body(("html",))
    assert html_part is not None
    for fig, cid in zip(figs, cids, strict=True):
        html_part.add_related(fig.png, maintype="image", subtype="png", cid="<%s>" % cid)
    name = "rating-%s" % period
    msg.add_attachment(
        report_export.workbook_bytes(reports),
        maintype="application",
        subtype="vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        filename=name + ".xlsx",
    )
    msg.add_attachment(report_docs.pdf_bytes(main, figs), maintype="application", subtype="pdf", filename=name + ".pdf")
    return msg


# --- schedules -----------------------------------------------------------------------------------


def _schedule(row) -> dict:
    out = dict(row)
    out["recipients"] = json.loads(out["recipients"])
    return out


def add_schedule(db, every, recipients, now_ms, username=None, role=None) -> dict:
    """A schedule for one account (its scope and language) or for a role (the offices its
    enabled accounts see, together; the deployment's language)."""
    if every not in EVERY:
        raise ScheduleError("every %r: must be one of %s" % (every, ", ".join(EVERY)))
    if (username is None) == (role is None):
        raise ScheduleError("give either --user NAME or --role ROLE")
    if username is not None:
        account = users.by_username(db, users.check_username(username))
        if account is None:
            raise ScheduleError("no console account %r; see rating user list" % username)
        username = account["username"]
    else:
        users.check_role(role)
    recipients = check_recipients(recipients)
    with db.transaction():
        row = db.query_one(
            "INSERT INTO report_schedules (username, role, every, recipients, created_ms, last_period, last_error) "
            "VALUES (?, ?, ?, ?, ?, NULL, NULL) RETURNING id",
            (username, role, every, json.dumps(recipients), now_ms),
        )
    return get_schedule(db, row["id"])  # type: ignore[index]


def get_schedule(db, schedule_id) -> dict | None:
    row = db.query_one("SELECT * FROM report_schedules WHERE id = ?", (schedule_id,))
    return None if row is None else _schedule(row)


def schedules(db) -> list[dict]:
    return [_schedule(r) for r in db.query("SELECT * FROM report_schedules ORDER BY id")]


def remove_schedule(db, schedule_id) -> dict:
    """Remove a schedule and its messages not sent yet (those sent stay listed: the record)."""
    found = get_schedule(db, schedule_id)
    if found is None:
        raise ScheduleError("no report schedule #%d; see rating reports schedule list" % schedule_id)
    with db.transaction():
        db.execute("DELETE FROM report_outbox WHERE schedule_id = ?", (schedule_id,))
        db.execute("DELETE FROM report_schedules WHERE id = ?", (schedule_id,))
    return found


# --- the outbox ----------------------------------------------------------------------------------


def outbox(db, limit=100) -> list[dict]:
    """The newest messages first, without their bytes: id, schedule_id, period, recipients,
    created_ms, attempts, next_ms, delivered_ms, last_error, claimed_until (a sender's claim:
    until when it is sending it; None: nobody is)."""
    rows = db.query(
        "SELECT id, schedule_id, period, recipients, created_ms, attempts, next_ms, delivered_ms, last_error, "
        "claimed_until FROM report_outbox ORDER BY id DESC LIMIT %d" % int(limit)
    )
    return [dict(r, recipients=json.loads(r["recipients"])) for r in rows]


def failing(db, username=None) -> list[dict]:
    """What is not getting through, oldest first: the messages not sent that have failed at
    least once (id, schedule_id, period, recipients, created_ms, attempts, next_ms, last_error,
    and the schedule's every, username, role) and the schedules whose report could not be built
    (as rows with id None and attempts 0). username: only that account's schedules."""
    where, args = "", ()
    if username is not None:
        where, args = " AND s.username = ?", (username,)
    rows = db.query(
        "SELECT o.id, o.schedule_id, o.period, o.recipients, o.created_ms, o.attempts, o.next_ms, o.last_error, "
        "s.every, s.username, s.role FROM report_outbox o JOIN report_schedules s ON s.id = o.schedule_id "
        "WHERE o.delivered_ms IS NULL AND o.last_error IS NOT NULL" + where + " ORDER BY o.id",
        args,
    )
    out = [dict(r, recipients=json.loads(r["recipients"])) for r in rows]
    broken = db.query(
        "SELECT s.id AS schedule_id, s.recipients, s.created_ms, s.last_error, s.every, s.username, s.role "
        "FROM report_schedules s WHERE s.last_error IS NOT NULL" + where + " ORDER BY s.id",
        args,
    )
    out += [
        dict(r, id=None, period=None, attempts=0, next_ms=None, recipients=json.loads(r["recipients"])) for r in broken
    ]
    return out


def retry_now(db, row_id, now_ms, send=None, history=None) -> str | None:
    """Try the message row_id again now, whatever its back-off: None when the server took it
    (or another sender just sent it), else the error (kept with the row, which goes on being
    retried). Raises ScheduleError when there is no such message waiting."""
    row = db.query_one(
        "SELECT id, recipients, message, attempts FROM report_outbox WHERE id = ? AND delivered_ms IS NULL", (row_id,)
    )
    if row is None:
        raise ScheduleError("no report message #%s waiting to be sent; see rating reports outbox" % row_id)
    history = history or site_mod.load(db)
    token = _claim(db, row_id, now_ms, due=False)
    if token is None:
        if db.query_one("SELECT 1 AS x FROM report_outbox WHERE id = ? AND delivered_ms IS NULL", (row_id,)) is None:
            return None  # another sender has just sent it
        return "another sender is sending it right now; see rating reports outbox"
    return _attempt(db, row, history.alerts(now_ms), now_ms, send or alertsend.smtp_send, token)


def _claim(db, row_id, now_ms, due=True) -> str | None:
    """Claim the message for this sender (a lease of alertsend.LEASE_S): its token, or None when
    it was sent meanwhile, another sender's claim has not run out, or (due) it is backing off."""
    token = uuid.uuid4().hex
    sql = (
        "UPDATE report_outbox SET claimed_by = ?, claimed_until = ? WHERE id = ? AND delivered_ms IS NULL"
        " AND (claimed_until IS NULL OR claimed_until <= ?)"
    )
    args = [token, now_ms + alertsend.LEASE_S * 1000, row_id, now_ms]
    if due:
        sql += " AND next_ms <= ?"
        args.append(now_ms)
    with db.transaction():
        changed = db.execute(sql, tuple(args))
    return token if changed == 1 else None


def message(db, row_id) -> bytes | None:
    row = db.query_one("SELECT message FROM report_outbox WHERE id = ?", (row_id,))
    return None if row is None else row["message"].encode("ascii")


def pending(db) -> int:
    return db.scalar("SELECT COUNT(*) FROM report_outbox WHERE delivered_ms IS NULL") or 0


# --- one pass ------------------------------------------------------------------------------------


def scope(history, account, t) -> list[str] | None:
    """The offices an account sees (None: every office): admins and all_offices see all; else
    its offices and the offices of its regions (when the site file has regions)."""
    if account["role"] == "admin" or account["all_offices"]:
        return None
    offices = set(account["offices"])
    tree: Any = getattr(history, "regions", None)  # the site file's [[regions]], once it has them
    if account["regions"] and tree is not None:
        for name in account["regions"]:
            offices |= set(tree(t).get(name, ()))
    return sorted(offices)


def audience(db, history, schedule, t):
    """(offices or None for all, language or None for the deployment's) of a schedule; raises
    ScheduleError when it has no enabled account to take them from."""
    if schedule["username"] is not None:
        account = users.by_username(db, schedule["username"])
        if account is None or account["disabled"]:
            raise ScheduleError("the account %s is disabled or gone: nothing sent" % schedule["username"])
        return scope(history, account, t), account.get("lang")
    accounts = [u for u in users.list_users(db) if u["role"] == schedule["role"] and not u["disabled"]]
    if not accounts:
        raise ScheduleError("no enabled account has the role %s: nothing sent" % schedule["role"])
    offices: set[str] = set()
    for account in accounts:
        seen = scope(history, account, t)
        if seen is None:
            return None, None
        offices |= set(seen)
    return sorted(offices), None


def _build(db, history, schedule, now_ms):
    """(period key, reports by grouping) of the schedule's last closed period, or None when
    that period is already queued."""
    offices, lang = audience(db, history, schedule, now_ms)
    tz = history.home_tz(offices[0] if offices else None, now_ms)
    period, start, end = closed_period(schedule["every"], times.local(now_ms, tz))
    if period == schedule["last_period"]:
        return None
    reports = [
        report.build_report(db, by=by, start=start, end=end, lang=lang, now_ms=now_ms, offices=offices)
        for by in report.BYS
    ]
    report_pos.attach(reports, report_pos.section(db, history, start, end, offices))  # the POS section, if any
    split = TREND_PERIOD[schedule["every"]]
    trend = None
    if split is not None:
        trend = report.build_report(
            db, by="site", period=split, start=start, end=end, lang=lang, now_ms=now_ms, offices=offices
        )
    return period, reports, trend


def queue_due(db, now_ms, history=None) -> int:
    """Queue the message of each schedule whose period has closed; returns how many."""
    history = history or site_mod.load(db)
    smtp = (history.alerts(now_ms) or {}).get("email") or {}
    id_domain = smtp.get("id_domain", "rating.invalid")
    sender = smtp.get("from") or "rating@%s" % id_domain
    queued = 0
    for schedule in schedules(db):
        try:
            built = _build(db, history, schedule, now_ms)
            if built is None:
                continue
            period, reports, trend = built
            mid = "<report-%d-%s@%s>" % (schedule["id"], period, id_domain)
            msg = compose(reports, schedule["every"], period, sender, schedule["recipients"], mid, trend)
        except Exception as exc:  # one schedule's failure must not stop the others, nor sending
            error = str(exc) if isinstance(exc, ScheduleError) else "%s: %s" % (exc.__class__.__name__, exc)
            log.warning("report schedule #%d: the report could not be built (%s)", schedule["id"], error)
            with db.transaction():
                db.execute("UPDATE report_schedules SET last_error = ? WHERE id = ?", (error[:500], schedule["id"]))
            continue
        with db.transaction():
            db.execute(
                "INSERT INTO report_outbox (schedule_id, period, recipients, message, created_ms, attempts, next_ms) "
                "VALUES (?, ?, ?, ?, ?, 0, ?)",
                (schedule["id"], period, json.dumps(schedule["recipients"]), msg.as_string(), now_ms, now_ms),
            )
            db.execute(
                "UPDATE report_schedules SET last_period = ?, last_error = NULL WHERE id = ?", (period, schedule["id"])
            )
        queued += 1
    return queued


def _attempt(db, row, config, now_ms, send, token) -> str | None:
    """Hand one outbox row this sender has claimed (`token`) to the SMTP server: None when it
    took it (marked sent), else the error, kept with a doubled back-off."""
    try:
        settings = (config or {}).get("email")
        if not settings:
            raise alertsend.SecretsError("the site file has no [alerts.email] table (the SMTP server)")
        secrets = alertsend.read_secrets((config or {}).get("secrets"))
        send(settings, secrets, row["message"].encode("ascii"), json.loads(row["recipients"]))
    except Exception as exc:  # any failure: kept, retried later
        attempts = row["attempts"] + 1
        error = "%s: %s" % (exc.__class__.__name__, exc)
        with db.transaction():
            # only while the claim is still this sender's (a lease that ran out is another's now)
            db.execute(
                "UPDATE report_outbox SET attempts = ?, last_error = ?, next_ms = ?, claimed_by = NULL,"
                " claimed_until = NULL WHERE id = ? AND claimed_by = ?",
                (attempts, error[:500], now_ms + alertsend.backoff_ms(attempts), row["id"], token),
            )
        log.warning("report mail #%d not sent (%s); retried with back-off", row["id"], error)
        return error
    with db.transaction():
        db.execute(
            "UPDATE report_outbox SET delivered_ms = ?, attempts = attempts + 1, last_error = NULL, claimed_by = NULL,"
            " claimed_until = NULL WHERE id = ?",
            (now_ms, row["id"]),
        )
    return None


def deliver(db, config, now_ms, send=None) -> tuple[int, int]:
    """Send the outbox rows due, oldest first: (sent, failed). The first failure ends the pass;
    a row another sender has claimed is left to it."""
    send = send or alertsend.smtp_send
    rows = db.query(
        "SELECT id, recipients, message, attempts FROM report_outbox "
        "WHERE delivered_ms IS NULL AND next_ms <= ? ORDER BY id LIMIT 50",
        (now_ms,),
    )
    sent = 0
    for row in rows:
        token = _claim(db, row["id"], now_ms)
        if token is None:
            continue
        if _attempt(db, row, config, now_ms, send, token) is not None:
            return sent, 1
        sent += 1
    return sent, 0


def send_due(db, now_ms) -> dict:
    """One pass: queue what has closed, send what is due. {"queued", "sent", "failed", "pending"}."""
    history = site_mod.load(db)
    queued = queue_due(db, now_ms, history)
    sent, failed = deliver(db, history.alerts(now_ms), now_ms)
    return {"queued": queued, "sent": sent, "failed": failed, "pending": pending(db)}
