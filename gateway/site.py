"""The site file (`rating site apply FILE.toml`) and the settings history it feeds.

Three layers, functional core first:
- `parse(text)` -> `SiteFile`: reads and validates the TOML, collecting *every* problem with the
  field path ("panels[2].device: 'Panel 1' is not a valid id ..."); pure.
- `plan(existing_rows, sitefile, now_ms)` -> rows to append: compares the file with the stored
  history and returns only what changed (an unchanged file appends nothing); pure.
- `apply(db, sitefile, now_ms)` and `load(db)` -> `History`: the thin database shell.

History model (append-only, never edited): one table `site_history` with a row per
(kind, key, valid_from_ms, rev). kind is deployment|site|panel|question|employee|roster; data is
the entity as JSON, or NULL when the entity was removed from the file (it ends at valid_from).
The value of an entity at time t is the row with the greatest valid_from <= t (ties: the latest
rev). A row stamped with the apply time (no explicit `from`) that is the entity's first row also
covers earlier times: events recorded before the first apply still get a question and timings.

Roster: key = "<site>/<device>" plus the shift slot ("" all day, or "mon,tue|09:00-14:00");
at time t the most specific matching slot (days+hours > hours > all day) wins, checked in the
site's timezone.
"""

import bisect
import datetime as _dt
import hashlib
import json
import tomllib
import zoneinfo

from protocol.messages import CONFIG_RANGES

KINDS = ("deployment", "site", "question", "employee", "panel", "roster")
QUESTION_KINDS = ("staff", "office", "loyalty")
LANGS = ("ru", "en")
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DEPLOYMENT_KEY = "deployment"


class SiteFileError(ValueError):
    """Every problem found in a site file; str() lists them one per line."""

    def __init__(self, errors, source="site file"):
        self.errors = list(errors)
        self.source = source
        super().__init__("%s: %d problem(s):\n  %s" % (source, len(self.errors), "\n  ".join(self.errors)))


# Defaults a site file may override. Thresholds are named as in kpi_core.Thresholds where possible.
DEFAULT_DEPLOYMENT = {
    "lang": "ru",
    "k": 0.8,
    "thresholds": {},
    "reference": {},
    "review_share": 0.1,
}
DEFAULT_PANEL = {"window_s": 30, "rearm_s": 3, "fm_minutes": 15}
# Whole numbers within what a panel accepts in its config (protocol.messages.CONFIG_RANGES).
LIMITS = {name: CONFIG_RANGES[name] for name in DEFAULT_PANEL}


def threshold_names():
    """Field names of kpi_core.Thresholds (empty when kpi_core has none yet)."""
    try:
        import dataclasses

        from kpi_core import Thresholds

        return {f.name for f in dataclasses.fields(Thresholds)}
    except (ImportError, TypeError):
        return set()


def is_id(value):
    return (
        isinstance(value, str)
        and 1 <= len(value) <= 32
        and all(c in "abcdefghijklmnopqrstuvwxyz0123456789-" for c in value)
    )


class _Checker:
    """Collects errors with field paths so the user sees them all at once."""

    def __init__(self):
        self.errors = []

    def err(self, path, problem):
        self.errors.append("%s: %s" % (path, problem))

    def id(self, path, value):
        if value is None:
            self.err(path, "is required (an id: a-z, 0-9, '-', 1-32 chars)")
            return None
        if not is_id(value):
            self.err(path, "%r is not a valid id ([a-z0-9-], 1-32 chars)" % (value,))
            return None
        return value

    def text(self, path, value, required=True):
        if value is None:
            if required:
                self.err(path, "is required (text)")
            return None
        if not isinstance(value, str) or not value.strip():
            self.err(path, "must be non-empty text, got %r" % (value,))
            return None
        return value.strip()

    def number(self, path, value, lo, hi, default=None, integer=False):
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.err(path, "must be a number, got %r" % (value,))
            return default
        if integer:
            if value != int(value):
                self.err(path, "must be a whole number, got %r" % (value,))
                return default
            value = int(value)
            if not lo <= value <= hi:
                self.err(path, "must be between %s and %s, got %s" % (lo, hi, value))
                return default
            return value
        if not lo <= value <= hi:
            self.err(path, "must be between %s and %s, got %s" % (lo, hi, value))
            return default
        return value

    def unknown(self, path, table, allowed):
        for key in table:
            if key not in allowed:
                self.err(
                    "%s.%s" % (path, key) if path else key, "unknown field (allowed: %s)" % ", ".join(sorted(allowed))
                )


