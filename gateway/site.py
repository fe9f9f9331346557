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
import dataclasses
import hashlib
import json
import re
import tomllib

from gateway import i18n, times
from gateway.i18n import N_, _, ngettext
from kpi_core import Thresholds
from protocol import ProtocolError, topics
from protocol.messages import CONFIG_KINDS, CONFIG_RANGES

KINDS = ("deployment", "region", "site", "question", "employee", "panel", "roster", "alerts", "followups")
# what a duplicate entry is called in an error (the catalogue has them)
_KIND_WORDS = (N_("region"), N_("site"), N_("question"), N_("employee"), N_("panel"), N_("roster"))
QUESTION_KINDS = CONFIG_KINDS  # what a panel's config may say (protocol.config)
LANGS = i18n.LANGS
DAYS = times.DAYS
DEPLOYMENT_KEY = "deployment"
SECTIONS = ("deployment", "regions", "sites", "questions", "employees", "panels", "roster", "alerts", "followups")


class SiteFileError(ValueError):
    """Every problem found in a site file; str() lists them one per line."""

    def __init__(self, errors, source="site file"):
        self.errors = list(errors)
        self.source = source
        head = ngettext("%(source)s: %(n)d problem:", "%(source)s: %(n)d problems:", len(self.errors))
        super().__init__("%s\n  %s" % (head % {"source": source, "n": len(self.errors)}, "\n  ".join(self.errors)))


# Defaults a site file may override. Thresholds are named as in kpi_core.Thresholds where possible.
DEFAULT_DEPLOYMENT = {
    "lang": "ru",
    "k": 0.8,
    "thresholds": {},
    "reference": {},
    "review_share": 0.1,
}
# [deployment] whole numbers recorded only when the file gives them, with their ranges:
# loyalty_days (docs/transactions.md, Privacy) and the POS matching window in minutes
# (docs/transactions.md, Matching rules: defaults 10 before the press, 2 after it)
KEPT_WHEN_GIVEN = {"loyalty_days": (1, 3650), "pos_before_minutes": (1, 120), "pos_after_minutes": (0, 30)}
DEFAULT_PANEL = {"window_s": 30, "rearm_s": 3, "fm_minutes": 15}
# Whole numbers within what a panel accepts in its config (protocol.messages.CONFIG_RANGES).
LIMITS = {name: CONFIG_RANGES[name] for name in DEFAULT_PANEL}
# Knobs a panel entry may set, pushed in the config only when given; `rating status` judges a
# panel stale by its heartbeat.
OPTIONAL_PANEL = ("heartbeat_s",)
REFERENCES = ("di_office", "di_staff")


def threshold_names():
    """Field names of kpi_core.Thresholds."""
    return {f.name for f in dataclasses.fields(Thresholds)}


def is_id(value):
    """Whether `value` is a site/device/question/employee id (protocol.topics.check_id)."""
    try:
        topics.check_id(value, "id")
    except ProtocolError:
        return False
    return True


ID_RULE = "[a-z0-9-], 1-%d chars" % topics.MAX_ID


class _Checker:
    """Collects errors with field paths so the user sees them all at once."""

    def __init__(self):
        self.errors = []

    def err(self, path, problem):
        self.errors.append("%s: %s" % (path, problem))

    def id(self, path, value):
        if value is None:
            self.err(path, _("is required (an id: a-z, 0-9, '-', 1-%d chars)") % topics.MAX_ID)
            return None
        if not is_id(value):
            self.err(path, _("%r is not a valid id (%s)") % (value, ID_RULE))
            return None
        return value

    def text(self, path, value, required=True):
        if value is None:
            if required:
                self.err(path, _("is required (text)"))
            return None
        if not isinstance(value, str) or not value.strip():
            self.err(path, _("must be non-empty text, got %r") % (value,))
            return None
        return value.strip()

    def number(self, path, value, lo, hi, default=None, integer=False):
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.err(path, _("must be a number, got %r") % (value,))
            return default
        if integer:
            if value != int(value):
                self.err(path, _("must be a whole number, got %r") % (value,))
                return default
            value = int(value)
        if not lo <= value <= hi:
            self.err(path, _("must be between %s and %s, got %s") % (lo, hi, value))
            return default
        return value

    def unknown(self, path, table, allowed):
        for key in table:
            if key not in allowed:
                self.err(
                    "%s.%s" % (path, key) if path else key,
                    _("unknown field (allowed: %s)") % ", ".join(sorted(allowed)),
                )

    def when(self, path, value, tz=None):
        """A `from` value as epoch ms (None when absent or bad; a bad one is an error)."""
        if value is None:
            return None
        try:
            return times.parse_instant(value, tz)
        except ValueError as exc:
            self.err(path, str(exc))
            return None

    def items(self, doc, name):
        value = doc.get(name, [])
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            self.err(name, _("must be an array of tables ([[%s]])") % name)
            return []
        return value


