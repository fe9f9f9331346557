"""Scenario files (TOML): what chain to simulate, how people behave, which faults to inject.

`load(path, days=None, sites=None, seed=None)` -> `Scenario` (plain dicts inside, validated,
defaults filled in). Pure apart from reading the one file. The format is documented in
simulator/README.md; every key has a default so a scenario only says what differs.

Errors name the key path and what to do: `site[2].panel[0].kind: must be one of staff, office,
loyalty, got 'shop'`.
"""

import copy
import datetime as _dt
import hashlib
import tomllib

from gateway import times
from protocol import ProtocolError, topics
from protocol.config import CONFIG_KINDS

QUESTION_KINDS = CONFIG_KINDS
DAYS = times.DAYS

# Hour-of-day arrival profile of a typical office (relative rates; scaled to visitors_per_day).
DEFAULT_PROFILE = [0, 0, 0, 0, 0, 0, 0, 0, 0.3, 0.7, 1.0, 1.2, 1.5, 1.4, 1.1, 1.0, 1.1, 1.3, 1.4, 1.0, 0.6, 0.2, 0, 0]

DEFAULTS = {
    "scenario": {
        "name": "scenario",
        "seed": 1,
        "start": "2025-03-03",
        "days": 1,
        "root": "rating/v1",
        "speed_note": "",
    },
    # The poll semantics the gateway applies; the truth uses the same numbers.
    "method": {"window_s": 30, "rearm_s": 3, "fm_minutes": 15, "k": 0.8},
    # What the simulated panels get in their config.json.
    "firmware": {
        "debounce_ms": 30,
        "long_ms": 1500,
        "stuck_ms": 30000,
        "heartbeat_s": 900,
        "ack_timeout_s": 300,
        "journal_capacity": 20000,
    },
    "people": {
        "answer_delay_s": [4.0, 20.0],  # seller press -> customer's press
        "silent": 0.10,  # a happy customer walks away without pressing
        "silent_unhappy": 0.30,  # an unhappy one does so more often
        "double_press": 0.05,  # the customer presses twice (second is an extra press)
        "late_press": 0.30,  # share of silent customers who press after the window
        "seller_double_press": 0.03,  # the seller's short press bounces into two presses
        "children_per_site_day": 1.0,  # button mashing with no poll open
        "fm_per_panel_week": 0.5,  # force-majeure episodes (long press)
        "fm_extend": 0.3,  # the seller long-presses again inside the period
        "fm_confirm": 0.7,  # the expert confirms (else rejects) a report
        "fm_unhappy": 0.6,  # extra chance a customer is unhappy during an episode
        "invalid_share": 0.01,  # polls the expert marks invalid
    },
    "defaults": {
        "hours": "09:00-20:00",
        "days_open": "mon-sun",
        "visitors_per_day": 120,
        "profile": DEFAULT_PROFILE,
        "conversion": 0.7,
        "service_min": [1.0, 6.0],
        "quality": 0.8,
        "shift": "day",
    },
    "chain": {
        "sites": 0,
        "panels": [1, 3],
        "kinds": ["staff", "staff", "office", "loyalty"],
        "sellers_per_panel": 2,
        "quality": [0.55, 0.95],
        "seller_quality": [0.5, 0.97],
        "ask": [0.7, 1.0],
        "skip_unhappy": [0.0, 0.6],
        "visitors_per_day": [60, 160],
    },
    "faults": {
        "bounce": True,
        "bounce_edges": [2, 6],
        "bounce_span_ms": [2, 20],
        "wifi_drops_per_panel_day": 0.0,
        "wifi_drop_s": [5, 3600],
        "broker_outages_per_day": 0.0,
        "broker_outage_s": [5, 600],
        "reboots_per_panel_week": 0.0,
        "power_cuts_per_panel_week": 0.0,
        "no_clock_boot": 0.0,
        "ntp_delay_s": [20, 600],
        "gateway_restarts": 0,
        "overflow": [],
    },
}


# A seller who games the panel (simulator/world.py "gaming seller"); every behaviour is off
# unless given. Shares are probabilities 0..1; empty_per_day is a mean count per working day.
GAMING_DEFAULTS = {
    "self_yes": 0.0,  # share of his asked customers for whom he presses Yes himself at once
    "empty_per_day": 0.0,  # polls he opens with no customer and answers Yes himself
    "reopen_after_no": 0.0,  # share of No answers he overwrites: opens again and presses Yes
    "chord": 0.0,  # share of his own Yes pressed while still holding the seller button (then again)
}


