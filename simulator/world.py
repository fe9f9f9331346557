"""What really happens in the simulated chain: people, presses, counts and faults (pure).

`generate(scenario) -> World`. Seeded: the same scenario and seed give the same World, and
each site/panel draws from its own stream (simulator.scenario.sub_seed), so `--sites 3`
simulates exactly the first three sites of the full run.

The World holds
- `presses[(site, device)]`: every physical press on a panel, in time order (down time,
  button, hold) with the event the firmware should emit and why it happened (role);
- the truth as a person would count it: `polls` (one per customer the seller asked),
  `fms` (force-majeure episodes and whether the expert confirms them), `invalid` polls,
  unsolicited presses, `counts` (visitors and transactions per site and hour), the roster;
- `faults`: Wi-Fi drops, broker outages, reboots, power cuts (with a torn journal write),
  boots without a clock, gateway restarts, journal overflows.

Timing rules keep every truth unambiguous under the method's poll rules (window, rearm, fm):
an asked customer answers 4..20 s after the seller's press, a late press comes 2..10 s after
the window, the next poll on a panel opens no sooner than window + 15 s later, children and
force-majeure presses only happen while no poll window is open, and poll openings stay 2 s
away from force-majeure period bounds and shift changes.

A gaming seller (`[[site.seller]] gaming = {...}`, scenario.GAMING_DEFAULTS) also presses Yes
himself 0.2-1.2 s after opening a poll (`self_yes`: instead of asking the customer; `chord`:
pressing Yes while still holding the seller button, then again after release), opens polls
with no customer and answers them (`empty_per_day`, in idle moments of his shifts, no
transaction), and overwrites a No: opens again 3-10 s after the customer's last press and
presses Yes (`reopen_after_no`). His polls carry `gamed: True` in the truth (the answer the
system counts is his). His choices draw from a stream of their own (sub_seed "gaming"), so
a scenario without a gaming seller generates exactly the World it did before.
"""

import math
import random

from simulator.scenario import sub_seed

ANSWER_BUTTONS = ("yes", "no", "unsure")
BOUNDARY_MARGIN_MS = 2000  # poll openings keep this far from FM bounds / shift changes
LATE_MAX_S = 10.0
GAP_AFTER_WINDOW_S = 15.0  # window end -> next poll of the same panel, at least


class Press:
    """One finger on one button. `t` is the down time (ms, Unix epoch, true time)."""

    __slots__ = ("t", "button", "hold", "ev", "role", "poll", "fm", "lost", "seq")

    def __init__(self, t, button, hold, ev, role, poll=None, fm=None):
        self.t = t
        self.button = button
        self.hold = hold
        self.ev = ev  # event the firmware emits: yes/no/unsure/seller_short/seller_long
        self.role = role  # open, dup, answer, extra, late, child, fm, fm_extend, victim
        self.poll = poll  # index into World.polls
        self.fm = fm  # index into World.fms
        self.lost = None  # why the system cannot know this press (set by the runner)
        self.seq = None  # the seq the panel gave its event (set by whoever runs it)

    def as_dict(self):
        return {
            "t": self.t,
            "button": self.button,
            "hold": self.hold,
            "ev": self.ev,
            "role": self.role,
            "poll": self.poll,
            "fm": self.fm,
            "lost": self.lost,
            "seq": self.seq,
        }


class World:
    def __init__(self, scenario):
        self.scenario = scenario
        self.presses = {}  # (site, device) -> [Press]
        self.polls = []  # dicts, see _poll()
        self.fms = []
        self.counts = []  # {"site","from","to","visitors","transactions"}
        self.roster = []  # {"site","device","employee","from","to"}
        self.faults = []  # {"t","kind",...}
        self.transactions_by_employee = {}


def _pick_answer(rng, happy):
    r = rng.random()
    if happy:
        return "yes" if r < 0.85 else ("unsure" if r < 0.95 else "no")
    return "no" if r < 0.65 else ("unsure" if r < 0.85 else "yes")


def _poisson(rng, lam):
    if lam <= 0:
        return 0
    if lam > 50:  # normal approximation keeps big rates cheap
        return max(0, int(round(rng.gauss(lam, math.sqrt(lam)))))
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def _log_uniform(rng, lo, hi):
    return math.exp(rng.uniform(math.log(lo), math.log(hi)))


