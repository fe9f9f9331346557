"""Subcommands of the ingest side: gateway run, deadletter list, replay, record, status.

Registration is cheap: the heavy modules (paho, the store) are imported inside the handlers.
"""

import argparse
import json
import sys
import threading
import time

from gateway import times
from gateway.cli_common import CliError, add_db, group, open_db, settings_of
from gateway.i18n import N_, _, ngettext
from protocol.checks import T_MAX

RECORD_HELP = N_(
    """\
The file format (also what `rating replay` reads): one JSON object a line,
  {"topic": "rating/v1/shop-1/panel-1/event", "payload": {...}, "received_ms": 1717000000000}
`payload` is the message body as a JSON value when the body parses as JSON (and is not a
JSON string), else the raw body as a string. `received_ms` (optional) is the arrival time.
"""
)


def register(sub):
    _register_run(sub)
    _register_deadletter(sub)
    _register_replay_record(sub)
    _register_status(sub)


def _register_run(sub):
    _g, gsub = group(
        sub,
        "gateway",
        _("run the MQTT gateway (ingest, acks, config push)"),
        _("The gateway: stores panel events from MQTT, acks them, pushes configs."),
    )
    run = gsub.add_parser(
        "run",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        help=_("connect to the broker and ingest until stopped"),
        description=_(
            "Subscribe (QoS 1, persistent session) to the panels' event and state topics and the "
            "counts topic, store each batch in one transaction and only then publish each panel's "
            "cumulative ack (retained). Without --broker an embedded broker (amqtt) is started "
            "on --host:--port in this process. Stop with Ctrl-C or SIGTERM: the running "
            "batch is committed and acked first."
        ),
        epilog=_(
            "Config file (TOML, top-level keys, all optional; command-line options win):\n"
            '  broker = "mqtt://127.0.0.1:1883"   db = "postgresql://rating@db/rating"\n'
            '  data_dir = "/var/lib/rating"      root = "rating/v1"   client_id = "rating-gateway"\n'
            "  batch_max = 500  batch_ms = 50  inflight = 50  max_unconfirmed = 2000\n"
            '  broker_host = "127.0.0.1"  broker_port = 1883  config_push_s = 5.0  derive_tick_s = 10.0\n'
            "  ack_coalesce_ms = 100  tcp_nodelay = false\n"
            "See gateway/README.md."
        ),
    )
    run.add_argument(
        "--broker",
        metavar="URL",
        help=_("MQTT broker, mqtt://[user:password@]HOST:PORT (default: start the embedded one)"),
    )
    run.add_argument(
        "--port",
        type=int,
        dest="broker_port",
        metavar="N",
        help=_("port of the embedded broker (default 1883; only without --broker)"),
    )
    run.add_argument(
        "--host",
        dest="broker_host",
        metavar="ADDR",
        help=_(
            "address the embedded broker listens on (default 127.0.0.1: this machine only; 0.0.0.0 or a "
            "LAN address lets panels on the shop's Wi-Fi in, each with its broker account)"
        ),
    )
    add_db(run)
    run.add_argument("--config", metavar="FILE", help=_("gateway settings file (TOML), see below"))
    run.add_argument("--root", help=_("MQTT topic root (default rating/v1)"))
    run.add_argument(
        "--client-id",
        help=_(
            "MQTT client id; keep it stable so the broker keeps the "
            "session while the gateway is down (default rating-gateway)"
        ),
    )
    run.add_argument(
        "--share",
        metavar="GROUP",
        help=_(
            "several gateways on one PostgreSQL: subscribe with MQTT v5 shared subscriptions "
            "($share/GROUP/...), each gateway with its own --client-id (docs/install.md)"
        ),
    )
    run.add_argument("--data-dir", help=_("folder of the default SQLite database"))
    run.add_argument("-v", "--verbose", action="store_true", help=_("log every batch"))
    run.set_defaults(func=cmd_run)