class SiteFile:
    """A validated site file: `entries` is [(kind, key, from_ms or None, data)], file order."""

    def __init__(self, entries, from_ms=None, digest=""):
        self.entries = entries
        self.from_ms = from_ms
        self.digest = digest

    def of(self, kind):
        return [e for e in self.entries if e[0] == kind]


class _Parse:
    """One site file being read: a checker, the entries so far and what later sections refer to
    (sites and their timezones, question ids, employee ids, panels)."""

    def __init__(self, doc):
        self.doc = doc
        self.c = _Checker()
        self.entries = []
        self.seen = set()
        self.regions = {}  # region id -> parent region id (None at the top)
        self.sites = {}  # site id -> tzinfo (None when its timezone is bad)
        self.questions = {}  # question id -> kind
        self.employees = set()
        self.panels = {}  # "site/device" -> site id
        self.file_from = None
        self.lang = "ru"  # the deployment's: its question texts are the ones required

    def add(self, kind, key, path, frm, data):
        if (kind, key, frm) in self.seen:
            if frm is None:
                self.c.err(path, _("duplicate %(kind)s %(key)r") % {"kind": _(kind), "key": key})
            else:
                self.c.err(path, _("duplicate %(kind)s %(key)r with the same from") % {"kind": _(kind), "key": key})
            return
        self.seen.add((kind, key, frm))
        self.entries.append((kind, key, frm, data))


