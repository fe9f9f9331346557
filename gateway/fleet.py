"""The panel fleet: one row per panel, configured in the site file or seen on the wire.

One function computes the rows so the web console's fleet page and `rating status` can show
the same thing (status still has its own today; it can move onto `rows` and `summary`). The
cheap part (`rows`: state, last seen, config, firmware, faults) covers every panel; the part
that grows with a panel's events (`add_gaps`: lost and missing events) is computed for the
panels a page shows.

Connection state, from the panel's heartbeat (`state` at least every `heartbeat_s`, 60 s by
default, firmware/config.py) and the broker's last will:
- `online`: the last state said online and the panel spoke within STALE_MS;
- `stale`: it said online, but nothing came for longer (a hung panel, or its broker link is
  half-open and the will has not fired yet);
- `offline`: its last will (or an offline state) arrived;
- `never`: configured in the site file, never heard from.
"""

import json

from gateway import configpush, store

# three missed heartbeats at the firmware's default 60 s
STALE_MS = 3 * 60 * 1000
STATES = ("online", "stale", "offline", "never")


def connection(state, now_ms, stale_ms=STALE_MS):
    """'online' | 'stale' | 'offline' | 'never' for a panel_state row (None: never seen)."""
    if not state or state.get("last_seen_ms") is None and state.get("online") is None:
        return "never"
    if state.get("online") == 0:
        return "offline"
    seen = state.get("last_seen_ms")
    if seen is None or now_ms - seen > stale_ms:
        return "stale"
    return "online"


def _question(history, site, device, now_ms):
    """(question id, the text the panel shows now: deployment language, employee filled in)."""
    panel = history.panel(site, device, now_ms) or {}
    want = configpush.desired(history, site, device, now_ms) or {}
    return panel.get("question"), want.get("question") or panel.get("question")


def _reset(payload):
    # newer firmware may report why it restarted; older states simply have no such field
    try:
        data = json.loads(payload) if payload else {}
    except ValueError:
        return None
    return data.get("reset") if isinstance(data, dict) else None


def rows(db, history, now_ms, sites=None, stale_ms=STALE_MS):
    """Every panel configured now or ever seen (of the offices `sites`, None: all), sorted by
    office and panel, without the gap columns (see add_gaps)."""
    configured = set(history.panels(now_ms))
    states = {(r["site"], r["device"]): r for r in store.panel_states(db)}
    # every panel that ever sent a valid message has a state row (an event moves last_seen),
    # so the states say who was seen without scanning the events
    seen = set(states)
    pushed = configpush.pushed_versions(db)
    out = []
    for site, device in sorted(configured | seen):
        if sites is not None and site not in sites:
            continue
        st = states.get((site, device)) or {}
        qid, qtext = _question(history, site, device, now_ms)
        cfg = st.get("cfg")
        want = pushed.get((site, device))
        faults = json.loads(st["faults"]) if st.get("faults") else []
        out.append(
            {
                "site": site,
                "site_name": history.site_name(site),
                "device": device,
                "configured": (site, device) in configured,
                "connection": connection(st if (site, device) in seen else None, now_ms, stale_ms),
                "last_seen_ms": st.get("last_seen_ms"),
                "question": qid,
                "question_text": qtext,
                "config_pushed": want,
                "config_running": cfg,
                "config_applied": None if want is None else (cfg is not None and str(cfg) == str(want)),
                "config_error": st.get("cfg_err"),
                "fw": st.get("fw"),
                "backlog": st.get("pending"),
                "dropped": st.get("dropped"),
                "rssi": st.get("rssi"),
                "faults": faults,
                "reset": _reset(st.get("payload")),
                "acked_seq": None,
                "lost": None,
                "lost_ranges": "",
                "missing_open": None,
            }
        )
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
    """Fill lost / missing events and the acked seq into the given rows (in place)."""
    states = {(r["site"], r["device"]): r for r in store.panel_states(db)}
    for row in panel_rows:
        if row["connection"] == "never":
            continue
        st = states.get((row["site"], row["device"]))
        if _no_gaps(db, row["site"], row["device"], st):
            gaps = []
        else:
            gaps = store.gaps(db, row["site"], row["device"], now_ms, grace_ms, state=st)
        row["lost"], row["lost_ranges"] = store.lost_summary(gaps)
        row["missing_open"] = sum(g["count"] for g in gaps if g["status"] == "open")
        row["acked_seq"] = store.last_ack(db, row["site"], row["device"])
    return panel_rows


def summary(panel_rows):
    """{connection state: panels} plus faults and config not applied, over the given rows."""
    out = {s: 0 for s in STATES}
    out.update(faults=0, config_pending=0, unconfigured=0)
    for r in panel_rows:
        out[r["connection"]] += 1
        out["faults"] += bool(r["faults"] or r["config_error"])
        out["config_pending"] += r["config_applied"] is False
        out["unconfigured"] += not r["configured"]
    return out