def _register_deadletter(sub):
    _d, dsub = group(
        sub,
        "deadletter",
        _("messages that could not be stored (bad topic or payload)"),
        _(
            "Dead letters: messages the gateway could not store as what they claimed to "
            "be, with the topic, raw bytes, reason and arrival time. The same message "
            "again (a resend, a redelivery, a repeated replay) is stored once and counted."
        ),
    )
    dl = dsub.add_parser(
        "list",
        help=_("show dead letters, last seen first"),
        description=_("Show dead letters, the one seen most recently first. Times are in the offices' timezone."),
    )
    add_db(dl)
    dl.add_argument("--limit", type=int, default=50, help=_("at most this many (default 50; 0: all)"))
    dl.add_argument(
        "--since",
        metavar="WHEN",
        help=_(
            "only those seen since WHEN: 2024-05-01, 2024-05-01T10:00 (the offices' timezone unless it has "
            "an offset), or an age like 30m, 2h, 7d"
        ),
    )
    dl.add_argument("--format", choices=("table", "json"), default="table", help=_("output format"))
    dl.set_defaults(func=cmd_deadletter_list)


def _register_replay_record(sub):
    fmt = argparse.RawDescriptionHelpFormatter
    rp = sub.add_parser(
        "replay",
        formatter_class=fmt,
        help=_("feed recorded MQTT messages through the ingest path"),
        description=_(
            "Feed a recorded message file through exactly the gateway's ingest path "
            "(validation, dead letters, idempotent store, derivation) without a broker. "
            "Safe to repeat: stored events are not stored twice."
        )
        + "\n\n"
        + _(RECORD_HELP),
    )
    rp.add_argument("file", metavar="FILE.jsonl")
    add_db(rp)
    rp.add_argument("--root", default=None, help=_("MQTT topic root of the recorded topics (default rating/v1)"))
    rp.set_defaults(func=cmd_replay)

    rc = sub.add_parser(
        "record",
        formatter_class=fmt,
        help=_("record live MQTT messages to a file for `rating replay`"),
        description=_(
            "Subscribe to what the gateway subscribes to and write every message to a "
            "file, until --duration / --count or Ctrl-C."
        )
        + "\n\n"
        + _(RECORD_HELP),
    )
    rc.add_argument("--broker", required=True, metavar="URL", help="mqtt://[USER@]HOST:PORT")
    rc.add_argument(
        "--password-file",
        metavar="FILE",
        help=_("the password of the URL's user, from the first line of FILE (never in the URL: ps shows it)"),
    )
    rc.add_argument("--out", required=True, metavar="FILE.jsonl", help=_("file to write (appended to)"))
    rc.add_argument("--root", default=None, help=_("MQTT topic root (default rating/v1)"))
    rc.add_argument("--duration", type=float, metavar="S", help=_("stop after S seconds"))
    rc.add_argument("--count", type=int, metavar="N", help=_("stop after N messages"))
    rc.set_defaults(func=cmd_record)


def _register_status(sub):
    st = sub.add_parser(
        "status",
        help=_("panels online/stale/offline, never seen, config, firmware, signal, lost events, dead letters"),
        description=_(
            "Health of every panel configured in the site file or ever heard of, problems first: "
            "online, stale (silent for more than 3 heartbeats although it said it was online), "
            "offline (its last will), or never seen; last seen (in its office's timezone), "
            "firmware, signal, last reset, the config version it runs against the one pushed, "
            "backlog (events the panel still holds), lost events (count and seq ranges: dropped "
            "by the panel, or missing longer than --grace), and dead letters."
        ),
    )
    add_db(st)
    st.add_argument(
        "--grace",
        type=float,
        default=10.0,
        metavar="MIN",
        help=_("a missing seq counts as lost after this many minutes (default 10)"),
    )
    st.add_argument("--format", choices=("table", "json"), default="table", help=_("output format"))
    st.set_defaults(func=cmd_status)


# ---- helpers ---------------------------------------------------------------------------------


def _root(root):
    from protocol import ProtocolError, topics

    try:
        return topics.check_root(root or topics.DEFAULT_ROOT)
    except ProtocolError as exc:
        raise CliError("--root %s" % str(exc).split(": ", 1)[-1]) from None


