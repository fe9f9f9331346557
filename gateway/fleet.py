"""The panel fleet: one row per panel, configured in the site file or seen on the wire, judged
by gateway/panelhealth.py (pure). The one read behind `rating status` (gateway/status.py) and
the web console's fleet page and `/api/v1/panels`.

The cheap part (`rows`: state, problems, last seen, config pushed vs running, firmware, signal,
faults) covers every panel; the part that grows with a panel's events (`add_gaps`: lost and
missing events, the acked seq) is computed for the panels shown.
"""

from gateway import configpush, derive, panelhealth, store

STATES = panelhealth.STATES
summary = panelhealth.summary
sort_key = panelhealth.sort_key


def _question(history, site, device, now_ms):
    """(question id, the text the panel shows now: deployment language, employee filled in)."""
    panel = history.panel(site, device, now_ms) or {}
    want = configpush.desired(history, site, device, now_ms) or {}
    return panel.get("question"), want.get("question") or panel.get("question")


def rows(db, history, now_ms, sites=None):
    """Every panel configured now or ever seen (of the offices `sites`, None: all), sorted by
    office and panel, without the gap columns (see add_gaps)."""
    configured = set(history.panels(now_ms))
    # every panel that ever sent a valid message has a state row (an event moves last_seen), so
    # the states and the dead letters say who was seen without scanning the events
    states = {(r["site"], r["device"]): r for r in store.panel_states(db)}
    known = set(states) | store.dead_letter_panels(db)
    pushed = configpush.pushed(db)
    out = []
    for site, device in sorted(configured | known):
        if sites is not None and site not in sites:
            continue
        pushed_ver, pushed_knobs = pushed.get((site, device), (None, None))
        heartbeat_s = panelhealth.heartbeat_of(history.panel(site, device, now_ms), pushed_knobs)
        state = dict(states.get((site, device)) or {})
        row = panelhealth.row(site, device, state, (site, device) in configured, heartbeat_s, pushed_ver, now_ms)
        qid, qtext = _question(history, site, device, now_ms)
        row.update(
            site_name=history.site_name(site),
            timezone=str(history.home_tz(site)),
            question=qid,
            question_text=qtext,
        )
        out.append(row)
    return out


def _no_gaps(db, site, device, state):
    """True when the panel certainly has no gap: every seq 1..top stored, nothing dead-lettered
    above it, and its journal floor not above it. Counting the panel's index entries is far
    cheaper than store.gaps' scan of its events, and a healthy panel is the common case."""
    top = store.max_seq(db, site, device)
    return (
        store.max_handled_seq(db, site, device) == top
        and store.held_floor(state) <= top + 1
        and store.event_count_through(db, site, device, top) == top
    )


def add_gaps(db, panel_rows, now_ms, grace_ms=store.LOST_GRACE_MS):
    """Fill lost / missing events and the acked seq into the given rows (in place; a panel with
    lost events gets the `lost` problem)."""
    states = {(r["site"], r["device"]): r for r in store.panel_states(db)}
    # what derivation knows complete (every seq 1..it stored) is not read again: the panels
    # with no gap above it are found in a few statements for all, the others scanned above it
    through = derive.stored_through(db)
    shown = {(r["site"], r["device"]) for r in panel_rows}
    clean = store.gapless(db, {p: s for p, s in through.items() if p in shown})
    for row in panel_rows:
        panel = (row["site"], row["device"])
        st = states.get(panel)
        if panel in clean or (panel not in through and _no_gaps(db, row["site"], row["device"], st)):
            gaps = []  # also a configured panel never heard from: nothing to lose yet
        else:
            gaps = store.gaps(
                db, row["site"], row["device"], now_ms, grace_ms, state=st, stored_through=through.get(panel, 0)
            )
        lost, ranges = store.lost_summary(gaps)
        missing = sum(g["count"] for g in gaps if g["status"] == "open")
        panelhealth.with_losses(row, lost, ranges, missing, store.last_ack(db, row["site"], row["device"]))
    return panel_rows