def parse(text, source="site file"):
    """Validate the TOML text of a site file; return a SiteFile or raise SiteFileError."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SiteFileError([_("not valid TOML: %s") % exc], source) from None
    p = _Parse(doc)
    p.c.unknown("", doc, SECTIONS)
    _deployment(p)
    _regions(p)
    _sites(p)
    _questions(p)
    _employees(p)
    _panels(p)
    _roster(p)
    _alerts(p)
    _followups(p)
    if p.c.errors:
        raise SiteFileError(p.c.errors, source)
    return SiteFile(p.entries, p.file_from, hashlib.sha256(text.encode()).hexdigest())


def _deployment(p):
    c = p.c
    dep_in = p.doc.get("deployment", {})
    if not isinstance(dep_in, dict):
        c.err("deployment", _("must be a table ([deployment])"))
        dep_in = {}
    c.unknown("deployment", dep_in, ("lang", "k", "from", "thresholds", "reference", "review_share", *KEPT_WHEN_GIVEN))
    p.file_from = c.when("deployment.from", dep_in.get("from"))
    dep = dict(DEFAULT_DEPLOYMENT)
    lang = dep_in.get("lang", "ru")
    if lang not in LANGS:
        c.err("deployment.lang", _("must be one of %s, got %r") % (", ".join(LANGS), lang))
    else:
        dep["lang"] = p.lang = lang
    dep["k"] = c.number("deployment.k", dep_in.get("k"), 0.0, 1.0, 0.8)
    dep["review_share"] = c.number("deployment.review_share", dep_in.get("review_share"), 0.0, 1.0, 0.1)
    for name, (lo, hi) in KEPT_WHEN_GIVEN.items():  # kept only when given: an older file's deployment stays unchanged
        if name in dep_in:
            dep[name] = c.number("deployment." + name, dep_in.get(name), lo, hi, integer=True)
    for table in ("thresholds", "reference"):
        dep[table] = _numbers(c, "deployment." + table, dep_in.get(table, {}))
    _thresholds(c, dep["thresholds"])
    for name, value in dep["reference"].items():
        if name not in REFERENCES:
            c.err("deployment.reference.%s" % name, _("unknown reference value (known: %s)") % ", ".join(REFERENCES))
        elif not 0 <= value <= 1:
            c.err("deployment.reference.%s" % name, _("must be a fraction between 0 and 1, got %s") % value)
    p.entries.append(("deployment", DEPLOYMENT_KEY, None, dep))


def _numbers(c, path, values):
    if not isinstance(values, dict):
        c.err(path, _("must be a table of numbers"))
        return {}
    checked = {}
    for name, value in values.items():
        v = c.number("%s.%s" % (path, name), value, -1e9, 1e9)
        if v is not None:
            checked[name] = v
    return checked


def _thresholds(c, thresholds):
    names = threshold_names()
    for name in list(thresholds):
        if name not in names:
            c.err("deployment.thresholds.%s" % name, _("unknown threshold (known: %s)") % ", ".join(sorted(names)))
            del thresholds[name]
    try:
        Thresholds(**thresholds)
    except (ValueError, TypeError) as exc:
        c.err("deployment.thresholds", str(exc))


def _sites(p):
    c = p.c
    for i, item in enumerate(c.items(p.doc, "sites")):
        path = "sites[%d]" % i
        c.unknown(path, item, ("id", "name", "timezone", "hours", "days", "region", "from"))
        sid = c.id(path + ".id", item.get("id"))
        name = c.text(path + ".name", item.get("name"))
        data = {"name": name, "timezone": item.get("timezone", "UTC")}
        if "region" in item:  # kept only when given: a file without regions stores what it did
            region = item["region"]
            if region not in p.regions:
                c.err(path + ".region", _("%r is not listed in [[regions]]") % (region,))
            data["region"] = region
        tzname = item.get("timezone", "UTC")
        tz = None
        try:
            tz = times.zone(tzname)
        except ValueError as exc:
            c.err(path + ".timezone", str(exc))
        data.update(_opening(c, path, item))  # only when given: an older file's offices stay unchanged
        if sid:
            p.sites[sid] = tz
            p.add("site", sid, path, c.when(path + ".from", item.get("from"), tz), data)


def _opening(c, path, item):
    """The office's opening hours and days ({} when not given): `site apply` warns about
    staff-question panels with no one on the roster while the office is open."""
    out = {}
    if "hours" in item:
        try:
            times.parse_hours(item["hours"])
            out["hours"] = item["hours"].replace(" ", "")
        except ValueError as exc:
            c.err(path + ".hours", str(exc))
    if "days" in item:
        try:
            out["days"] = times.day_names(times.parse_days(item["days"]))
        except ValueError as exc:
            c.err(path + ".days", str(exc))
    return out


def _regions(p):
    """The location tree: [[regions]] with an optional parent region; offices name their region
    (sites[].region). Reports roll up through it and console accounts may be scoped to a region."""
    c = p.c
    paths = {}
    for i, item in enumerate(c.items(p.doc, "regions")):
        path = "regions[%d]" % i
        c.unknown(path, item, ("id", "name", "parent", "from"))
        rid = c.id(path + ".id", item.get("id"))
        name = c.text(path + ".name", item.get("name"))
        parent = item.get("parent")
        if parent is not None and not is_id(parent):
            c.err(path + ".parent", _("%r is not a valid id (%s)") % (parent, ID_RULE))
            parent = None
        if rid:
            p.regions[rid] = parent
            paths[rid] = path
            data = {"name": name, "parent": parent} if parent else {"name": name}
            p.add("region", rid, path, c.when(path + ".from", item.get("from")), data)
    reported = set()
    for rid, parent in p.regions.items():
        if parent is not None and parent not in p.regions:
            c.err(paths[rid] + ".parent", _("%r is not listed in [[regions]]") % (parent,))
            continue
        chain = region_cycle(p.regions, rid)
        if chain and not reported & set(chain):
            reported.update(chain)
            c.err(
                paths[rid] + ".parent",
                _("the regions form a cycle (%s): a region cannot contain itself") % " -> ".join(chain + [rid]),
            )


def region_cycle(parents, rid):
    """The regions of the cycle `rid` lies on, from rid ([] when its parents end at the top)."""
    chain = [rid]
    node = parents.get(rid)
    while node is not None and node in parents:
        if node == rid:
            return chain
        if node in chain:
            return []  # rid leads into a cycle it is not part of; that cycle is reported itself
        chain.append(node)
        node = parents.get(node)
    return []


def _questions(p):
    c = p.c
    for i, item in enumerate(c.items(p.doc, "questions")):
        path = "questions[%d]" % i
        c.unknown(path, item, ("id", "kind", "text_ru", "text_en", "from"))
        qid = c.id(path + ".id", item.get("id"))
        kind = item.get("kind")
        if kind not in QUESTION_KINDS:
            c.err(path + ".kind", _("must be one of %s, got %r") % (", ".join(QUESTION_KINDS), kind))
        # the deployment's language is required; the other one only when given
        text_ru = _question_text(c, path + ".text_ru", item.get("text_ru"), p.lang == "ru")
        text_en = _question_text(c, path + ".text_en", item.get("text_en"), p.lang == "en")
        if qid:
            p.questions[qid] = kind
            data = {"kind": kind, "text_ru": text_ru, "text_en": text_en}
            p.add("question", qid, path, c.when(path + ".from", item.get("from")), data)


QUESTION_PLACEHOLDERS = ("employee",)
_BRACED = re.compile(r"\{([^{}]*)\}")


def _question_text(c, path, value, required):
    """A question's text; a placeholder other than {employee} (a typo like {employe} or
    {сотрудник}) would be shown to customers as it is, so it is refused."""
    text = c.text(path, value, required)
    if text is None:
        return None
    known = ", ".join("{%s}" % name for name in QUESTION_PLACEHOLDERS)
    for name in _BRACED.findall(text):
        if name not in QUESTION_PLACEHOLDERS:
            c.err(path, _("unknown placeholder {%(name)s} (known: %(known)s)") % {"name": name, "known": known})
    if "{" in _BRACED.sub("", text) or "}" in _BRACED.sub("", text):
        c.err(path, _("a brace without its pair; the only placeholder is %s") % known)
    return text


def _employees(p):
    c = p.c
    for i, item in enumerate(c.items(p.doc, "employees")):
        path = "employees[%d]" % i
        c.unknown(path, item, ("id", "name", "in_question", "from"))
        eid = c.id(path + ".id", item.get("id"))
        data = {"name": c.text(path + ".name", item.get("name"))}
        if "in_question" in item:  # the name as the question needs it ("Елены Ивановой")
            data["in_question"] = c.text(path + ".in_question", item.get("in_question"))
        if eid:
            p.employees.add(eid)
            p.add("employee", eid, path, c.when(path + ".from", item.get("from")), data)


def _panels(p):
    c = p.c
    for i, item in enumerate(c.items(p.doc, "panels")):
        path = "panels[%d]" % i
        c.unknown(
            path,
            item,
            ("site", "device", "question", "camera", "conversion", "till", *DEFAULT_PANEL, *OPTIONAL_PANEL, "from"),
        )
        sid = c.id(path + ".site", item.get("site"))
        if sid and sid not in p.sites:
            c.err(path + ".site", _("%r is not listed in [[sites]]") % sid)
        dev = c.id(path + ".device", item.get("device"))
        qid = item.get("question")
        if qid is None:
            c.err(path + ".question", _("is required (the id of a [[questions]] entry)"))
        elif qid not in p.questions:
            c.err(path + ".question", _("%r is not listed in [[questions]]") % (qid,))
        data = {"question": qid, "camera": _camera(c, path + ".camera", item.get("camera"))}
        if "conversion" in item:  # kept only when given: the default follows the question's kind
            if not isinstance(item["conversion"], bool):
                c.err(path + ".conversion", _("must be true or false, got %r") % (item["conversion"],))
            else:
                data["conversion"] = item["conversion"]
        if "till" in item:  # the POS till it stands at (docs/transactions.md); default: its own id
            till = item["till"]
            if not isinstance(till, str) or not is_id(till):
                c.err(
                    path + ".till", _("%r is not a valid till id (%s); the POS must send the same id") % (till, ID_RULE)
                )
            else:
                data["till"] = till
        for name, default in DEFAULT_PANEL.items():
            lo, hi = LIMITS[name]
            data[name] = c.number("%s.%s" % (path, name), item.get(name), lo, hi, default, integer=True)
        for name in OPTIONAL_PANEL:  # stored only when given: an old file's panels stay unchanged
            if name in item:
                lo, hi = CONFIG_RANGES[name]
                data[name] = c.number("%s.%s" % (path, name), item.get(name), lo, hi, None, integer=True)
        if sid and dev:
            key = "%s/%s" % (sid, dev)
            p.panels[key] = sid
            p.add("panel", key, path, c.when(path + ".from", item.get("from"), p.sites.get(sid)), data)


def _camera(c, path, camera):
    if camera is None:
        return None
    if not isinstance(camera, str) or not camera:
        c.err(path, _("must be a URL template text, got %r") % (camera,))
        return None
    problem = camera_problem(camera)
    if problem:
        c.err(path, problem)
    return camera


def _roster(p):
    c = p.c
    for i, item in enumerate(c.items(p.doc, "roster")):
        path = "roster[%d]" % i
        c.unknown(path, item, ("panel", "employee", "from", "hours", "days"))
        panel = item.get("panel")
        if panel not in p.panels:
            c.err(path + ".panel", _('%r is not a panel of [[panels]] (write it as "site/device")') % (panel,))
            continue
        emp = item.get("employee")
        if emp not in p.employees:
            c.err(path + ".employee", _("%r is not listed in [[employees]]") % (emp,))
        slot = _slot(c, path, item.get("hours"), item.get("days"))
        frm = c.when(path + ".from", item.get("from"), p.sites.get(p.panels[panel]))
        p.add("roster", "%s#%s" % (panel, slot), path, frm, {"employee": emp})


def _slot(c, path, hours, days):
    """The roster key's shift part: "" (all day), "09:00-14:00", "mon,tue|" or "mon,tue|09:00-14:00"."""
    slot = ""
    if hours is not None:
        try:
            times.parse_hours(hours)
            slot = hours.replace(" ", "")
        except ValueError as exc:
            c.err(path + ".hours", str(exc))
    if days is not None:
        try:
            slot = "%s|%s" % (times.day_names(times.parse_days(days)), slot)
        except ValueError as exc:
            c.err(path + ".days", str(exc))
    return slot