def _now_ms():
    return times.now_ms()


def fmt_duration(ms):
    """'45 s', '12 min', '3 h', '2 d' (abbreviated units: no plural forms)."""
    s = max(0, ms // 1000)
    if s < 120:
        return _("%d s") % s
    if s < 7200:
        return _("%d min") % (s // 60)
    if s < 172800:
        return _("%d h") % (s // 3600)
    return _("%d d") % (s // 86400)


def fmt_age(ms, now_ms):
    """How long ago: '12 min ago'."""
    if ms is None:
        return _("never")
    return _("%s ago") % fmt_duration(now_ms - ms)


def parse_since(text, now_ms, tz):
    """--since: an age ('30m', '2h', '7d', '45s' ago) or a date/date-time (in `tz` unless it has
    an offset)."""
    try:
        return times.parse_since(text, now_ms, tz)
    except ValueError:
        raise CliError(
            _("--since %r: write an age like 30m, 2h, 7d or a date/time like 2024-05-01 or 2024-05-01T10:00") % text
        ) from None


def table(rows, columns, out=None):
    """Plain aligned text table; columns = [(key, title)]. To `out`, else sys.stdout as it is now
    (a default bound at import would keep writing to a replaced stdout's predecessor)."""
    out = out or sys.stdout
    cells = [[title for _key, title in columns]] + [[str(r.get(k, "")) for k, _title in columns] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    for n, row in enumerate(cells):
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip(), file=out)
        if n == 0:
            print("  ".join("-" * w for w in widths), file=out)


# ---- gateway run -----------------------------------------------------------------------------


def cmd_run(args):
    import logging

    from gateway import db as dbmod
    from gateway import service

    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )
    try:
        settings = service.load_settings(
            args.config,
            broker=args.broker,
            broker_port=args.broker_port,
            broker_host=args.broker_host,
            db=args.db,
            root=args.root,
            client_id=args.client_id,
            data_dir=args.data_dir,
            share=args.share,
        )
    except service.SettingsError as exc:
        raise CliError(str(exc)) from None
    try:
        return service.run(settings, out=sys.stdout)
    except service.SettingsError as exc:
        raise CliError(str(exc)) from None
    except dbmod.DatabaseError as exc:
        raise CliError(_("%s; check --db / db in the config file") % exc) from None
    except OSError as exc:
        raise CliError(str(exc)) from None


# ---- deadletter list -------------------------------------------------------------------------


def _letter_json(r):
    try:
        text = r["payload"].decode("utf-8")
    except UnicodeDecodeError:
        text = None
    return {
        "id": r["id"],
        "received_ms": r["received_ms"],
        "last_seen_ms": r["last_seen_ms"],
        "seen": r["seen"],
        "topic": r["topic"],
        "site": r["site"],
        "device": r["device"],
        "seq": r["seq"],
        "reason": r["reason"],
        "payload_text": text,
        "payload_hex": r["payload"].hex(),
    }


def cmd_deadletter_list(args):
    from gateway import store

    now = _now_ms()
    if args.limit < 0:
        raise CliError(_("--limit must be >= 0 (0: all)"))
    if args.since:
        parse_since(args.since, now, times.UTC)  # a bad --since is told before the database is looked at
    db = open_db(args.db, create=False)
    try:
        history = settings_of(db)
        home = history.home_tz()
        since = parse_since(args.since, now, home) if args.since else None
        rows = store.dead_letters(db, limit=args.limit, since_ms=since)
        total = store.dead_letter_count(db, distinct=True)
        messages = store.dead_letter_count(db)
    finally:
        db.close()
    if args.format == "json":
        out = [_letter_json(r) for r in rows]
        json.dump({"total": total, "messages": messages, "dead_letters": out}, sys.stdout, ensure_ascii=False, indent=1)
        print()
        return 0
    if not rows:
        if since:
            print(
                _("no dead letters since %(since)s (total %(total)d)")
                % {"since": times.format_time(since, home), "total": total}
            )
        else:
            print(_("no dead letters (total %d)") % total)
        return 0
    from gateway import i18n

    shown = []
    for r in rows:
        preview = repr(r["payload"])[2:-1]
        tz = history.home_tz(r["site"])
        shown.append(
            {
                "id": r["id"],
                "time": times.format_time(r["received_ms"], tz),
                "last": times.format_time(r["last_seen_ms"], tz) if r["seen"] > 1 else "",
                "seen": r["seen"],
                "topic": r["topic"],
                "reason": i18n.reason(r["reason"]),
                "payload": preview if len(preview) <= 60 else preview[:57] + "...",
            }
        )
    table(
        shown,
        [
            ("id", _("id")),
            ("time", _("first received")),
            ("seen", _("seen")),
            ("last", _("last received")),
            ("topic", _("topic")),
            ("reason", _("reason")),
            ("payload", _("payload")),
        ],
    )
    print(
        ngettext("%(shown)d shown, %(total)d in total", "%(shown)d shown, %(total)d in total", len(rows))
        % {"shown": len(rows), "total": total}
        + " "
        + ngettext("(%d message)", "(%d messages)", messages) % messages
    )
    return 0


# ---- replay / record ------------------------------------------------------------------------


def body_to_record(payload):
    """Raw body -> the file's `payload` value (JSON value, or the raw body as a string)."""
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        # not text: keep the exact bytes (surrogateescape round-trips through JSON \\udcXX escapes)
        return payload.decode("utf-8", "surrogateescape")
    try:
        value = json.loads(text)
    except ValueError:
        return text
    # a JSON string body would read back as a raw body, and a body the compact re-encoding
    # changes (spaces, 1.0e0, duplicate keys) would not replay the same bytes: keep those raw
    if isinstance(value, str) or record_to_body(value) != payload:
        return text
    return value


def record_to_body(value):
    """The file's `payload` value -> the raw body bytes."""
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape")
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate (a "\ud800" escape in the body): keep it escaped
        return json.dumps(value, separators=(",", ":")).encode("ascii")


def read_replay(path):
    """[(line_no, topic, body, received_ms or None)]; CliError naming the line on a bad one."""
    out = []
    try:
        f = open(path, encoding="utf-8", errors="surrogateescape")
    except OSError as exc:
        raise CliError(_("cannot read %(path)s: %(error)s") % {"path": path, "error": exc.strerror}) from None
    with f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError as exc:
                raise CliError(
                    _('%(where)s: not JSON (%(error)s); each line must be {"topic": ..., "payload": ...}')
                    % {"where": "%s:%d" % (path, n), "error": exc}
                ) from None
            if not isinstance(obj, dict) or not isinstance(obj.get("topic"), str) or "payload" not in obj:
                raise CliError(
                    _('%s: each line must be a JSON object {"topic": "<string>", "payload": <body>}')
                    % ("%s:%d" % (path, n))
                )
            ms = obj.get("received_ms")
            if ms is not None and (type(ms) is not int or not 0 <= ms < T_MAX):
                raise CliError(
                    _("%(where)s: received_ms must be a whole number of ms since 1970 (before 2100), got %(got)r")
                    % {"where": "%s:%d" % (path, n), "got": ms}
                )
            out.append((n, obj["topic"], record_to_body(obj["payload"]), ms))
    return out


def replay(db, lines, root, now_ms):
    """Feed (line, topic, body, received_ms) through the Ingestor; returns its stats."""
    from gateway import ingest

    changed = set()
    ing = ingest.Ingestor(db, root, on_commit=lambda devices, _ms: changed.update(devices))
    for _line, topic, body, ms in lines:
        ing.handle(topic, body, now_ms if ms is None else ms)
        if len(ing) >= ing.BATCH_MAX:
            ing.flush()
    ing.flush()
    # derive once at the end, as of now_ms (what the live gateway's clock tick would show by now)
    derive = ingest.derive_hook(db)
    if derive and changed:
        derive(changed, now_ms)
    return ing.stats


def cmd_replay(args):
    root = _root(args.root)
    lines = read_replay(args.file)
    db = open_db(args.db)
    try:
        stats = replay(db, lines, root, _now_ms())
    finally:
        db.close()
    print(
        _(
            "replayed %(messages)d messages from %(file)s: %(events)d events stored, %(duplicates)d duplicates "
            "ignored, %(states)d states, %(counts)d counts, %(dead_letters)d dead letters"
        )
        % dict(stats, file=args.file)
    )
    if stats["dead_letters"]:
        print(_("see them with: rating deadletter list"))
    return 0


def _record_password(args, user, password):
    """The login's password from --password-file; never from the command line (ps shows it)."""
    if password is not None:
        raise CliError(
            _("--broker: a password in the URL is visible to every user of this machine (ps); use --password-file FILE")
        )
    if not args.password_file:
        return None
    if not user:
        raise CliError(_("--password-file needs the account in the URL: mqtt://USER@HOST:PORT"))
    try:
        with open(args.password_file, encoding="utf-8") as f:
            secret = f.readline().rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as exc:
        detail = getattr(exc, "strerror", None) or exc
        raise CliError(
            _("cannot read --password-file %(file)s: %(error)s") % {"file": args.password_file, "error": detail}
        ) from None
    if not secret:
        raise CliError(_("--password-file %s is empty") % args.password_file)
    return secret


def cmd_record(args):
    import queue
    import signal

    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from protocol import ProtocolError, mqtturl, topics

    root = _root(args.root)
    try:
        host, port, user, password, _tls = mqtturl.parse(args.broker, tls=False)
    except ProtocolError as exc:
        raise CliError("--%s" % exc) from None
    password = _record_password(args, user, password)
    shown = mqtturl.redact(args.broker)
    q = queue.Queue()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, clean_session=True)
    if user:
        client.username_pw_set(user, password)
    subscribed = threading.Event()

    def on_connect(c, _userdata, _flags, rc, _props):
        if not rc.is_failure:
            c.subscribe([(t, 1) for t in topics.gateway_subscriptions(root)])

    client.on_connect = on_connect
    client.on_subscribe = lambda c, u, mid, rcs, p: subscribed.set()
    client.on_message = lambda c, u, m: q.put((m._topic, m.payload, _now_ms()))
    try:
        client.connect(host, port, keepalive=30)
    except OSError as exc:
        raise CliError(
            _("cannot connect to the broker at %(url)s: %(error)s; is it running?") % {"url": shown, "error": exc}
        ) from None
    stop = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.append(1))
    client.loop_start()
    if not subscribed.wait(10):
        client.loop_stop()
        raise CliError(_("the broker at %s did not confirm the subscription within 10 s") % shown)
    print(
        _("recording %(root)s/... from %(url)s to %(file)s") % {"root": root, "url": shown, "file": args.out},
        flush=True,
    )
    deadline = time.monotonic() + args.duration if args.duration else None
    n = 0
    try:
        with open(args.out, "a", encoding="utf-8") as f:
            while (
                not stop
                and (deadline is None or time.monotonic() < deadline)
                and (args.count is None or n < args.count)
            ):
                try:
                    topic, body, ms = q.get(timeout=0.1)
                except queue.Empty:
                    continue
                rec = {"topic": topic.decode("utf-8", "replace"), "payload": body_to_record(body), "received_ms": ms}
                line = json.dumps(rec, ensure_ascii=False)
                if not line.isascii():
                    try:
                        line.encode("utf-8")
                    except UnicodeEncodeError:  # lone surrogates (\udcXX = bytes that are not
                        line = json.dumps(rec)  # UTF-8) cannot be written raw: write escapes
                f.write(line + "\n")
                f.flush()
                n += 1
    finally:
        client.disconnect()
        client.loop_stop()
    print(
        ngettext("recorded %(n)d message to %(file)s", "recorded %(n)d messages to %(file)s", n)
        % {"n": n, "file": args.out}
    )
    return 0


# ---- status ----------------------------------------------------------------------------------


def status_report(db, now_ms, grace_ms):
    """`rating status` as data (gateway.status.report): every panel, problems first."""
    from gateway import status

    return status.report(db, now_ms, grace_ms)


STATE_WORDS = {
    "online": N_("online"),
    "stale": N_("STALE"),
    "offline": N_("OFFLINE"),
    "never_seen": N_("NEVER SEEN"),
}


def _problem_texts(p, now):
    """The problems of one panel, for people."""
    out = []
    for code in p["problems"]:
        if code == "stale":
            out.append(
                _("silent for %(age)s (heartbeat %(hb)d s)")
                % {"age": fmt_duration(now - p["last_seen_ms"]), "hb": p["heartbeat_s"]}
            )
        elif code == "config_pending":
            out.append(
                _("config %(pushed)d pushed, runs %(runs)s") % {"pushed": p["cfg_pushed"], "runs": p["cfg"] or "-"}
            )
        elif code == "config_error":
            out.append(_("config error: %s") % p["cfg_err"])
        elif code == "faults":
            out.append(_("faults: %s") % ",".join(p["faults"]))
        elif code == "weak_signal":
            out.append(_("weak signal"))
        elif code == "watchdog":
            out.append(_("reset by the watchdog"))
        elif code == "never_seen":
            out.append(_("configured, never seen"))
        elif code == "lost":
            out.append(ngettext("%d event lost", "%d events lost", p["lost"]) % p["lost"])
    if not p["configured"]:
        out.append(_("not in the site file"))
    return "; ".join(out)


def _status_row(p, now):
    tz = times.zone(p["timezone"])
    seen = _("never")
    if p["last_seen_ms"]:
        seen = "%s (%s)" % (times.format_time(p["last_seen_ms"], tz), fmt_age(p["last_seen_ms"], now))
    cfg = "-"
    if p["cfg"] is not None or p["cfg_pushed"] is not None:
        cfg = "%s/%s" % (
            p["cfg"] if p["cfg"] is not None else "-",
            p["cfg_pushed"] if p["cfg_pushed"] is not None else "-",
        )
    return {
        "panel": "%s/%s" % (p["site"], p["device"]),
        "state": _(STATE_WORDS[p["state"]]),
        "seen": seen,
        "fw": p["fw"] or "-",
        "rssi": _("%d dBm") % p["rssi"] if p["rssi"] is not None else "-",
        "reset": p["reset"] or "-",
        "cfg": cfg,
        "backlog": "-" if p["backlog"] is None else p["backlog"],
        "acked": "-" if p["acked_seq"] is None else p["acked_seq"],
        "lost": "%d (%s)" % (p["lost"], p["lost_ranges"]) if p["lost"] else "0",
        "missing": p["missing_open"],
        "problems": _problem_texts(p, now),
    }


def cmd_status(args):
    if args.grace <= 0:
        raise CliError(_("--grace must be a number of minutes > 0"))
    db = open_db(args.db, create=False)
    try:
        settings_of(db)
        report = status_report(db, _now_ms(), int(args.grace * 60000))
    finally:
        db.close()
    if args.format == "json":
        json.dump(report, sys.stdout, ensure_ascii=False, indent=1)
        print()
        return 0
    now = report["now_ms"]
    rows = [_status_row(p, now) for p in report["panels"]]
    if rows:
        table(
            rows,
            [
                ("panel", _("panel")),
                ("state", _("state")),
                ("seen", _("last seen")),
                ("fw", _("firmware")),
                ("rssi", _("signal")),
                ("reset", _("last reset")),
                ("cfg", _("config runs/pushed")),
                ("backlog", _("backlog")),
                ("acked", _("acked seq")),
                ("lost", _("lost events (seqs)")),
                ("missing", _("missing, waiting")),
                ("problems", _("problems")),
            ],
        )
    else:
        print(_("no panels configured or seen yet"))
    n, msgs = report["dead_letters"], report["dead_letter_messages"]
    line = _("dead letters: %d") % n
    if msgs != n:
        line += " " + ngettext("(%d message)", "(%d messages)", msgs) % msgs
    if n:
        line += " " + _("(see: rating deadletter list)")
    print(line)
    return 0
