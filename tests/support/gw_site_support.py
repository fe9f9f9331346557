"""Helpers for the gateway tests of site files, derivation, review and reports (tests/gateway/):
a migrated database, a site file applied, raw events stored the way ingest stores them."""

import json

from gateway import derive, schema, site, store

T0 = 1736150400000  # 2025-01-06T08:00:00Z = 11:00 in Moscow, a Monday
MIN = 60000

SITE_TOML = """
[deployment]
lang = "en"
k = 0.8
from = 2025-01-01T00:00:00Z

[deployment.reference]
di_staff = 0.10
di_office = 0.12

[[sites]]
id = "msk"
name = "Офис на Тверской"
timezone = "Europe/Moscow"

[[questions]]
id = "staff"
kind = "staff"
text_ru = "Довольны ли Вы работой менеджера {employee}?"
text_en = "Are you satisfied with the work of {employee}?"

[[questions]]
id = "office"
kind = "office"
text_ru = "Понравилась ли Вам организация работы офиса?"
text_en = "Did you like the organisation of our office?"

[[questions]]
id = "loyalty"
kind = "loyalty"
text_ru = "Порекомендуете ли Вы нас друзьям?"
text_en = "Would you recommend us to your friends?"

[[employees]]
id = "ivanova"
name = "Елена Иванова"

[[employees]]
id = "petrov"
name = "Сергей Петров"

[[panels]]
site = "msk"
device = "desk-1"
question = "staff"
camera = "https://nvr.local/cam/3/archive?t={iso}"
window_s = 30
rearm_s = 3
fm_minutes = 15

[[panels]]
site = "msk"
device = "exit"
question = "office"
camera = "https://nvr.local/cam/1/archive?t={unix}"

[[panels]]
site = "msk"
device = "door"
question = "loyalty"

[[roster]]
panel = "msk/desk-1"
employee = "ivanova"
from = 2025-01-01T00:00:00Z
"""


def open_db(url):
    return schema.open_database(url)


def sqlite_db(tmp_path, name="rating.db"):
    return open_db("sqlite:///%s" % (tmp_path / name))


def apply_site(db, text=SITE_TOML, now_ms=T0):
    return site.apply(db, site.parse(text), now_ms, "test.toml")


class Panel:
    """Builds the raw events of one panel (seq from 1, boot 1, uptime from the panel's boot)."""

    def __init__(self, site_id="msk", device="desk-1", boot=1, booted_at=T0 - 3600000):
        self.site, self.device, self.boot, self.booted_at = site_id, device, boot, booted_at
        self.seq = 0
        self.events = []

    def press(self, at_ms, ev, clock=True, received_ms=None, hold=None):
        self.seq += 1
        e = {
            "site": self.site,
            "device": self.device,
            "seq": self.seq,
            "boot": self.boot,
            "up_ms": at_ms - self.booted_at,
            "t_ms": at_ms if clock else None,
            "ev": ev,
            "hold_ms": hold,
            "received_ms": received_ms if received_ms is not None else at_ms + 50,
        }
        e["payload"] = json.dumps(
            {"v": 1, "seq": e["seq"], "boot": e["boot"], "up": e["up_ms"], "t": e["t_ms"], "ev": ev}
        )
        self.events.append(e)
        return e

    def poll(self, at_ms, answer=None, after_ms=5000):
        self.press(at_ms, "seller_short")
        if answer:
            self.press(at_ms + after_ms, answer)


def store_events(db, events):
    with db.transaction():
        return store.insert_events(db, events)


def derived(db):
    """All derived rows, comparable across runs (sorted lists of tuples)."""
    out = {}
    for table, cols in (
        ("polls", derive.POLL_COLUMNS),
        ("force_majeure", derive.FM_COLUMNS),
        ("unsolicited", derive.UNSOLICITED_COLUMNS),
        ("anomalies", derive.ANOMALY_COLUMNS),
    ):
        rows = db.query("SELECT %s FROM %s" % (", ".join(cols), table))
        out[table] = sorted(tuple(r[c] for c in cols) for r in rows)
    return out


T_OFFICES = 1736150400000  # 2025-01-06T08:00Z = 11:00 Moscow = 00:00 Los Angeles


def two_offices(tmp_path, msk_polls, la_polls):
    """A Moscow and a Los Angeles office (t0 = 2025-01-06T08:00Z = 11:00 Moscow = 00:00 LA),
    their polls at t0 + hours (answer), derived; -> the database URL."""
    hour = 60 * MIN
    db = sqlite_db(tmp_path)
    text = SITE_TOML.replace(
        "[[questions]]", '[[sites]]\nid = "aaa"\nname = "LA"\ntimezone = "America/Los_Angeles"\n\n[[questions]]', 1
    )
    text += '\n[[panels]]\nsite = "aaa"\ndevice = "desk-9"\nquestion = "staff"\n'
    apply_site(db, text)
    msk = Panel("msk", "desk-1", booted_at=T_OFFICES - 48 * hour)
    for h, answer in msk_polls:
        msk.poll(T_OFFICES + h * hour, answer)
    la = Panel("aaa", "desk-9", booted_at=T_OFFICES - 48 * hour)
    for h, answer in la_polls:
        la.poll(T_OFFICES + h * hour, answer)
    store_events(db, msk.events + la.events)
    derive.rebuild(db, T_OFFICES + 72 * hour)
    db.close()
    return "sqlite:///%s" % (tmp_path / "rating.db")


def review_scenario(db):
    """desk-1 (staff): yes, no, silent, then a long press; under it a no and a silent poll.
    exit (office): no, silent, both inside the desk's force-majeure time."""
    apply_site(db)
    d = Panel()
    d.poll(T0, "yes")
    d.poll(T0 + 2 * MIN, "no")
    d.poll(T0 + 4 * MIN)
    d.press(T0 + 10 * MIN, "seller_long")  # seq 6: FM [T0+10min, T0+25min)
    d.poll(T0 + 12 * MIN, "no")  # seq 7
    d.poll(T0 + 14 * MIN)  # seq 9
    d.poll(T0 + 16 * MIN, "yes")  # seq 10
    e = Panel(device="exit")
    e.poll(T0 + 12 * MIN, "no")
    e.poll(T0 + 13 * MIN)
    store_events(db, d.events + e.events)
    derive.update(db, [("msk", "desk-1"), ("msk", "exit")], T0 + 60 * MIN)


def run_cli(capsys, *argv):
    """`rating ARGV...` in English in this process: (exit code, stdout, stderr)."""
    from rating import cli

    code = cli.main(["--lang", "en", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err
