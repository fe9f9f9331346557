"""Server time of every console page on a database holding a year of a 100-office chain.

    .venv/bin/python bench/console.py                 # builds build/bench/console-year.db once (minutes)
    .venv/bin/python bench/console.py --offices 10    # a smaller chain, quicker
    .venv/bin/python bench/console.py --regen         # build the database again

The chain: N offices in four timezones, each with a staff panel (two sellers on shifts) and
an office panel at the exit, 40 polls per panel and day (a quarter No or silent), one
force-majeure report per panel and week, daily visitor/transaction counts, panel states, and
the verdicts of an expert team that checks 2,000 items a week. Raw events go in through
gateway.store; the polls and reports they make are written through gateway.derive's own writer
from the generator's ground truth (a `rating rebuild` of 5 million events takes about 20
minutes here and gives the same rows), with the derivation state that leaves (`mark_derived`);
verdicts through gateway.review.record.

The console is served by uvicorn in this process; each page is requested REPEAT times by a
signed-in account of the role that uses it, and the figure is the median of the server time
the console reports in its `Server-Timing: app;dur=` header (rendering included, network
excluded). The reference, measured in the same run: `report.build_report` called directly
for the same office and week as the KPI page, and the sign-in page (no data at all).
"""

import argparse
import datetime as dt
import json
import os
import random
import statistics
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [REPO]

from gateway import derive, review, rollup, schema, site, store, users  # noqa: E402

YEAR_START = dt.datetime(2025, 1, 6, tzinfo=dt.UTC)  # a Monday
DAYS = 364
POLLS_PER_PANEL_DAY = 40
PASSWORD = "bench password 1"
YEAR = "from=2025-01-01&to=2025-12-31"
ZONES = ("Europe/Moscow", "Asia/Yekaterinburg", "Europe/Kaliningrad", "Asia/Novosibirsk")


class Client:
    """A signed-in visitor: a cookie jar and the sign-in form's CSRF token."""

    def __init__(self, base):
        import http.cookiejar
        import urllib.request

        self.base = base
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))

    def get(self, path):
        with self.opener.open(self.base + path, timeout=120) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read().decode()

    def login(self, username, password):
        import re
        import urllib.parse

        html = self.get("/login")[2]
        token = re.search(r'name="csrf" value="([^"]+)"', html)
        assert token, "no sign-in form"
        body = urllib.parse.urlencode({"csrf": token.group(1), "username": username, "password": password})
        with self.opener.open(self.base + "/login", data=body.encode(), timeout=60) as r:
            r.read()


def site_toml(n):
    parts = [
        '[deployment]\nlang = "ru"\nreview_share = 0.05\nfrom = 2025-01-01T00:00:00Z\n',
        "[deployment.reference]\ndi_staff = 0.10\ndi_office = 0.12\n",
    ]
    for i in range(n):
        parts.append('[[sites]]\nid = "o%03d"\nname = "Офис %03d"\ntimezone = "%s"\n' % (i, i, ZONES[i % len(ZONES)]))
    parts.append(
        '[[questions]]\nid = "staff"\nkind = "staff"\ntext_ru = "Довольны ли Вы работой {employee}?"\n'
        'text_en = "Are you satisfied with {employee}?"\n'
    )
    parts.append(
        '[[questions]]\nid = "office"\nkind = "office"\ntext_ru = "Понравился ли Вам офис?"\n'
        'text_en = "Did you like the office?"\n'
    )
    for i in range(n):
        for k in (0, 1):
            parts.append('[[employees]]\nid = "e%03d-%d"\nname = "Сотрудник %03d-%d"\n' % (i, k, i, k))
    for i in range(n):
        parts.append(
            '[[panels]]\nsite = "o%03d"\ndevice = "desk"\nquestion = "staff"\n'
            'camera = "https://nvr.o%03d.local/cam/1?t={iso}"\n' % (i, i)
        )
        parts.append('[[panels]]\nsite = "o%03d"\ndevice = "exit"\nquestion = "office"\n' % i)
        parts.append('[[roster]]\npanel = "o%03d/desk"\nemployee = "e%03d-0"\nfrom = 2025-01-01T00:00:00Z\n' % (i, i))
        parts.append(
            '[[roster]]\npanel = "o%03d/desk"\nemployee = "e%03d-1"\nhours = "14:00-21:00"\nfrom = 2025-01-01T00:00:00Z\n'
            % (i, i)
        )
    return "\n".join(parts)