class _Desk:
    """One panel during one day: its seller timeline and what it is busy with."""

    def __init__(self, site, panel, index):
        self.site = site
        self.panel = panel
        self.index = index
        self.key = (site["id"], panel["id"])
        self.free = 0  # the seller can start the next customer
        self.next_poll = 0  # earliest opening of the next poll (window + gap rule)
        self.busy = []  # (from, to) intervals with presses or open windows
        self.day = 0  # the simulated day being generated
        self.grng = random.Random(0)  # a gaming seller's choices (set per site: _site_people)


def _seller_at(site, panel, pidx, day, minute_of_day):
    sellers = panel["sellers"]
    n = len(sellers)
    if site["shift"] == "split" and n > 1:
        start, end = site["hours"]
        split = start + ((end - start) // 120) * 60
        half = 0 if minute_of_day < split else 1
        return sellers[(day + pidx + half) % n]
    return sellers[(day + pidx) % n]


def _shift_changes(site, panel, pidx, day, day_ms):
    """Times (ms) during the day at which the panel's seller changes."""
    start, end = site["hours"]
    if site["shift"] == "split" and len(panel["sellers"]) > 1:
        split = start + ((end - start) // 120) * 60
        return [day_ms + split * 60000]
    return []


def generate(sc):
    w = World(sc)
    for site, panel in sc.panels():
        w.presses[(site["id"], panel["id"])] = []
    for site in sc.sites:
        _site_people(sc, w, site)
    for key in w.presses:
        w.presses[key].sort(key=lambda p: p.t)
    _faults(sc, w)
    return w


def _site_people(sc, w, site):
    """One site's days: roster, visitors and buyers, force majeure, customers, children."""
    rng = random.Random(sub_seed(sc.seed, "people", site["id"]))
    grng = random.Random(sub_seed(sc.seed, "gaming", site["id"]))  # a gaming seller's choices
    m = sc.method
    window_ms = int(m["window_s"] * 1000)
    fm_ms = int(m["fm_minutes"] * 60000)
    long_ms = int(sc.firmware["long_ms"])
    min_gap_ms = window_ms + int((LATE_MAX_S + GAP_AFTER_WINDOW_S) * 1000)
    open_min, close_min = site["hours"]
    desks = [_Desk(site, p, i) for i, p in enumerate(site["panels"])]
    for d in desks:
        d.grng = grng  # one stream per site, drawn only by gaming sellers
    for day in range(sc.days):
        day_ms = sc.start_ms + day * 86400000
        weekday = (sc.start_date.weekday() + day) % 7
        if weekday not in site["days_open"]:
            continue
        _day_roster(w, site, day, day_ms)
        customers = _day_visitors(w, rng, site, day_ms)
        fm_plan = _day_fm_plan(sc, rng, site, desks, day_ms)
        for d in desks:
            d.free = day_ms + open_min * 60000
            d.next_poll = 0
            d.day = day
        lo_s, hi_s = site["service_min"]
        for arrival in customers:
            # the customer joins the desk that frees up first (ties: the first desk)
            desk = min(desks, key=lambda d: (max(d.free, arrival), d.index))
            start = max(desk.free, arrival)
            _run_fm(sc, w, rng, desk, fm_plan, start, day, day_ms, window_ms, fm_ms, long_ms, min_gap_ms)
            start = max(start, desk.free)
            service = rng.uniform(lo_s, hi_s) * 60000
            t_open = max(int(start + service), desk.next_poll)
            t_open = _avoid_bounds(w, desk, t_open, day, day_ms)
            emp = _seller_at(site, desk.panel, desk.index, day, (t_open - day_ms) // 60000)
            # roster attribution is by opening time; after closing the last seller stays on
            if t_open >= day_ms + close_min * 60000:
                emp = _seller_at(site, desk.panel, desk.index, day, close_min - 1)
            seller = site["sellers"][emp]
            w.transactions_by_employee[emp] = w.transactions_by_employee.get(emp, 0) + 1
            _customer(sc, w, rng, desk, seller, t_open, window_ms, min_gap_ms)
        # episodes planned after the last customer still happen
        for d in desks:
            _run_fm(sc, w, rng, d, fm_plan, day_ms + 86400000, day, day_ms, window_ms, fm_ms, long_ms, min_gap_ms)
        for d in desks:
            _day_empty_polls(w, d, day, day_ms, window_ms)
        _day_children(sc, w, rng, site, desks, day_ms)


def _day_roster(w, site, day, day_ms):
    """Who stands at each panel from opening to closing that day."""
    open_min, close_min = site["hours"]
    for pidx, panel in enumerate(site["panels"]):
        bounds = (
            [day_ms + open_min * 60000] + _shift_changes(site, panel, pidx, day, day_ms) + [day_ms + close_min * 60000]
        )
        for a, b in zip(bounds, bounds[1:], strict=False):
            emp = _seller_at(site, panel, pidx, day, (a - day_ms) // 60000)
            w.roster.append({"site": site["id"], "device": panel["id"], "employee": emp, "from": a, "to": b})


def _day_visitors(w, rng, site, day_ms):
    """Visitors per hour (Poisson) into w.counts; returns the arrival times of those who buy
    (a transaction), each of whom is served at a desk."""
    open_min, close_min = site["hours"]
    profile = site["profile"]
    open_weight = sum(profile[h] * _overlap(h, open_min, close_min) for h in range(24)) or 1.0
    customers = []
    for h in range(24):
        share = _overlap(h, open_min, close_min)
        if share <= 0:
            continue
        lam = site["visitors_per_day"] * profile[h] * share / open_weight
        n = _poisson(rng, lam)
        lo = max(h * 60, open_min) * 60000
        hi = min((h + 1) * 60, close_min) * 60000
        tx = 0
        for _ in range(n):
            if rng.random() < site["conversion"]:
                tx += 1
                customers.append(day_ms + rng.randrange(lo, hi))
        w.counts.append(
            {
                "site": site["id"],
                "from": day_ms + h * 3600000,
                "to": day_ms + (h + 1) * 3600000,
                "visitors": n,
                "transactions": tx,
            }
        )
    customers.sort()
    return customers


def _day_fm_plan(sc, rng, site, desks, day_ms):
    """Force-majeure episodes per panel that day: desk key -> sorted start times."""
    open_min, close_min = site["hours"]
    fm_plan = {}
    for d in desks:
        k = _poisson(rng, sc.people["fm_per_panel_week"] / 7.0)
        fm_plan[d.key] = sorted(
            day_ms + rng.randrange(open_min * 60000, max(open_min + 1, close_min - 45) * 60000) for _ in range(k)
        )
    return fm_plan


def _day_children(sc, w, rng, site, desks, day_ms):
    """Children mash buttons while no poll is open."""
    open_min, close_min = site["hours"]
    for _ in range(_poisson(rng, sc.people["children_per_site_day"])):
        desk = rng.choice(desks)
        for _try in range(20):
            t = day_ms + rng.randrange(open_min * 60000, close_min * 60000)
            n = rng.randint(3, 8)
            times = [t]
            for _i in range(n - 1):
                times.append(times[-1] + rng.randint(300, 1500))
            if _idle(desk, t - 2000, times[-1] + 2000):
                for x in times:
                    b = rng.choice(ANSWER_BUTTONS)
                    w.presses[desk.key].append(Press(x, b, rng.randint(60, 200), b, "child"))
                desk.busy.append((t - 2000, times[-1] + 2000))
                break


def _overlap(h, open_min, close_min):
    """Share of hour h inside opening hours."""
    a, b = max(h * 60, open_min), min((h + 1) * 60, close_min)
    return max(0, b - a) / 60.0


def _idle(desk, a, b):
    for x, y in desk.busy:
        if x < b and a < y:
            return False
    return True


def _avoid_bounds(w, desk, t, day, day_ms):
    """Move a poll opening off force-majeure bounds and shift changes (2 s either side)."""
    bounds = _shift_changes(desk.site, desk.panel, desk.index, day, day_ms)
    bounds += [day_ms + desk.site["hours"][1] * 60000]
    for i in desk.__dict__.get("fm_list", []):
        fm = w.fms[i]
        bounds += [fm["start"], fm["end"]]
    for _ in range(4):
        moved = False
        for b in bounds:
            if b - BOUNDARY_MARGIN_MS < t < b + BOUNDARY_MARGIN_MS:
                t = b + BOUNDARY_MARGIN_MS
                moved = True
        if not moved:
            break
    return t


def _run_fm(sc, w, rng, desk, plan, until, day, day_ms, window_ms, fm_ms, long_ms, min_gap_ms):
    """Perform the desk's planned force-majeure presses due before `until` (idle moments only).

    A long press inside a running period of the same panel extends it (the method's rule),
    whether the seller meant "still broken" or a new problem; the truth follows that rule."""
    pe = sc.people
    todo = plan[desk.key]
    site, panel = desk.site, desk.panel
    fm_list = desk.__dict__.setdefault("fm_list", [])
    while todo and todo[0] <= until:
        planned = todo.pop(0)
        t = max(planned, desk.free, desk.next_poll - min_gap_ms + window_ms + int(LATE_MAX_S * 1000) + 3000)
        hold = rng.randint(long_ms + 300, long_ms + 2500)
        ev_t = t + long_ms  # reported when the hold crosses long_ms
        running = w.fms[fm_list[-1]] if fm_list else None
        if running is not None and running["end"] - 5000 <= ev_t < running["end"] + 5000:
            t += 10000  # keep clear of the period's end: extend or not, never a coin toss
            ev_t = t + long_ms
        emp = _seller_at(site, panel, desk.index, day, min(site["hours"][1] - 1, (t - day_ms) // 60000))
        if running is not None and running["start"] <= ev_t < running["end"]:
            fm = running
            fm["presses"].append(ev_t)
            fm["end"] = ev_t + fm_ms
            role = "fm_extend"
        else:
            fm = {
                "id": len(w.fms),
                "site": site["id"],
                "device": panel["id"],
                "employee": emp,
                "presses": [ev_t],
                "start": ev_t,
                "end": ev_t + fm_ms,
                "confirmed": rng.random() < pe["fm_confirm"],
            }
            w.fms.append(fm)
            fm_list.append(fm["id"])
            role = "fm"
            if rng.random() < pe["fm_extend"]:
                # "still broken": a second long press inside the running period
                t2 = ev_t + rng.randint(3 * 60000, max(3 * 60000 + 1, fm_ms - 120000))
                todo.append(t2)
                todo.sort()
        w.presses[desk.key].append(Press(t, "seller", hold, "seller_long", role, fm=fm["id"]))
        desk.busy.append((t - 2000, t + hold + 2000))
        desk.free = max(desk.free, t + hold + 3000)
        desk.next_poll = max(desk.next_poll, t + hold + 3000)


def _customer(sc, w, rng, desk, seller, t_open, window_ms, min_gap_ms):
    """Serve one customer whose service ends at t_open: maybe a poll, with all its presses."""
    pe = sc.people
    site, panel = desk.site, desk.panel
    kind = panel["kind"]
    q = {"staff": seller["quality"], "office": site["quality"], "loyalty": (seller["quality"] + site["quality"]) / 2}[
        kind
    ]
    in_fm = [w.fms[i] for i in desk.__dict__.get("fm_list", []) if w.fms[i]["start"] <= t_open < w.fms[i]["end"]]
    if any(f["confirmed"] for f in in_fm):
        q = q * (1 - pe["fm_unhappy"])  # a real problem (the expert will see it) upsets people
    happy = rng.random() < q
    desk.free = t_open + 1000
    if not happy and rng.random() < seller["skip_unhappy"]:
        return  # the seller does not ask an unhappy customer
    if rng.random() >= seller["ask"]:
        return
    g = seller.get("gaming")
    if g and desk.grng.random() < g["self_yes"]:
        _gamed_poll(w, desk, seller, t_open, window_ms, g)
        desk.next_poll = t_open + min_gap_ms
        return
    hold = rng.randint(90, 400)
    down = t_open - hold  # the short press is reported on release: t_open
    idx = len(w.polls)
    silent = rng.random() < (pe["silent"] if happy else pe["silent_unhappy"])
    poll = {
        "id": idx,
        "site": site["id"],
        "device": panel["id"],
        "employee": seller["id"],
        "kind": kind,
        "opened_at": t_open,
        "answer": None,
        "extra": 0,
        "late": False,
        "dup": False,
        "invalid": rng.random() < pe["invalid_share"],
        "happy": happy,
    }
    w.polls.append(poll)
    presses = w.presses[desk.key]
    presses.append(Press(down, "seller", hold, "seller_short", "open", poll=idx))
    end = t_open + window_ms
    if rng.random() < pe["seller_double_press"]:
        d2 = t_open + rng.randint(300, 1200)
        presses.append(Press(d2, "seller", rng.randint(80, 250), "seller_short", "dup", poll=idx))
        poll["dup"] = True
    lo, hi = pe["answer_delay_s"]
    if not silent:
        answer = _pick_answer(rng, happy)
        t = t_open + int(rng.uniform(lo, hi) * 1000)
        presses.append(Press(t, answer, rng.randint(60, 300), answer, "answer", poll=idx))
        poll["answer"] = answer
        if rng.random() < pe["double_press"]:
            t2 = t + rng.randint(800, 4000)
            if t2 < end - 2000:
                b = answer if rng.random() < 0.7 else rng.choice(ANSWER_BUTTONS)
                presses.append(Press(t2, b, rng.randint(60, 300), b, "extra", poll=idx))
                poll["extra"] += 1
    elif rng.random() < pe["late_press"]:
        t = end + int(rng.uniform(2.0, LATE_MAX_S) * 1000)
        b = _pick_answer(rng, happy)
        presses.append(Press(t, b, rng.randint(60, 300), b, "late", poll=idx))
        poll["late"] = True
    desk.busy.append((down - 2000, end + int(LATE_MAX_S * 1000) + 2000))
    desk.next_poll = t_open + min_gap_ms
    if g and poll["answer"] == "no" and desk.grng.random() < g["reopen_after_no"]:
        _reopen(w, desk, seller, idx, window_ms, min_gap_ms, g)


def _gamed_poll(w, desk, seller, t_open, window_ms, g, before=None):
    """The seller opens a poll (release at t_open) and presses Yes himself 0.2-1.2 s later;
    with `chord`, he first presses Yes while still holding the seller button. The Yes pressed
    during the hold comes before the poll: an unsolicited press, or an extra press of the
    poll `before` when that one is still open (a No being overwritten)."""
    grng = desk.grng
    chord = grng.random() < g["chord"]
    hold = grng.randint(500, 1000) if chord else grng.randint(90, 400)
    down = t_open - hold
    idx = len(w.polls)
    w.polls.append(
        {
            "id": idx,
            "site": desk.site["id"],
            "device": desk.panel["id"],
            "employee": seller["id"],
            "kind": desk.panel["kind"],
            "opened_at": t_open,
            "answer": "yes",
            "extra": 0,
            "late": False,
            "dup": False,
            "invalid": False,
            "happy": False,
            "gamed": True,
        }
    )
    presses = w.presses[desk.key]
    presses.append(Press(down, "seller", hold, "seller_short", "open", poll=idx))
    if chord:
        t = down + grng.randint(150, hold - 150)
        if before is None:
            presses.append(Press(t, "yes", grng.randint(60, 200), "yes", "held"))
        else:
            presses.append(Press(t, "yes", grng.randint(60, 200), "yes", "extra", poll=before))
            w.polls[before]["extra"] += 1
    t = t_open + grng.randint(200, 1200)
    presses.append(Press(t, "yes", grng.randint(60, 200), "yes", "answer", poll=idx))
    desk.busy.append((down - 2000, t_open + window_ms + int(LATE_MAX_S * 1000) + 2000))
    return idx


def _reopen(w, desk, seller, before, window_ms, min_gap_ms, g):
    """Overwrite the No of poll `before`: open again 3-10 s after its customer's last press
    and press Yes; not across a shift change or force-majeure bound (the truth stays plain)."""
    last = max(p.t for p in w.presses[desk.key] if p.poll == before)
    t_open = last + desk.grng.randint(3000, 10000)
    if _avoid_bounds(w, desk, t_open, desk.day, t_open - t_open % 86400000) != t_open:
        return
    if not _seller_on(desk, seller, t_open):
        return
    _gamed_poll(w, desk, seller, t_open, window_ms, g, before=before)
    desk.free = max(desk.free, t_open + 1000)
    desk.next_poll = t_open + min_gap_ms


def _seller_on(desk, seller, t):
    """The roster puts `seller` at the desk at time t (a poll there is his)."""
    day_ms = t - t % 86400000
    minute = (t - day_ms) // 60000
    start, end = desk.site["hours"]
    if not start <= minute < end:
        return False
    day = desk.day
    return _seller_at(desk.site, desk.panel, desk.index, day, minute) == seller["id"]


def _day_empty_polls(w, desk, day, day_ms, window_ms):
    """A gaming seller's polls with no customer: opened in idle moments of his shift and
    answered Yes by himself (no transaction)."""
    site, panel = desk.site, desk.panel
    open_min, close_min = site["hours"]
    for sid in panel["sellers"]:
        g = site["sellers"][sid].get("gaming")
        if not g or not g["empty_per_day"]:
            continue
        for _ in range(_poisson(desk.grng, g["empty_per_day"])):
            for _try in range(30):
                t = day_ms + desk.grng.randrange(open_min * 60000 + 60000, close_min * 60000 - 120000)
                span = (t - 5000, t + window_ms + int(LATE_MAX_S * 1000) + 5000)
                if not _idle(desk, *span) or not _seller_on(desk, site["sellers"][sid], t):
                    continue
                if _avoid_bounds(w, desk, t, day, day_ms) != t:
                    continue
                _gamed_poll(w, desk, site["sellers"][sid], t, window_ms, g)
                break


def _faults(sc, w):
    """Fault schedule: list of dicts sorted by time. Per-panel faults pick idle moments."""
    f = sc.faults
    start, end = sc.start_ms, sc.end_ms
    days = sc.days
    rng = random.Random(sub_seed(sc.seed, "faults"))
    out = []
    for _ in range(_poisson(rng, f["broker_outages_per_day"] * days)):
        t = rng.randrange(start + 3600000, end - 3600000)
        out.append({"t": t, "kind": "broker_outage", "duration": int(_log_uniform(rng, *f["broker_outage_s"]) * 1000)})
    for _ in range(int(f["gateway_restarts"])):
        out.append({"t": rng.randrange(start + 3600000, end - 3600000), "kind": "gateway_restart"})
    overflow = {(o.get("site"), o.get("device")): o for o in f["overflow"]}
    for site, panel in sc.panels():
        key = (site["id"], panel["id"])
        prng = random.Random(sub_seed(sc.seed, "faults", site["id"], panel["id"]))
        presses = w.presses[key]
        times = [p.t for p in presses]
        # the first boot may have no clock either
        if prng.random() < f["no_clock_boot"]:
            out.append(
                {
                    "t": start,
                    "kind": "ntp_delay",
                    "site": key[0],
                    "device": key[1],
                    "duration": int(prng.uniform(*f["ntp_delay_s"]) * 1000),
                }
            )
        for _ in range(_poisson(prng, f["wifi_drops_per_panel_day"] * days)):
            t = prng.randrange(start, end - 60000)
            out.append(
                {
                    "t": t,
                    "kind": "wifi_drop",
                    "site": key[0],
                    "device": key[1],
                    "duration": int(_log_uniform(prng, *f["wifi_drop_s"]) * 1000),
                }
            )
        for kind, rate in (("reboot", f["reboots_per_panel_week"]), ("power_cut", f["power_cuts_per_panel_week"])):
            for _ in range(_poisson(prng, rate * days / 7.0)):
                down = prng.randint(3000, 10000) if kind == "reboot" else prng.randint(5000, 120000)
                t = _idle_time(prng, times, start, end, down + 8000)
                if t is None:
                    continue
                fault = {
                    "t": t,
                    "kind": kind,
                    "site": key[0],
                    "device": key[1],
                    "duration": down,
                    "no_clock": prng.random() < f["no_clock_boot"],
                    "ntp_delay": int(prng.uniform(*f["ntp_delay_s"]) * 1000),
                }
                if kind == "power_cut":
                    # someone presses just as the power fails: the journal write is torn
                    b = prng.choice(ANSWER_BUTTONS)
                    victim = Press(t - 1500, b, 80, b, "victim")
                    presses.append(victim)
                    fault["victim_t"] = victim.t
                out.append(fault)
                times = sorted(times + [t - 1500])
        presses.sort(key=lambda p: p.t)
        o = overflow.get(key)
        if o:
            t = start + int(float(o.get("offline_from_h", 1)) * 3600000)
            out.append(
                {
                    "t": t,
                    "kind": "wifi_drop",
                    "site": key[0],
                    "device": key[1],
                    "duration": int(float(o.get("offline_hours", 24)) * 3600000),
                    "overflow": True,
                }
            )
    out.sort(key=lambda x: (x["t"], x["kind"], x.get("site", ""), x.get("device", "")))
    w.faults = out


def _idle_time(rng, times, start, end, span):
    """A moment at least `span` ms (plus margins) away from any press of the panel."""
    import bisect

    for _ in range(50):
        t = rng.randrange(start + 600000, end - span - 600000)
        i = bisect.bisect_left(times, t - 45000)
        if i >= len(times) or times[i] > t + span + 45000:
            return t
    return None