def to_ms(value, tz=None):
    """TOML datetime / ISO 8601 string / unix ms -> unix ms. A value without an offset is read in
    `tz` (the site's timezone) when given; else ValueError."""
    if isinstance(value, bool):
        raise ValueError("must be a date-time, got %r" % (value,))
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            value = _dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise ValueError("%r is not an ISO 8601 date-time like 2025-01-06T09:00:00+03:00" % (value,)) from None
    if isinstance(value, _dt.date) and not isinstance(value, _dt.datetime):
        value = _dt.datetime(value.year, value.month, value.day)
    if not isinstance(value, _dt.datetime):
        raise ValueError("must be a date-time like 2025-01-06T09:00:00+03:00, got %r" % (value,))
    if value.tzinfo is None:
        if tz is None:
            raise ValueError("%s has no UTC offset; write it like 2025-01-06T09:00:00+03:00" % value.isoformat())
        value = value.replace(tzinfo=tz)
    return int(round(value.timestamp() * 1000))


def _hours(text):
    """'09:00-14:00' -> (540, 840) minutes; an end before the start crosses midnight."""
    try:
        start, end = text.split("-")

        def minutes(part):
            h, m = part.strip().split(":")
            h, m = int(h), int(m)
            if not (0 <= h <= 24 and 0 <= m < 60) or h * 60 + m > 1440:
                raise ValueError
            return h * 60 + m

        a, b = minutes(start), minutes(end)
    except (ValueError, AttributeError):
        raise ValueError('%r is not a time range like "09:00-14:00"' % (text,)) from None
    if a == b:
        raise ValueError("%r is an empty time range" % (text,))
    if b == 23 * 60 + 59:
        b = 24 * 60  # "...-23:59" means to the end of the day
    return a, b


class SiteFile:
    """A validated site file: `entries` is [(kind, key, from_ms or None, data)], file order."""

    def __init__(self, entries, from_ms=None, digest=""):
        self.entries = entries
        self.from_ms = from_ms
        self.digest = digest

    def of(self, kind):
        return [e for e in self.entries if e[0] == kind]