def _event(site_id, device, seq, up, t, ev, hold=None):
    payload = json.dumps({"v": 1, "seq": seq, "boot": 1, "up": up, "t": t, "ev": ev}, separators=(",", ":"))
    return {
        "site": site_id,
        "device": device,
        "seq": seq,
        "boot": 1,
        "up_ms": up,
        "t_ms": t,
        "ev": ev,
        "hold_ms": hold,
        "received_ms": t + 40,
        "payload": payload,
    }


def build(url, offices):
    """The year's chain into the database at url."""
    started = time.monotonic()
    db = schema.open_database(url)
    history_text = site_toml(offices)
    site.apply(db, site.parse(history_text), int(YEAR_START.timestamp() * 1000) - 86400000, "bench.toml")
    history = site.load(db)
    rnd = random.Random(15)
    t0 = int(YEAR_START.timestamp() * 1000)
    booted = t0 - 3600000
    answers = ("yes",) * 10 + ("unsure",) * 2 + ("no",) * 2 + (None,) * 2
    sample_ids = []
    for i in range(offices):
        sid = "o%03d" % i
        tz = history.tz(sid)
        for device, qkind in (("desk", "staff"), ("exit", "office")):
            events, polls, fms = [], [], []
            seq = 0
            camera = "https://nvr.o%03d.local/cam/1?t={iso}" % i if device == "desk" else None
            for day in range(DAYS):
                local_open = dt.datetime.combine((YEAR_START + dt.timedelta(days=day)).date(), dt.time(9, 0), tzinfo=tz)
                base = int(local_open.timestamp() * 1000)
                for k in range(POLLS_PER_PANEL_DAY):
                    at = base + k * 15 * 60000 + rnd.randrange(0, 600000)
                    seq += 1
                    open_seq = seq
                    hold = 150 + (seq % 7) * 40  # the seller's press held (no draw: the data stay as before)
                    events.append(_event(sid, device, seq, at - booted, at, "seller_short", hold))
                    answer = rnd.choice(answers)
                    ans_seq = ans_at = None
                    if answer:
                        seq += 1
                        ans_seq, ans_at = seq, at + rnd.randrange(2000, 20000)
                        events.append(_event(sid, device, seq, ans_at - booted, ans_at, answer))
                    employee = history.employee_at(sid, device, at) if device == "desk" else None
                    video = site.camera_url(camera, at, tz) if camera else None
                    polls.append(
                        (
                            sid,
                            device,
                            open_seq,
                            at,
                            at + 30000,
                            answer,
                            ans_seq,
                            ans_at,
                            0,
                            1,
                            "device",
                            employee,
                            qkind,
                            qkind,
                            video,
                            0,
                            1 if qkind == "staff" else 0,
                            hold,
                        )
                    )
                    if answer == "no" or rnd.random() < 0.02:
                        sample_ids.append(("poll", sid, device, open_seq, answer))
                if day % 7 == 3 and device == "desk":
                    at = base + 5 * 3600000 + rnd.randrange(0, 600000)
                    seq += 1
                    events.append(_event(sid, device, seq, at - booted, at, "seller_long", 3000))
                    employee = history.employee_at(sid, device, at)
                    fms.append(
                        (
                            sid,
                            device,
                            seq,
                            at,
                            at,
                            at + 15 * 60000,
                            1,
                            "device",
                            employee,
                            site.camera_url(camera, at, tz),
                            0,
                        )
                    )
                    sample_ids.append(("fm", sid, device, seq, None))
            with db.transaction():
                store.insert_events(db, events, known_max={(sid, device): 0})
                # derive's own writer, fed the rows derivation would make (see the docstring)
                derive._write(db, {"polls": polls, "force_majeure": fms})
                rollup.refresh(db, sid, device, history)  # as derivation does in the same transaction
                store.upsert_state(
                    db,
                    sid,
                    device,
                    {
                        "online": True,
                        "boot": 1,
                        "up": 1,
                        "t": t0,
                        "fw": "0.1.0",
                        "seq": seq,
                        "pending": 0,
                        "dropped": 0,
                        "faults": [],
                        "cfg": 1,
                    },
                    t0 + DAYS * 86400000,
                    "{}",
                )
                store.record_acks(db, [(sid, device, seq, t0 + DAYS * 86400000)])
        with db.transaction():
            for day in range(DAYS):
                start = int(
                    dt.datetime.combine((YEAR_START + dt.timedelta(days=day)).date(), dt.time(0), tzinfo=tz).timestamp()
                    * 1000
                )
                store.insert_counts(
                    db,
                    sid,
                    "",
                    start,
                    start + 86400000,
                    95 + rnd.randrange(20),
                    130 + rnd.randrange(40),
                    "bench",
                    start,
                )
        print("  office %d/%d (%.0f s)" % (i + 1, offices, time.monotonic() - started), flush=True)
    # the expert team: 2,000 items a week, oldest first (a year of work: ~100,000 verdicts)
    rnd.shuffle(sample_ids)
    chosen = sorted(sample_ids[: 2000 * DAYS // 7], key=lambda x: x[3])
    with db.transaction():
        for kind, sid, device, seq, answer in chosen:
            ident = review.format_id(sid, device, seq)
            if kind == "fm":
                review.record(db, review.FM, ident, "confirm", "queue on video", "bench-expert", t0)
            elif answer == "no" and rnd.random() < 0.2:
                review.record(db, review.POLL, ident, "invalid", "not a customer", "bench-expert", t0)
            else:
                review.record(db, review.POLL, ident, "valid", "", "bench-expert", t0)
    for name, role, every, offices_in_scope in (
        ("expert", "expert", True, []),
        ("manager", "store-manager", False, ["o001"]),
        ("tech", "technician", True, []),
        ("admin", "admin", True, []),
    ):
        users.add(db, name, PASSWORD, role, t0, lang="ru", all_offices=every, offices=offices_in_scope)
    polls_n, fms_n = derive.totals(db)
    print(
        "built: %d polls, %d force-majeure reports, %d verdicts in %.0f s"
        % (polls_n, fms_n, len(chosen), time.monotonic() - started)
    )
    db.execute("ANALYZE")
    db.close()


def server_ms(client, path):
    status, headers, _body = client.get(path)
    if status != 200:
        raise SystemExit("%s answered %s" % (path, status))
    return float(str(headers.get("server-timing", "dur=nan")).split("dur=")[1])


def measure(url, repeat, offices, only=None):
    from console import server
    from gateway import report

    running = server.start(url)
    clients = {}
    for name in ("expert", "manager", "tech", "admin"):
        c = Client(running.url)
        c.login(name, PASSWORD)
        clients[name] = c
    db = schema.open_database(url)
    latest = derive.latest_poll_ms(db)
    assert latest is not None, "an empty database"
    office = "o001"
    tz = site.load(db).tz(office)
    day = dt.datetime.fromtimestamp(latest / 1000, tz).date()
    monday = day - dt.timedelta(days=day.weekday())
    week = "from=%s&to=%s" % (monday.isoformat(), (monday + dt.timedelta(days=6)).isoformat())
    poll_page = json.loads(
        clients["expert"].get("/api/v1/polls?site=%s&from_ms=%d&limit=1" % (office, latest - 86400000))[2]
    )
    pid = poll_page["polls"][0]["id"]
    fms = derive.index(db, {office}, latest - 14 * 86400000, None)[1]
    fm_id = review.format_id(fms[-1]["site"], fms[-1]["device"], fms[-1]["seq"])
    pages = [
        ("sign-in page (reference)", None, "/login"),
        ("home", "expert", "/"),
        ("review queue, all %d offices, the week" % offices, "expert", "/review"),
        ("review queue, all offices, the week, page 20", "expert", "/review?status=all&page=20&" + week),
        ("review queue, one office, the week", "expert", "/review?site=%s" % office),
        # a week nobody opened within the last minute: the sample is read, not cached
        ("review queue, all offices, another week (cold)", "expert", "COLD"),
        ("review item: a poll", "expert", "/review/poll/%s" % pid),
        ("review item: force majeure (time line)", "expert", "/review/fm/%s" % fm_id),
        ("KPI page, one office, the week (the default)", "manager", "/reports"),
        ("KPI page, one office, the week, by employee", "manager", "/reports?by=employee&" + week + "&site=" + office),
        (
            "KPI page, one office, the year, by month",
            "manager",
            "/reports?period=month&from=2025-01-01&to=2025-12-31&site=" + office,
        ),
        ("KPI page, all %d offices, the week" % offices, "expert", "/reports?site=&" + week),
        ("fleet, all offices, page 1 (50 panels)", "tech", "/fleet"),
        ("fleet, one office", "manager", "/fleet"),
        ("accounts", "admin", "/admin/users"),
        ("API: 100 polls", "expert", "/api/v1/polls?limit=100"),
        ("API: report, one office, the week", "manager", "/api/v1/reports"),
        ("dashboard: trends, one office, 8 weeks by employee (default)", "manager", "/trends?by=employee"),
        (
            "dashboard: trends, one office, the year by month",
            "manager",
            "/trends?period=month&from=2025-01-01&to=2025-12-31&site=" + office,
        ),
        ("dashboard: heat map, one office, 4 weeks (default)", "manager", "/heatmap"),
        ("dashboard: rankings, employees of one office, the week", "manager", "/rankings?" + week + "&site=" + office),
        ("dashboard: rankings, all %d offices, the week" % offices, "expert", "/rankings?by=site&site=&" + week),
        ("office page, one office, the week (default)", "manager", "/office"),
        ("office page, one office, the year", "manager", "/office?site=%s&%s" % (office, YEAR)),
        (
            "drill-down: DI-staff of one office, the week",
            "manager",
            "/polls?site=%s&figure=di_staff&%s" % (office, week),
        ),
        (
            "drill-down: valid polls of one office, the year, page 200",
            "manager",
            "/polls?site=%s&figure=polls&page=200&%s" % (office, YEAR),
        ),
        (
            "drill-down: No answers of an employee, the year",
            "manager",
            "/polls?site=%s&figure=di_staff&what=no&employee=e001-0&%s" % (office, YEAR),
        ),
        ("drill-down: heat-map cell (Mon 10:00), the year", "manager", "/polls?site=%s&cell=1-10&%s" % (office, YEAR)),
    ]
    anonymous = Client(running.url)
    rows = []
    cold_weeks = [
        "/review?from=%s&to=%s"
        % ((monday - dt.timedelta(days=7 * k)).isoformat(), (monday - dt.timedelta(days=7 * k - 6)).isoformat())
        for k in range(1, 2 * repeat + 2)
    ]
    for label, who, path in pages:
        if only and only not in label:
            continue
        client = anonymous if who is None else clients[str(who)]
        server_ms(client, cold_weeks.pop() if path == "COLD" else path)  # warm the SQLite pages
        times = []
        for _ in range(repeat):
            times.append(server_ms(client, cold_weeks.pop() if path == "COLD" else path))
            if len(times) >= 2 and min(times) > 3000:
                break  # seconds per call: two tell enough
        rows.append((label, statistics.median(times), max(times)))
        print("  %-52s median %7.1f ms  max %7.1f ms" % (label, rows[-1][1], rows[-1][2]), flush=True)
    ref = []
    for _ in range(repeat):
        t = time.perf_counter()
        report.build_report(
            db,
            by="site",
            site=office,
            start=dt.datetime.combine(monday, dt.time()),
            end=dt.datetime.combine(monday + dt.timedelta(days=7), dt.time()),
            lang="ru",
        )
        ref.append((time.perf_counter() - t) * 1000)
    print("  %-52s median %7.1f ms" % ("reference: build_report(one office, the week) direct", statistics.median(ref)))
    if not only or "drill" in only:
        check_drill_down(db, clients["manager"], office)
    db.close()
    running.stop()
    return rows


def check_drill_down(db, client, office):
    """The drill-down's count is the report's n on the big database too (a year of one office)."""
    import re

    from gateway import report

    rep = report.build_report(
        db, by="site", site=office, start=dt.datetime(2025, 1, 1), end=dt.datetime(2026, 1, 1), lang="ru"
    )
    for figure in ("di_staff", "di_office"):
        body = client.get("/polls?site=%s&figure=%s&%s" % (office, figure, YEAR))[2]
        found = re.search(r'id="drill-count" data-n="(\d+)"', body)
        n = int(found.group(1)) if found else None
        want = rep["rows"][0]["kpi"][figure]["n"]
        print("  drill-down count of %s, the year: %s (the report's n: %d)" % (figure, n, want), flush=True)
        if n != want:
            raise SystemExit("the drill-down of %s counts %s polls, the report %d" % (figure, n, want))


def mark_derived(url):
    """Record in derive_state what derivation leaves after feeding every event of each panel
    (fed_seq = fed_count = its last seq, nothing open): the bench writes the derived rows
    directly, and without this state the lost-event check of every report would read every
    event of every panel, which no running gateway makes it do. Bench-only SQL on derive's table."""
    import json

    from gateway.windows import PanelWindows

    db = schema.open_database(url)
    try:
        if db.scalar("SELECT COUNT(*) FROM derive_state"):
            return
        empty = json.dumps({"windows": PanelWindows().snapshot(), "sources": {}, "arrival_boots": []})
        with db.transaction():
            for r in db.query(
                "SELECT site, device, MAX(seq) AS seq, COUNT(*) AS n FROM raw_events GROUP BY site, device"
            ):
                state = dict(json.loads(empty), fed_seq=r["seq"], fed_count=r["n"])
                db.execute(
                    "INSERT INTO derive_state (site, device, fed_seq, fed_count, snapshot, watch, updated_ms, due_ms) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, NULL)",
                    (r["site"], r["device"], r["seq"], r["n"], json.dumps(state), json.dumps({"rev": 0}), 0),
                )
    finally:
        db.close()


def main():
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--offices", type=int, default=100)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--regen", action="store_true", help="build the database again")
    p.add_argument("--only", metavar="TEXT", help="only the pages whose label contains TEXT")
    args = p.parse_args()
    folder = os.path.join(REPO, "build", "bench")
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "console-year-%d.db" % args.offices)
    url = "sqlite:///" + path
    if args.regen and os.path.exists(path):
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(path + suffix):
                os.remove(path + suffix)
    if not os.path.exists(path):
        print("building a year of %d offices into %s" % (args.offices, path), flush=True)
        building = path + ".building"
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(building + suffix):
                os.remove(building + suffix)
        build("sqlite:///" + building, args.offices)
        os.replace(building, path)
    mark_derived(url)
    print("server time per page (median of %d, Server-Timing), SQLite %s:" % (args.repeat, path), flush=True)
    measure(url, args.repeat, args.offices, args.only)


if __name__ == "__main__":
    main()