# --- alerts ([alerts], gateway/alertconf.py) -------------------------------------------------------

ALERTS_KEY = "alerts"


def _alerts(p):
    """The [alerts] table (opening hours, rules, channels): one settings entity, stored only when
    the file has the table (a file without it leaves every rule at its default)."""
    if "alerts" not in p.doc:
        return
    from gateway import alertconf

    config = alertconf.check(p.doc["alerts"], p.c.err, lambda s: s in p.sites, times.parse_hours, times.parse_days)
    p.add("alerts", ALERTS_KEY, "alerts", None, config)


FOLLOWUPS_KEY = "followups"


def _followups(p):
    """The [followups] table (CRM follow-ups, gateway/followupconf.py): one settings entity,
    stored only when the file has the table (without it: the defaults, no webhook)."""
    if "followups" not in p.doc:
        return
    from gateway import followupconf

    config = followupconf.check(p.doc["followups"], p.c.err, lambda s: s in p.sites)
    p.add("followups", FOLLOWUPS_KEY, "followups", None, config)


# --- camera links -----------------------------------------------------------------------------

CAMERA_PLACEHOLDERS = ("iso", "unix", "unix_ms")
MAX_CAMERA = 1000  # characters of a template: a link is a link, not a payload
_PLACEHOLDER = re.compile(r"\{(iso|unix|unix_ms)\}")


