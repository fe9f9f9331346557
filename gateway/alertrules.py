"""The alert rules: which conditions are alerts now. Pure: no clock, no database, no I/O.

`evaluate(config, facts, marks, now_ms)` -> (firings, marks): the rules of `config` (the site
file's `[alerts]`, checked by `check`) over `facts` (what gateway/alerts.py read from the stores)
and `marks` (what the rules remember between evaluations: counters last seen, since when a
condition holds, where a sequential test restarts). A firing names its rule, its subject and a
dedup key; raising, deduplication, cooldown and delivery are gateway/alerts.py's.

Operations rules (per panel unless said): `panel_offline` (offline, stale or never heard from,
for `after_min`, only while its office is open), `stuck_button` (a stuck:* fault),
`clock_unsynced` (an online panel without a clock, or one `max_skew_s` off the gateway's),
`journal_dropping` (its dropped-events counter went up), `config_not_applied` (a config error,
or the pushed config not running for `after_min`), `dead_letters` (the deployment's count of
refused messages went up), `counts_missing` (an office that sends counts sent none for
`after_min` while open).

Service rules: `negative_run` (per employee and per office: a Bernoulli CUSUM of No/silent
answers against the subject's own baseline share, see `cusum`), `di_high` (DI-staff per
employee, DI-office per office, over `window_h`: only when the interval's LOWER bound is above
`max`, so noise in a small sample never alerts), `fm_unreviewed` (force-majeure reports without
a verdict, older than `age_min`, at least `max` of them), `fm_rate` (the office's force-majeure
rate's lower bound above `max`).
"""

import dataclasses
import math

from kpi_core import PollCounts, di_office, di_staff, fm_rate, wilson

SEVERITIES = ("info", "warning", "critical")

# every rule: enabled, severity, cooldown_min (after a resolve, the same alert waits this long)
RULES = {
    "panel_offline": {"severity": "critical", "cooldown_min": 60, "after_min": 10},
    "stuck_button": {"severity": "warning", "cooldown_min": 240},
    "clock_unsynced": {"severity": "warning", "cooldown_min": 240, "max_skew_s": 120},
    "journal_dropping": {"severity": "critical", "cooldown_min": 60},
    "config_not_applied": {"severity": "warning", "cooldown_min": 240, "after_min": 30},
    "dead_letters": {"severity": "warning", "cooldown_min": 60},
    "counts_missing": {"severity": "warning", "cooldown_min": 240, "after_min": 120},
    # odds ratio 6, h = 9, a 28-day baseline: false alarms at most 1 % per employee-week of 240
    # honest polls (measured 0.56 %, about 0.23 % per 100 polls of a week; a bad run of 20 polls
    # at 80 % against 20 % is caught in 98 %, 11 polls in: bench/alerts.py)
    "negative_run": {
        "severity": "warning",
        "cooldown_min": 240,
        "odds_ratio": 6.0,
        "h": 9.0,
        "baseline_days": 28,
        "min_baseline": 100,
    },
    "di_high": {"severity": "warning", "cooldown_min": 1440, "max": 0.3, "window_h": 168},
    "fm_unreviewed": {"severity": "info", "cooldown_min": 1440, "max": 10, "age_min": 1440},
    "fm_rate": {"severity": "warning", "cooldown_min": 1440, "max": 0.10, "window_h": 168},
}
# bounds of the numeric knobs a site file may set
KNOBS = {
    "cooldown_min": (0, 100000),
    "after_min": (1, 100000),
    "max_skew_s": (1, 86400),
    "odds_ratio": (1.1, 100),
    "h": (0.5, 100),
    "baseline_days": (1, 365),
    "min_baseline": (1, 100000),
    "max": (0, 100000),
    "window_h": (1, 24 * 365),
    "age_min": (0, 100000),
}
CHANNELS = ("email", "webhook", "mqtt")
DEFAULT_HOURS = "00:00-24:00"


@dataclasses.dataclass(frozen=True)
class Firing:
    rule: str
    subject: str  # "site/device", an employee id, an office id, "deadletters"
    site: str | None  # the office it belongs to (scope); None: the deployment
    severity: str
    summary: str  # one English line; the console and CLI show the rule's translated title
    detail: dict

    @property
    def dedup(self) -> str:
        return "%s:%s" % (self.rule, self.subject)