def parse(text, source="site file"):
    """Validate the TOML text of a site file; return a SiteFile or raise SiteFileError."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SiteFileError(["not valid TOML: %s" % exc], source) from None
    c = _Checker()
    entries = []
    c.unknown("", doc, ("deployment", "sites", "questions", "employees", "panels", "roster"))

    dep_in = doc.get("deployment", {})
    file_from = None
    if not isinstance(dep_in, dict):
        c.err("deployment", "must be a table ([deployment])")
        dep_in = {}
    c.unknown("deployment", dep_in, ("lang", "k", "from", "thresholds", "reference", "review_share"))
    if "from" in dep_in:
        try:
            file_from = to_ms(dep_in["from"])
        except ValueError as exc:
            c.err("deployment.from", str(exc))
    dep = dict(DEFAULT_DEPLOYMENT)
    lang = dep_in.get("lang", "ru")
    if lang not in LANGS:
        c.err("deployment.lang", "must be one of %s, got %r" % (", ".join(LANGS), lang))
    else:
        dep["lang"] = lang
    dep["k"] = c.number("deployment.k", dep_in.get("k"), 0.0, 1.0, 0.8)
    dep["review_share"] = c.number("deployment.review_share", dep_in.get("review_share"), 0.0, 1.0, 0.1)
    for table in ("thresholds", "reference"):
        values = dep_in.get(table, {})
        if not isinstance(values, dict):
            c.err("deployment.%s" % table, "must be a table of numbers")
            continue
        checked = {}
        for name, value in values.items():
            v = c.number("deployment.%s.%s" % (table, name), value, -1e9, 1e9)
            if v is not None:
                checked[name] = v
        dep[table] = checked
    names = threshold_names()
    for name in list(dep["thresholds"]):
        if names and name not in names:
            c.err("deployment.thresholds.%s" % name, "unknown threshold (known: %s)" % ", ".join(sorted(names)))
            del dep["thresholds"][name]
    if names:
        try:
            from kpi_core import Thresholds

            Thresholds(**dep["thresholds"])
        except (ValueError, TypeError) as exc:
            c.err("deployment.thresholds", str(exc))
    for name, value in dep["reference"].items():
        if name not in ("di_staff", "di_office"):
            c.err("deployment.reference.%s" % name, "unknown reference value (known: di_office, di_staff)")
        elif not 0 <= value <= 1:
            c.err("deployment.reference.%s" % name, "must be a fraction between 0 and 1, got %s" % value)
    entries.append(("deployment", DEPLOYMENT_KEY, None, dep))

    def items(name):
        value = doc.get(name, [])
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            c.err(name, "must be an array of tables ([[%s]])" % name)
            return []
        return value

    def entry_from(path, item, tz=None):
        if "from" not in item:
            return None
        try:
            return to_ms(item["from"], tz)
        except ValueError as exc:
            c.err(path + ".from", str(exc))
            return None

    seen = set()

    def add(kind, key, path, frm, data):
        if (kind, key, frm) in seen:
            c.err(path, "duplicate %s %r%s" % (kind, key, "" if frm is None else " with the same from"))
            return
        seen.add((kind, key, frm))
        entries.append((kind, key, frm, data))

    sites = {}
    for i, item in enumerate(items("sites")):
        p = "sites[%d]" % i
        c.unknown(p, item, ("id", "name", "timezone", "from"))
        sid = c.id(p + ".id", item.get("id"))
        name = c.text(p + ".name", item.get("name"))
        tzname = item.get("timezone", "UTC")
        tz = None
        try:
            tz = zoneinfo.ZoneInfo(tzname)
        except Exception:
            c.err(p + ".timezone", "%r is not a known IANA timezone (e.g. Europe/Moscow)" % (tzname,))
        if sid:
            sites[sid] = tz
            add("site", sid, p, entry_from(p, item, tz), {"name": name, "timezone": tzname})

    questions = {}
    for i, item in enumerate(items("questions")):
        p = "questions[%d]" % i
        c.unknown(p, item, ("id", "kind", "text_ru", "text_en", "from"))
        qid = c.id(p + ".id", item.get("id"))
        kind = item.get("kind")
        if kind not in QUESTION_KINDS:
            c.err(p + ".kind", "must be one of %s, got %r" % (", ".join(QUESTION_KINDS), kind))
        text_ru = c.text(p + ".text_ru", item.get("text_ru"))
        text_en = c.text(p + ".text_en", item.get("text_en"))
        if qid:
            questions[qid] = kind
            add("question", qid, p, entry_from(p, item), {"kind": kind, "text_ru": text_ru, "text_en": text_en})

    employees = set()
    for i, item in enumerate(items("employees")):
        p = "employees[%d]" % i
        c.unknown(p, item, ("id", "name", "in_question", "from"))
        eid = c.id(p + ".id", item.get("id"))
        name = c.text(p + ".name", item.get("name"))
        data = {"name": name}
        if "in_question" in item:  # the name as the question needs it ("Елены Ивановой")
            data["in_question"] = c.text(p + ".in_question", item.get("in_question"))
        if eid:
            employees.add(eid)
            add("employee", eid, p, entry_from(p, item), data)

    panels = {}
    for i, item in enumerate(items("panels")):
        p = "panels[%d]" % i
        c.unknown(
            p, item, ("site", "device", "question", "camera", "window_s", "rearm_s", "fm_minutes", "conversion", "from")
        )
        sid = c.id(p + ".site", item.get("site"))
        if sid and sid not in sites:
            c.err(p + ".site", "%r is not listed in [[sites]]" % sid)
        dev = c.id(p + ".device", item.get("device"))
        qid = item.get("question")
        if qid is None:
            c.err(p + ".question", "is required (the id of a [[questions]] entry)")
        elif qid not in questions:
            c.err(p + ".question", "%r is not listed in [[questions]]" % (qid,))
        camera = item.get("camera")
        if camera is not None:
            if not isinstance(camera, str) or not camera:
                c.err(p + ".camera", "must be a URL template text, got %r" % (camera,))
                camera = None
            else:
                try:
                    camera_url(camera, 0)
                except (KeyError, ValueError, IndexError) as exc:
                    c.err(p + ".camera", "bad placeholder %s: use {iso}, {unix} or {unix_ms}" % exc)
        data = {"question": qid, "camera": camera}
        if "conversion" in item:  # kept only when given: the default follows the question's kind
            if not isinstance(item["conversion"], bool):
                c.err(p + ".conversion", "must be true or false, got %r" % (item["conversion"],))
            else:
                data["conversion"] = item["conversion"]
        for name, default in DEFAULT_PANEL.items():
            lo, hi = LIMITS[name]
            data[name] = c.number("%s.%s" % (p, name), item.get(name), lo, hi, default, integer=True)
        if sid and dev:
            panels["%s/%s" % (sid, dev)] = sid
            add("panel", "%s/%s" % (sid, dev), p, entry_from(p, item, sites.get(sid)), data)

    for i, item in enumerate(items("roster")):
        p = "roster[%d]" % i
        c.unknown(p, item, ("panel", "employee", "from", "hours", "days"))
        panel = item.get("panel")
        if panel not in panels:
            c.err(p + ".panel", '%r is not a panel of [[panels]] (write it as "site/device")' % (panel,))
            continue
        emp = item.get("employee")
        if emp not in employees:
            c.err(p + ".employee", "%r is not listed in [[employees]]" % (emp,))
        slot = ""
        hours = item.get("hours")
        days = item.get("days")
        if hours is not None:
            try:
                _hours(hours)
                slot = hours.replace(" ", "")
            except ValueError as exc:
                c.err(p + ".hours", str(exc))
        if days is not None:
            if not isinstance(days, list) or not days or any(d not in DAYS for d in days):
                c.err(p + ".days", "must be a list of %s, got %r" % (", ".join(DAYS), days))
            else:
                slot = "%s|%s" % (",".join(d for d in DAYS if d in days), slot)
        add("roster", "%s#%s" % (panel, slot), p, entry_from(p, item, sites.get(panels[panel])), {"employee": emp})

    if c.errors:
        raise SiteFileError(c.errors, source)
    return SiteFile(entries, file_from, hashlib.sha256(text.encode()).hexdigest())


def camera_url(template, at_ms, tz=None):
    """Fill a camera URL template: {iso} (ISO 8601 in `tz`, default UTC), {unix}, {unix_ms}."""
    when = _dt.datetime.fromtimestamp(at_ms / 1000.0, tz or _dt.UTC)
    return template.format(iso=when.isoformat(timespec="seconds"), unix=at_ms // 1000, unix_ms=at_ms)


# --- history: pure planning ---------------------------------------------------------------------


def _canon(data):
    return None if data is None else json.dumps(data, sort_keys=True, ensure_ascii=False)


def plan(rows, sitefile, now_ms):
    """Rows to append for `sitefile` given the stored `rows` [(kind, key, valid_from_ms, rev,
    explicit, data_json)]. Returns [(kind, key, valid_from_ms, explicit, data_json)].

    - an entry with `from`: appended unless the row at exactly that valid_from already says the same;
    - an entry without: appended at the file's `from` (or now) when it differs from the current value;
    - a key in the history but not in the file: a removal row (data NULL) at the file's from / now.
    """
    history = History(rows)
    default_from = sitefile.from_ms if sitefile.from_ms is not None else now_ms
    out = []
    keys_in_file = set()
    for kind, key, frm, data in sitefile.entries:
        keys_in_file.add((kind, key))
        canon = _canon(data)
        if frm is not None:
            same = [r for r in history.rows(kind, key) if r[0] == frm]
            if same and same[-1][3] == canon:
                continue
            out.append((kind, key, frm, 1, canon))
        else:
            at = default_from
            current = history.row_at(kind, key, at)
            if current is not None and current[3] == canon:
                continue
            out.append((kind, key, at, 0, canon))
    for kind, key in history.keys():
        if (kind, key) in keys_in_file:
            continue
        current = history.row_at(kind, key, default_from)
        if current is not None and current[3] is not None:
            out.append((kind, key, default_from, 0, None))
    return out


class History:
    """All stored settings rows, with lookups at a time. Pure: built from rows, no database."""

    def __init__(self, rows):
        self._by_key = {}
        for kind, key, valid_from, rev, explicit, data in rows:
            self._by_key.setdefault((kind, key), []).append((valid_from, rev, explicit, data))
        self._froms = {}
        for key, lst in self._by_key.items():
            lst.sort(key=lambda r: (r[0], r[1]))
            self._froms[key] = [r[0] for r in lst]
        self._parsed = {}
        self._tz = {}
        self._roster = {}
        self._keys_of = {}

    def keys(self, kind=None):
        if kind is None:
            return sorted(self._by_key)
        cached = self._keys_of.get(kind)
        if cached is None:
            cached = self._keys_of[kind] = sorted(k for k in self._by_key if k[0] == kind)
        return cached

    def rows(self, kind, key):
        return self._by_key.get((kind, key), [])

    def row_at(self, kind, key, t):
        lst = self._by_key.get((kind, key))
        if not lst:
            return None
        i = bisect.bisect_right(self._froms[(kind, key)], t)  # rows sort by (from, rev): last wins
        best = lst[i - 1] if i else None
        if best is None and not lst[0][2]:
            best = lst[0]  # first row stamped at apply time: it also covers earlier events
        return best

    def get(self, kind, key, t):
        row = self.row_at(kind, key, t)
        if row is None or row[3] is None:
            return None
        cache_key = (kind, key, row[0], row[1])
        if cache_key not in self._parsed:
            self._parsed[cache_key] = json.loads(row[3])
        return self._parsed[cache_key]

    # --- domain lookups ---
    def deployment(self, t):
        dep = dict(DEFAULT_DEPLOYMENT)
        dep.update(self.get("deployment", DEPLOYMENT_KEY, t) or {})
        return dep

    def tz(self, site, t=None):
        data = self.get("site", site, t if t is not None else 2**62) or {}
        name = data.get("timezone", "UTC")
        if name not in self._tz:
            try:
                self._tz[name] = zoneinfo.ZoneInfo(name)
            except Exception:
                self._tz[name] = zoneinfo.ZoneInfo("UTC")
        return self._tz[name]

    def site_name(self, site, t=2**62):
        return (self.get("site", site, t) or {}).get("name") or site

    def panel(self, site, device, t):
        """The panel's settings at t; the last known ones when it was removed; None if never set."""
        key = "%s/%s" % (site, device)
        data = self.get("panel", key, t)
        if data is None:
            for valid_from, _rev, _explicit, raw in reversed(self.rows("panel", key)):
                if raw is not None and valid_from <= t:
                    return json.loads(raw)
        return data

    def panels(self, t):
        """[(site, device)] of panels configured (not removed) at t."""
        out = []
        for kind, key in self.keys("panel"):
            if self.get(kind, key, t) is not None:
                site, device = key.split("/", 1)
                out.append((site, device))
        return out

    def question(self, qid, t):
        return self.get("question", qid, t) if qid else None

    def employee_name(self, eid, t=2**62):
        return (self.get("employee", eid, t) or {}).get("name") or eid

    def employee_at(self, site, device, t):
        """The employee id assigned to the panel at t (shifts in the site's timezone), or None.

        A shift entry (hours and/or days) is in force from its `from` until a later all-day
        entry of the same panel takes over; among the entries in force at t that match t the
        most specific wins, then the latest `from`."""
        prefix = "%s/%s#" % (site, device)
        roster = self._roster.get(prefix)
        if roster is None:
            roster = self._roster[prefix] = [
                (k[1][len(prefix) :], k) for k in self.keys("roster") if k[1].startswith(prefix)
            ]
        # A row stamped at apply time covers earlier times only when it came with the panel's
        # first roster: a shift added by a later apply must not claim polls from before it.
        first_rev = min((r[1] for _, k in roster for r in self.rows(*k)), default=None)

        def at(key):
            row = self.row_at("roster", key, t)
            if row is not None and row[0] > t and row[1] != first_rev:
                return None
            return row

        all_day = at(prefix) if ("", ("roster", prefix)) in roster else None
        # (a removed all-day entry takes nothing over: the shifts still in the file stay)
        all_day_from = all_day[0] if all_day is not None and all_day[3] is not None else None
        local = None
        best = None  # (specificity, valid_from, employee)
        for slot, (_kind, key) in roster:
            row = at(key)
            if row is None or row[3] is None:
                continue
            if slot and all_day_from is not None and row[0] < all_day_from:
                continue  # superseded by a later all-day entry
            specificity = 0
            if slot:
                if local is None:
                    local = _dt.datetime.fromtimestamp(t / 1000.0, self.tz(site, t))
                days, _, hours = slot.rpartition("|")
                if days:
                    if DAYS[local.weekday()] not in days.split(","):
                        continue
                    specificity += 2
                if hours:
                    a, b = _hours(hours)
                    m = local.hour * 60 + local.minute
                    inside = a <= m < b if a < b else (m >= a or m < b)
                    if not inside:
                        continue
                    specificity += 1
            cand = (specificity, row[0], json.loads(row[3]).get("employee"))
            if best is None or cand[:2] > best[:2]:
                best = cand
        return best[2] if best else None