def _gaming(g, path):
    if not isinstance(g, dict):
        raise ScenarioError("%s: must be a table of %s" % (path, ", ".join(GAMING_DEFAULTS)))
    out = dict(GAMING_DEFAULTS)
    for k, v in g.items():
        if k not in GAMING_DEFAULTS:
            raise ScenarioError("%s.%s: unknown key (known: %s)" % (path, k, ", ".join(GAMING_DEFAULTS)))
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0 or (k != "empty_per_day" and v > 1):
            raise ScenarioError(
                "%s.%s: must be a number %s, got %r" % (path, k, ">= 0" if k == "empty_per_day" else "from 0 to 1", v)
            )
        out[k] = float(v)
    return out


class ScenarioError(ValueError):
    """A scenario file problem: str() names the key and says what to do."""


def _merge(base, over, path, errors):
    out = copy.deepcopy(base)
    for key, value in over.items():
        if key not in base:
            errors.append("%s%s: unknown key (known: %s)" % (path, key, ", ".join(sorted(base))))
            continue
        if isinstance(base[key], dict) and isinstance(value, dict):
            out[key] = _merge(base[key], value, path + key + ".", errors)
        else:
            out[key] = value
    return out


def parse_hours(text, path):
    """Opening hours "09:00-20:00" -> (540, 1200) minutes (gateway.times.parse_hours, the site
    file's rule); a simulated office opens and closes on the same day."""
    try:
        start, end = times.parse_hours(text)
    except ValueError as exc:
        raise ScenarioError("%s: %s" % (path, exc)) from None
    if start >= end:
        raise ScenarioError("%s: opening must be before closing within one day, got %r" % (path, text))
    return start, end


def parse_days(text, path):
    """ "mon-fri" / "mon,wed,sat" / "mon-sun" -> set of weekday numbers (Monday = 0)."""
    try:
        return set(times.parse_days(text))
    except ValueError as exc:
        raise ScenarioError("%s: %s" % (path, exc)) from None


def sub_seed(seed, *names):
    """A stable seed for one part (site, panel): overriding --sites keeps the others' streams."""
    text = "%s/%s" % (seed, "/".join(str(n) for n in names))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