@dataclasses.dataclass
class Facts:
    """What the rules look at, read by gateway/alerts.py. Panels are fleet rows (gateway/fleet.py)
    plus the state's clock fields `t_ms` and `state_ms`; `open_sites` are the offices open now;
    `polls[site]` are that office's polls (dicts with opened_ms, answer, employee, valid, fm:
    under a confirmed force majeure of its panel) of the baseline window in time order; `fms[site]` its force-majeure reports (dicts with start_ms,
    employee, status pending|confirmed|rejected); `counts_last_ms[site]` the end of the newest
    counts interval of an office that ever sent counts; `dead_letters` the refused messages."""

    panels: list = dataclasses.field(default_factory=list)
    open_sites: set = dataclasses.field(default_factory=set)
    sites: list = dataclasses.field(default_factory=list)
    polls: dict = dataclasses.field(default_factory=dict)
    fms: dict = dataclasses.field(default_factory=dict)
    counts_last_ms: dict = dataclasses.field(default_factory=dict)
    dead_letters: int = 0
    k: float = 0.8


def rule_settings(config, rule):
    """The rule's settings: the defaults with the site file's overrides."""
    out = dict(RULES[rule], enabled=True)
    out.update((config or {}).get("rules", {}).get(rule, {}))
    return out


# ---- the sequential test ------------------------------------------------------------------------


def cusum(xs, p0, odds_ratio, h):
    """The index of the first observation at which a Bernoulli CUSUM for a rise of the share of
    1s from p0 to the p1 with odds p1/(1-p1) = odds_ratio * p0/(1-p0) crosses h, or None.

    S_i = max(0, S_{i-1} + log-likelihood ratio of x_i): each 1 adds log(p1/p0), each 0 adds
    log((1-p1)/(1-p0)) < 0. It is the sequential test that detects a shift of a given size
    fastest for a given false-alarm rate (Page 1954; Reynolds & Stoumbos 1999 for Bernoulli)."""
    p0 = min(max(p0, 1e-3), 1 - 1e-3)
    odds = odds_ratio * p0 / (1 - p0)
    p1 = odds / (1 + odds)
    up = math.log(p1 / p0)
    down = math.log((1 - p1) / (1 - p0))
    s = 0.0
    for i, x in enumerate(xs):
        s = max(0.0, s + (up if x else down))
        if s >= h:
            return i
    return None


def baseline_share(negatives, n):
    """The subject's own share of No/silent answers, with a uniform prior (Laplace): never 0 or 1."""
    return (negatives + 1) / (n + 2)


# ---- evaluation ---------------------------------------------------------------------------------


def evaluate(config, facts, marks, now_ms):
    """(firings, new marks) for the rules enabled in `config` (the parsed [alerts] table, None:
    all rules with their defaults)."""
    marks = dict(marks)
    out = []
    for rule, fn in _RULES:
        settings = rule_settings(config, rule)
        if not settings.get("enabled", True):
            continue
        for firing in fn(settings, facts, marks, now_ms):
            out.append(dataclasses.replace(firing, severity=settings["severity"]))
    return out, marks


def _fire(rule, subject, site, summary, **detail):
    return Firing(rule, subject, site, "", summary, detail)


def _panel_id(p):
    return "%s/%s" % (p["site"], p["device"])


_CONNECTION = {"offline": "is offline", "stale": "has gone silent", "never": "was never heard from"}


def _panel_offline(s, facts, marks, now_ms):
    for p in facts.panels:
        if not p.get("configured") or p["site"] not in facts.open_sites:
            continue
        if p["connection"] == "online":
            continue
        seen = p.get("last_seen_ms")
        if seen is not None and now_ms - seen < s["after_min"] * 60000:
            continue
        yield _fire(
            "panel_offline",
            _panel_id(p),
            p["site"],
            "panel %s %s during opening hours" % (_panel_id(p), _CONNECTION[p["connection"]]),
            connection=p["connection"],
            last_seen_ms=seen,
        )