def camera_problem(template):
    """Why `template` is not a usable camera link template, or None. Only the placeholders
    {iso}, {unix} and {unix_ms} are allowed, as they are: no format specs or attribute access
    (str.format would turn {unix:>50000000} into a 50 MB link)."""
    if len(template) > MAX_CAMERA:
        return _("must be at most %(max)d characters, got %(n)d") % {"max": MAX_CAMERA, "n": len(template)}
    rest = _PLACEHOLDER.sub("", template)
    if "{" in rest or "}" in rest:
        bad = re.search(r"\{[^{}]*\}?|\}", rest)
        shown = bad.group(0) if bad else "{"
        return _("bad placeholder %s: use {iso}, {unix} or {unix_ms}, nothing else in braces") % shown
    return None


def camera_url(template, at_ms, tz=None):
    """Fill a camera URL template: {iso} (ISO 8601 in `tz`, default UTC), {unix}, {unix_ms}.
    Anything else is left as it is (a template stored before templates were checked)."""
    values = {"iso": times.format_iso(at_ms, tz or times.UTC), "unix": str(at_ms // 1000), "unix_ms": str(at_ms)}
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)


# --- history: pure planning ---------------------------------------------------------------------


def _canon(data):
    return None if data is None else json.dumps(data, sort_keys=True, ensure_ascii=False)


# Settings only ever read for the present moment (the alert rules and channels, the follow-ups'
# delivery): a change takes effect when applied, never dated back to `deployment.from`, so a
# file applied after a change made in the console is compared with that change and replaces it.
PRESENT_ONLY = ("alerts", "followups")


def plan(rows, sitefile, now_ms, remove_all=False):
    """Rows to append for `sitefile` given the stored `rows` [(kind, key, valid_from_ms, rev,
    explicit, data_json)]. Returns [(kind, key, valid_from_ms, explicit, data_json)].

    - an entry with `from`: appended unless the row at exactly that valid_from already says the same;
    - an entry without: appended at the file's `from` (or now) when it differs from the current value;
    - a key in the history but not in the file: a removal row (data NULL) at the file's from / now.

    A file that lists no office or no panel while some are configured would end every one of
    them (an empty or truncated file, the wrong file): SiteFileError unless remove_all=True.
    """
    history = History(rows)
    default_from = sitefile.from_ms if sitefile.from_ms is not None else now_ms
    if not remove_all:
        _refuse_wipe(history, sitefile, default_from)
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
            at = now_ms if kind in PRESENT_ONLY else default_from
            current = history.row_at(kind, key, at)
            if current is not None and current[3] == canon:
                continue
            out.append((kind, key, at, 0, canon))
    for kind, key in history.keys():
        if (kind, key) in keys_in_file:
            continue
        at = now_ms if kind in PRESENT_ONLY else default_from
        current = history.row_at(kind, key, at)
        if current is not None and current[3] is not None:
            out.append((kind, key, at, 0, None))
    return out


def _refuse_wipe(history, sitefile, at):
    gone = []
    for kind in ("site", "panel"):
        in_force = [key for _, key in history.keys(kind) if history.get(kind, key, at) is not None]
        if in_force and not sitefile.of(kind):
            gone += in_force
    if gone:
        shown = ", ".join(gone[:6]) + (", ..." if len(gone) > 6 else "")
        raise SiteFileError(
            [
                _(
                    "the file lists no offices or no panels: applying it would remove every configured one (%s); "
                    "if that is what you want, apply it with --remove-all"
                )
                % shown
            ]
        )


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

    def epoch(self, kind, key, t):
        """A number that changes with t only where row_at(kind, key, t), and so get() and
        panel(), may change: how many of the key's rows start at or before t. (Derivation asks
        for a panel's settings at every event: it keeps them per epoch.)"""
        froms = self._froms.get((kind, key))
        return bisect.bisect_right(froms, t) if froms else 0

    def get(self, kind, key, t):
        row = self.row_at(kind, key, t)
        if row is None or row[3] is None:
            return None
        cache_key = (kind, key, row[0], row[1])
        if cache_key not in self._parsed:
            self._parsed[cache_key] = json.loads(row[3])
        return self._parsed[cache_key]

    def _data(self, key, row):
        """A roster row's data, parsed once (as get() parses rows once)."""
        cache_key = ("roster", key, row[0], row[1])
        found = self._parsed.get(cache_key)
        if found is None:
            found = self._parsed[cache_key] = json.loads(row[3])
        return found

    # --- domain lookups ---
    def lang(self, t=2**62):
        """The deployment's language as the site file set it (None before any apply)."""
        return (self.get("deployment", DEPLOYMENT_KEY, t) or {}).get("lang")

    def deployment(self, t):
        dep = dict(DEFAULT_DEPLOYMENT)
        dep.update(self.get("deployment", DEPLOYMENT_KEY, t) or {})
        return dep

    def tz(self, site, t=None):
        data = self.get("site", site, t if t is not None else 2**62) or {}
        name = data.get("timezone", "UTC")
        if name not in self._tz:
            try:
                self._tz[name] = times.zone(name)
            except ValueError:  # parse() refuses unknown zones; a tz database update might drop one
                self._tz[name] = times.UTC
        return self._tz[name]

    def home_tz(self, site=None, t=None):
        """The timezone for a time that belongs to no one office (a dead letter without a panel,
        --since, a bound without --site): `site`'s when it is a known office, else the one every
        office shares, else the first office's (by id), else UTC. Shown times carry the zone."""
        sites = [key for _, key in self.keys("site")]
        if site in sites:
            return self.tz(site, t)
        zones = [self.tz(s, t) for s in sites]
        return zones[0] if zones else times.UTC

    def region_tree(self, t=2**62):
        """{region id: {"name", "parent"}} of the regions in force at t."""
        out = {}
        for _kind, key in self.keys("region"):
            data = self.get("region", key, t)
            if data is not None:
                out[key] = {"name": data.get("name") or key, "parent": data.get("parent")}
        return out

    def region_of(self, site, t=2**62):
        """The region an office belongs to at t (None: outside every region)."""
        return (self.get("site", site, t) or {}).get("region")

    def regions(self, t=2**62):
        """{region id: sorted office ids} at t: each region's own offices and those of every
        region below it (nested regions roll up). A region without offices maps to []."""
        tree = self.region_tree(t)
        out = {rid: set() for rid in tree}
        for _kind, site in self.keys("site"):
            if self.get("site", site, t) is None:
                continue
            node = self.region_of(site, t)
            seen = set()
            while node in tree and node not in seen:  # (parse() refuses cycles; stay safe anyway)
                seen.add(node)
                out[node].add(site)
                node = tree[node]["parent"]
        return {rid: sorted(sites) for rid, sites in out.items()}

    def alerts(self, t=2**62):
        """The [alerts] table in force at t (gateway/alertconf.py), None when the file has none."""
        return self.get("alerts", ALERTS_KEY, t)

    def followups(self, t=2**62):
        """The [followups] table in force at t (gateway/followupconf.py), None when the file has none."""
        return self.get("followups", FOLLOWUPS_KEY, t)

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
        cached = self._roster.get(prefix)
        if cached is None:
            roster = [(k[1][len(prefix) :], k) for k in self.keys("roster") if k[1].startswith(prefix)]
            # A row stamped at apply time covers earlier times only when it came with the panel's
            # first roster: a shift added by a later apply must not claim polls from before it.
            # (Once per panel: derivation asks for every poll.)
            cached = self._roster[prefix] = (
                roster,
                min((r[1] for _, k in roster for r in self.rows(*k)), default=None),
            )
        roster, first_rev = cached

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
                    local = times.local(t, self.tz(site, t))
                days, _, hours = slot.rpartition("|")
                if days:
                    if DAYS[local.weekday()] not in days.split(","):
                        continue
                    specificity += 2
                if hours:
                    if not times.in_hours(local.hour * 60 + local.minute, times.parse_hours(hours)):
                        continue
                    specificity += 1
            cand = (specificity, row[0], self._data(key, row).get("employee"))
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


def load(db, planned=()):
    """The settings history; with `planned` (what plan()/preview() returned) as if applied."""
    rows = _history_rows(db)
    if planned:
        rev = max((r[3] for r in rows), default=0) + 1
        rows += [(kind, key, frm, rev, explicit, data) for kind, key, frm, explicit, data in planned]
    return History(rows)


def preview(db, sitefile, now_ms, remove_all=False):
    """What `apply` would append, recording nothing (`rating site apply --dry-run`)."""
    return plan(_history_rows(db), sitefile, now_ms, remove_all)


def revision(db):
    """The number of the latest settings revision (0 before the first `rating site apply`)."""
    return db.scalar("SELECT MAX(rev) FROM site_revisions") or 0


SETTINGS_LOCKS = 0x52415453  # advisory lock namespace of a settings change (gateway.db.lock_names)


def _one_change_at_a_time(db):
    """Inside the change's transaction, before the history is read: two changes made at the same
    moment (a `site apply` and a console edit, two admins) would both read revision N and both
    write N+1; the second then failed on the revision's key (a 500 in the console). With the
    lock the second waits, reads the first's revision and is planned against it. SQLite's
    BEGIN IMMEDIATE already lets one writer in at a time."""
    db.lock_names(SETTINGS_LOCKS, ["settings"])


def apply(db, sitefile, now_ms, source="", by="", remove_all=False):
    """Append the changes of `sitefile` to the settings history. Returns the appended rows."""
    with db.transaction():
        _one_change_at_a_time(db)
        new = plan(_history_rows(db), sitefile, now_ms, remove_all)
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


# --- the [alerts] table changed in the web console ------------------------------------------------

CONSOLE_SOURCE = "console:%s"  # site_revisions.source of a console change: who made it


def apply_alerts(db, table, now_ms, by):
    """Record `table` (an [alerts] table as a site file would hold it) as the alert settings from
    `now_ms` on, in a new settings revision whose source names the account `by`
    ("console:<by>"). Checked by the site file's own checker (gateway/alertconf.py) against the
    offices in force: SiteFileError with every problem ("alerts.rules.h.h: ...") and nothing
    recorded. Returns the appended rows like `apply` ([] when nothing changed). A later
    `rating site apply` compares its file with this revision as with any other."""
    from gateway import alertconf

    checker = _Checker()
    with db.transaction():
        _one_change_at_a_time(db)
        rows = _history_rows(db)
        history = History(rows)
        sites = {key for _kind, key in history.keys("site") if history.get("site", key, now_ms) is not None}
        config = alertconf.check(table, checker.err, sites.__contains__, times.parse_hours, times.parse_days)
        if checker.errors:
            raise SiteFileError(checker.errors, "console")
        canon = json.dumps(config, sort_keys=True, ensure_ascii=False)  # as _canon stores it
        current = history.row_at("alerts", ALERTS_KEY, now_ms)
        if current is not None and current[3] == canon:
            return []
        rev = revision(db) + 1
        digest = hashlib.sha256(canon.encode()).hexdigest()
        db.execute(
            "INSERT INTO site_revisions (rev, applied_ms, source, sha256, changes) VALUES (?, ?, ?, ?, ?)",
            (rev, now_ms, CONSOLE_SOURCE % by, digest, 1),
        )
        db.execute(
            "INSERT INTO site_history (kind, key, valid_from_ms, rev, explicit_from, data) VALUES (?, ?, ?, ?, ?, ?)",
            ("alerts", ALERTS_KEY, now_ms, rev, 0, canon),
        )
    return [("alerts", ALERTS_KEY, now_ms, 0, canon)]


def changes_of(db, kind, key, limit=20):
    """The revisions that changed one entity, newest first: [{"rev", "applied_ms", "source",
    "by", "valid_from_ms", "data"}]; `by` is the console account for a console change, else ""
    (a site file: `source` is its name)."""
    rows = db.query(
        "SELECT h.rev, h.valid_from_ms, h.data, r.applied_ms, r.source FROM site_history h "
        "JOIN site_revisions r ON r.rev = h.rev WHERE h.kind = ? AND h.key = ? "
        "ORDER BY h.rev DESC, h.valid_from_ms DESC LIMIT ?",
        (kind, key, limit),
    )
    prefix = CONSOLE_SOURCE % ""
    return [
        {
            "rev": r["rev"],
            "applied_ms": r["applied_ms"],
            "source": r["source"],
            "by": r["source"][len(prefix) :] if r["source"].startswith(prefix) else "",
            "valid_from_ms": r["valid_from_ms"],
            "data": None if r["data"] is None else json.loads(r["data"]),
        }
        for r in rows
    ]