class Scenario:
    """A validated scenario. Attributes mirror the TOML tables; `sites` is the full list
    (explicit [[site]] tables plus the generated [chain] sites)."""

    def __init__(self, data, source="scenario"):
        self.source = source
        errors = []
        raw_sites = data.pop("site", [])
        merged = _merge(DEFAULTS, data, "", errors)
        if errors:
            raise ScenarioError("%s: %s" % (source, "; ".join(errors)))
        self.meta = merged["scenario"]
        self.method = merged["method"]
        self.firmware = merged["firmware"]
        self.people = merged["people"]
        self.defaults = merged["defaults"]
        self.chain = merged["chain"]
        self.faults = merged["faults"]
        self.seed = int(self.meta["seed"])
        self.days = int(self.meta["days"])
        try:
            self.start_date = _dt.date.fromisoformat(str(self.meta["start"]))
        except ValueError:
            raise ScenarioError("scenario.start: must be a date like 2025-03-03, got %r" % self.meta["start"]) from None
        if self.days < 1:
            raise ScenarioError("scenario.days: must be >= 1, got %d" % self.days)
        self.sites = [self._site(s, "site[%d]" % i) for i, s in enumerate(raw_sites)]
        self.sites += self._chain_sites()
        if not self.sites:
            raise ScenarioError("%s: no sites: add [[site]] tables or [chain] sites = N" % source)
        seen = set()
        for s in self.sites:
            if s["id"] in seen:
                raise ScenarioError("site id %r appears twice" % s["id"])
            seen.add(s["id"])

    @property
    def start_ms(self):
        return times.parse_instant(self.start_date, times.UTC)  # simulated days run in UTC

    @property
    def end_ms(self):
        return self.start_ms + self.days * times.DAY_MS

    def _site(self, s, path):
        d = self.defaults
        site = {
            "id": s.get("id"),
            "name": s.get("name", s.get("id")),
            "quality": float(s.get("quality", d["quality"])),
            "hours": parse_hours(s.get("hours", d["hours"]), path + ".hours"),
            "days_open": parse_days(s.get("days_open", d["days_open"]), path + ".days_open"),
            "visitors_per_day": float(s.get("visitors_per_day", d["visitors_per_day"])),
            "profile": list(s.get("profile", d["profile"])),
            "conversion": float(s.get("conversion", d["conversion"])),
            "service_min": list(s.get("service_min", d["service_min"])),
            "shift": s.get("shift", d["shift"]),
            "sellers": {},
            "panels": [],
        }
        _check_id(site["id"], path + ".id")
        if len(site["profile"]) != 24:
            raise ScenarioError("%s.profile: needs 24 hourly values, got %d" % (path, len(site["profile"])))
        if site["shift"] not in ("day", "split"):
            raise ScenarioError('%s.shift: must be "day" (rotate daily) or "split" (two halves a day)' % path)
        for j, e in enumerate(s.get("seller", [])):
            p = "%s.seller[%d]" % (path, j)
            _check_id(e.get("id"), p + ".id")
            site["sellers"][e["id"]] = {
                "id": e["id"],
                "name": e.get("name", e["id"]),
                "quality": float(e.get("quality", 0.8)),
                "ask": float(e.get("ask", 0.95)),
                "skip_unhappy": float(e.get("skip_unhappy", 0.0)),
            }
            if "gaming" in e:  # only then: an honest seller's record stays as it was
                site["sellers"][e["id"]]["gaming"] = _gaming(e["gaming"], p + ".gaming")
        for j, p_ in enumerate(s.get("panel", [])):
            p = "%s.panel[%d]" % (path, j)
            _check_id(p_.get("id"), p + ".id")
            kind = p_.get("kind", "staff")
            if kind not in QUESTION_KINDS:
                raise ScenarioError("%s.kind: must be one of %s, got %r" % (p, ", ".join(QUESTION_KINDS), kind))
            sellers = list(p_.get("sellers", []))
            if not sellers:
                raise ScenarioError("%s.sellers: name at least one seller id of this site" % p)
            for e in sellers:
                if e not in site["sellers"]:
                    raise ScenarioError("%s.sellers: %r is not a [[site.seller]] of %s" % (p, e, site["id"]))
            site["panels"].append({"id": p_["id"], "kind": kind, "sellers": sellers, "question": p_.get("question")})
        if not site["panels"]:
            raise ScenarioError("%s: a site needs at least one [[site.panel]]" % path)
        return site

    def _chain_sites(self):
        import random

        c = self.chain
        out = []
        for i in range(int(c["sites"])):
            sid = "store-%03d" % (i + 1)
            rng = random.Random(sub_seed(self.seed, "chain", sid))
            site = {
                "id": sid,
                "name": "Store %d" % (i + 1),
                "quality": rng.uniform(*c["quality"]),
                "visitors_per_day": rng.uniform(*c["visitors_per_day"]),
                "seller": [],
                "panel": [],
            }
            n_panels = rng.randint(*c["panels"])
            for j in range(n_panels):
                kind = "staff" if j == 0 else rng.choice(c["kinds"])
                names = []
                for k in range(int(c["sellers_per_panel"])):
                    eid = "s%03d-%d%d" % (i + 1, j + 1, k + 1)
                    names.append(eid)
                    site["seller"].append(
                        {
                            "id": eid,
                            "name": "Seller %d-%d-%d" % (i + 1, j + 1, k + 1),
                            "quality": rng.uniform(*c["seller_quality"]),
                            "ask": rng.uniform(*c["ask"]),
                            "skip_unhappy": rng.uniform(*c["skip_unhappy"]),
                        }
                    )
                site["panel"].append({"id": "panel-%d" % (j + 1), "kind": kind, "sellers": names})
            out.append(self._site(site, "chain.%s" % sid))
        return out

    def panels(self):
        """[(site, panel)] in a stable order."""
        return [(s, p) for s in self.sites for p in s["panels"]]


def _check_id(value, path):
    try:
        topics.check_id(value, path)
    except ProtocolError as exc:
        raise ScenarioError(
            "%s: must be an id of 1..%d characters a-z, 0-9, '-' (%s)" % (path, topics.MAX_ID, exc.problem)
        ) from None


def load(path, days=None, sites=None, seed=None):
    """Read a scenario file; `days`, `sites` (keep the first N) and `seed` override the file."""
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise ScenarioError("%s: no such scenario file (the shipped ones are in simulator/scenarios/)" % path) from None
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError("%s: not valid TOML: %s" % (path, exc)) from None
    return from_dict(data, source=str(path), days=days, sites=sites, seed=seed)


def from_dict(data, source="scenario", days=None, sites=None, seed=None):
    data = copy.deepcopy(data)
    meta = data.setdefault("scenario", {})
    if days is not None:
        meta["days"] = int(days)
    if seed is not None:
        meta["seed"] = int(seed)
    sc = Scenario(data, source)
    if sites is not None:
        if sites < 1:
            raise ScenarioError("--sites: must be >= 1, got %d" % sites)
        sc.sites = sc.sites[:sites]
    return sc