def _stuck_button(s, facts, marks, now_ms):
    for p in facts.panels:
        stuck = [f for f in p.get("faults") or [] if str(f).startswith("stuck:")]
        if stuck:
            yield _fire(
                "stuck_button",
                _panel_id(p),
                p["site"],
                "panel %s: button stuck (%s)" % (_panel_id(p), ", ".join(stuck)),
                faults=stuck,
            )


def _clock_unsynced(s, facts, marks, now_ms):
    for p in facts.panels:
        if p["connection"] != "online" or p.get("state_ms") is None:
            continue
        t = p.get("t_ms")
        if t is None:
            yield _fire(
                "clock_unsynced", _panel_id(p), p["site"], "panel %s: clock not set" % _panel_id(p), skew_ms=None
            )
            continue
        skew = t - p["state_ms"]
        if abs(skew) > s["max_skew_s"] * 1000:
            yield _fire(
                "clock_unsynced",
                _panel_id(p),
                p["site"],
                "panel %s: clock off by %d s" % (_panel_id(p), skew // 1000),
                skew_ms=skew,
            )


def _journal_dropping(s, facts, marks, now_ms):
    for p in facts.panels:
        dropped = p.get("dropped")
        if dropped is None:
            continue
        key = "dropped:" + _panel_id(p)
        before = marks.get(key, 0)
        marks[key] = dropped
        if dropped > before:
            yield _fire(
                "journal_dropping",
                _panel_id(p),
                p["site"],
                "panel %s dropped %d events from its full journal" % (_panel_id(p), dropped - before),
                dropped=dropped,
                new=dropped - before,
            )


def _config_not_applied(s, facts, marks, now_ms):
    for p in facts.panels:
        key = "cfg:" + _panel_id(p)
        if p.get("config_error"):
            marks.pop(key, None)
            yield _fire(
                "config_not_applied",
                _panel_id(p),
                p["site"],
                "panel %s refused its config: %s" % (_panel_id(p), p["config_error"]),
                error=p["config_error"],
            )
            continue
        if p.get("config_applied") is not False or p["connection"] != "online":
            marks.pop(key, None)
            continue
        since = marks.setdefault(key, now_ms)
        if now_ms - since >= s["after_min"] * 60000:
            yield _fire(
                "config_not_applied",
                _panel_id(p),
                p["site"],
                "panel %s runs config %s, not the pushed %s"
                % (_panel_id(p), p.get("config_running"), p.get("config_pushed")),
                running=p.get("config_running"),
                pushed=p.get("config_pushed"),
            )


def _dead_letters(s, facts, marks, now_ms):
    before = marks.get("deadletters")
    marks["deadletters"] = facts.dead_letters
    if before is not None and facts.dead_letters > before:
        new = facts.dead_letters - before
        yield _fire("dead_letters", "deadletters", None, "%d new dead letters (refused messages)" % new, new=new)


def _counts_missing(s, facts, marks, now_ms):
    for site, last in sorted(facts.counts_last_ms.items()):
        if site in facts.open_sites and now_ms - last >= s["after_min"] * 60000:
            yield _fire(
                "counts_missing",
                site,
                site,
                "office %s: no counts for %d min" % (site, (now_ms - last) // 60000),
                last_ms=last,
            )


def _subjects(facts):
    """(subject kind, subject id, site, [polls]) for every office and every employee of it."""
    for site in sorted(facts.polls):
        polls = [p for p in facts.polls[site] if p.get("valid", True)]
        yield "office", site, site, polls
        by_emp = {}
        for p in polls:
            # a No or silence under a confirmed force majeure is not the employee's (DI-staff)
            if p.get("employee") and not (p.get("fm") and p["answer"] in (None, "no")):
                by_emp.setdefault(p["employee"], []).append(p)
        for emp in sorted(by_emp):
            yield "employee", emp, site, by_emp[emp]


def _negative_run(s, facts, marks, now_ms):
    for kind, subject, site, polls in _subjects(facts):
        key = "cusum:%s:%s" % (kind, subject)
        # the week under test, restarted after an alarm; the baseline is the subject's polls of
        # the baseline_days before that week (never the week itself, nor a run it alarmed on)
        week = now_ms - 7 * 86400000
        start = max(marks.get(key, 0), week)
        base = [p for p in polls if week - s["baseline_days"] * 86400000 <= p["opened_ms"] < week]
        if len(base) < s["min_baseline"]:
            continue
        p0 = baseline_share(sum(p["answer"] in (None, "no") for p in base), len(base))
        run = [p for p in polls if p["opened_ms"] >= start]
        hit = cusum([p["answer"] in (None, "no") for p in run], p0, s["odds_ratio"], s["h"])
        if hit is None:
            continue
        marks[key] = run[hit]["opened_ms"] + 1  # the test starts afresh after the alarm
        window = run[: hit + 1]
        neg = sum(p["answer"] in (None, "no") for p in window)
        yield _fire(
            "negative_run",
            "%s:%s" % (kind, subject),
            site,
            "%s %s: %d of the last %d polls No or silent, baseline %.0f %%"
            % (kind, subject, neg, len(window), 100 * p0),
            kind=kind,
            baseline=round(p0, 4),
            negatives=neg,
            polls=len(window),
            since_ms=window[0]["opened_ms"],
            at_ms=run[hit]["opened_ms"],
        )


def _counts(polls):
    tally = {"yes": 0, "no": 0, "unsure": 0, None: 0}
    for p in polls:
        tally[p["answer"]] += 1
    return PollCounts(tally["yes"], tally["no"], tally["unsure"], tally[None])


def _di_high(s, facts, marks, now_ms):
    since = now_ms - s["window_h"] * 3600000
    for kind, subject, site, polls in _subjects(facts):
        recent = [p for p in polls if p["opened_ms"] >= since]
        if not recent:
            continue
        c = _counts(recent)
        fig = di_office(c, facts.k) if kind == "office" else di_staff(c, facts.k)
        if fig.low is not None and fig.low > s["max"]:
            yield _fire(
                "di_high",
                "%s:%s" % (kind, subject),
                site,
                "%s %s: DI %.2f (95 %% interval %.2f-%.2f) above %.2f over %d polls"
                % (kind, subject, fig.value, fig.low, fig.high, s["max"], fig.n),
                kind=kind,
                value=fig.value,
                low=fig.low,
                high=fig.high,
                n=fig.n,
            )


def _fm_unreviewed(s, facts, marks, now_ms):
    for site in sorted(facts.fms):
        waiting = [
            f for f in facts.fms[site] if f["status"] == "pending" and now_ms - f["start_ms"] >= s["age_min"] * 60000
        ]
        if len(waiting) >= max(1, s["max"]):
            yield _fire(
                "fm_unreviewed",
                site,
                site,
                "office %s: %d force-majeure reports wait for review" % (site, len(waiting)),
                pending=len(waiting),
            )


def _fm_rate(s, facts, marks, now_ms):
    since = now_ms - s["window_h"] * 3600000
    for site in sorted(set(facts.polls) | set(facts.fms)):
        n_polls = sum(p["opened_ms"] >= since for p in facts.polls.get(site, []))
        n_fm = sum(f["start_ms"] >= since for f in facts.fms.get(site, []))
        if not n_polls or n_fm > n_polls:
            continue
        fig = fm_rate(n_fm, n_polls)
        low = fig.low if fig.low is not None else wilson(n_fm, n_polls)[0]
        if low > s["max"]:
            yield _fire(
                "fm_rate",
                site,
                site,
                "office %s: force-majeure rate %.0f %% (lower bound %.0f %%) above %.0f %%"
                % (site, 100 * (fig.value or 0.0), 100 * low, 100 * s["max"]),
                value=fig.value,
                low=low,
                reports=n_fm,
                polls=n_polls,
            )


_RULES = (
    ("panel_offline", _panel_offline),
    ("stuck_button", _stuck_button),
    ("clock_unsynced", _clock_unsynced),
    ("journal_dropping", _journal_dropping),
    ("config_not_applied", _config_not_applied),
    ("dead_letters", _dead_letters),
    ("counts_missing", _counts_missing),
    ("negative_run", _negative_run),
    ("di_high", _di_high),
    ("fm_unreviewed", _fm_unreviewed),
    ("fm_rate", _fm_rate),
)