# --- database shell ---------------------------------------------------------------------------

_HISTORY_SQL = "SELECT kind, key, valid_from_ms, rev, explicit_from, data FROM site_history"


def _history_rows(db):
    return [
        (r["kind"], r["key"], r["valid_from_ms"], r["rev"], r["explicit_from"], r["data"])
        for r in db.query(_HISTORY_SQL)
    ]


def load(db):
    return History(_history_rows(db))


def revision(db):
    """The number of the latest settings revision (0 before the first `rating site apply`)."""
    return db.scalar("SELECT MAX(rev) FROM site_revisions") or 0


def apply(db, sitefile, now_ms, source="", by=""):
    """Append the changes of `sitefile` to the settings history. Returns the appended rows."""
    with db.transaction():
        new = plan(_history_rows(db), sitefile, now_ms)
        if not new:
            return []
        rev = revision(db) + 1
        db.execute(
            "INSERT INTO site_revisions (rev, applied_ms, source, sha256, changes) VALUES (?, ?, ?, ?, ?)",
            (rev, now_ms, source, sitefile.digest, len(new)),
        )
        for kind, key, valid_from, explicit, data in new:
            db.execute(
                "INSERT INTO site_history (kind, key, valid_from_ms, rev, explicit_from, data) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (kind, key, valid_from, rev, explicit, data),
            )
    return new
