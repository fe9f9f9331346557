"""What `rating status` says about each panel: pure judgement (`judge`) and the read (`report`).

A panel is one of
- `online`: it said it is online and was heard from within STALE_BEATS heartbeats;
- `stale`: it said it is online but nothing came for longer (a hung panel, a dead link whose
  last will the broker has not sent yet, a broker that lost the will);
- `offline`: its last will (or its own state) says it is offline;
- `never_seen`: configured in the site file, but nothing ever arrived from it.
Its heartbeat is `heartbeat_s` from the site file's panel entry (pushed in its config), else
from the config last pushed to it, else the firmware's default (DEFAULT_HEARTBEAT_S).

Problems (codes, for JSON and for sorting): never_seen, offline, stale, config_pending (the
panel does not run the config version last pushed), config_error, faults, lost (events lost),
weak_signal (RSSI below WEAK_RSSI), watchdog (the last reset was the watchdog's). Panels with
problems come first.
"""

import json

from gateway import configpush, derive, store
from gateway import site as site_mod

DEFAULT_HEARTBEAT_S = 60  # firmware/config.py timings.heartbeat_s (a test keeps them equal)
STALE_BEATS = 3  # heartbeats missed before an "online" panel counts as stale
STALE_SLACK_MS = 30000  # a heartbeat delayed by a reconnect is not a stale panel
WEAK_RSSI = -80  # dBm: below it MQTT over Wi-Fi drops often (ESP32 station)
PROBLEM_ORDER = (
    "never_seen",
    "offline",
    "stale",
    "config_error",
    "config_pending",
    "watchdog",
    "faults",
    "lost",
    "weak_signal",
)


def judge(state, configured, heartbeat_s, pushed_ver, now_ms, lost=0):
    """(state word, [problem codes]) of one panel; pure.

    state: its panel_state row (a dict, {} when none); configured: in the site file now;
    pushed_ver: the config version last pushed to it (None: none)."""
    last_seen = state.get("last_seen_ms")
    problems = []
    if last_seen is None:
        word = "never_seen"
        if configured:
            problems.append("never_seen")
    elif state.get("online") is not None and not state["online"]:
        word = "offline"
        problems.append("offline")
    elif now_ms - last_seen > STALE_BEATS * heartbeat_s * 1000 + STALE_SLACK_MS:
        word = "stale"
        problems.append("stale")
    else:
        word = "online"
    if state.get("cfg_err"):
        problems.append("config_error")
    if pushed_ver is not None and last_seen is not None and (config_version(state) or 0) < pushed_ver:
        problems.append("config_pending")
    if state.get("reset") == "watchdog":
        problems.append("watchdog")
    if _faults(state):
        problems.append("faults")
    if lost:
        problems.append("lost")
    rssi = state.get("rssi")
    if rssi is not None and rssi < WEAK_RSSI:
        problems.append("weak_signal")
    return word, problems


def config_version(state):
    """The config version the panel says it runs (stored as text: older panels sent a hash)."""
    cfg = state.get("cfg")
    if isinstance(cfg, str):
        return int(cfg) if cfg.isdigit() else None
    return cfg


def _faults(state):
    raw = state.get("faults")
    if not raw:
        return []
    return json.loads(raw) if isinstance(raw, str) else list(raw)


def sort_key(panel):
    """Problems first (the worst first), then by office and panel."""
    ranks = [PROBLEM_ORDER.index(p) for p in panel["problems"] if p in PROBLEM_ORDER]
    return (0 if ranks else 1, min(ranks) if ranks else 0, panel["site"], panel["device"])


def heartbeat_of(settings, pushed_knobs):
    """The panel's heartbeat in seconds: the site file's, else the pushed config's, else the default."""
    for source in (settings or {}, pushed_knobs or {}):
        if source.get("heartbeat_s"):
            return source["heartbeat_s"]
    return DEFAULT_HEARTBEAT_S


def report(db, now_ms, grace_ms):
    """Every panel configured or ever heard of, judged, problems first; and the dead letters."""
    history = site_mod.load(db)
    states = {(r["site"], r["device"]): r for r in store.panel_states(db)}
    configured = set(history.panels(now_ms))
    pushed = configpush.pushed(db)
    panels = []
    through = derive.stored_through(db)  # gaps are looked for only above the seqs known complete
    clean = store.gap_free(db, through)
    for site, device in sorted(configured | set(store.devices(db))):
        st = states.get((site, device)) or {}
        panels.append(
            _panel(
                db,
                history,
                site,
                device,
                st,
                configured,
                pushed,
                now_ms,
                grace_ms,
                through.get((site, device), 0),
                clean,
            )
        )
    panels.sort(key=sort_key)
    return {
        "now_ms": now_ms,
        "panels": panels,
        "dead_letters": store.dead_letter_count(db, distinct=True),
        "dead_letter_messages": store.dead_letter_count(db),
    }


def _panel(db, history, site, device, st, configured, pushed, now_ms, grace_ms, stored_through=0, clean=()):
    if (site, device) in clean:
        gaps = []
    else:
        gaps = store.gaps(db, site, device, now_ms, grace_ms, state=st, stored_through=stored_through)
    lost, ranges = store.lost_summary(gaps)
    pushed_ver, pushed_knobs = pushed.get((site, device), (None, None))
    heartbeat_s = heartbeat_of(history.panel(site, device, now_ms), pushed_knobs)
    word, problems = judge(st, (site, device) in configured, heartbeat_s, pushed_ver, now_ms, lost)
    return {
        "site": site,
        "device": device,
        "configured": (site, device) in configured,
        "state": word,
        "problems": problems,
        "timezone": str(history.home_tz(site)),
        "online": None if st.get("online") is None else bool(st["online"]),
        "last_seen_ms": st.get("last_seen_ms"),
        "heartbeat_s": heartbeat_s,
        "backlog": st.get("pending"),
        "dropped": st.get("dropped"),
        "lost": lost,
        "lost_ranges": ranges,
        "missing_open": sum(g["count"] for g in gaps if g["status"] == "open"),
        "acked_seq": store.last_ack(db, site, device),
        "last_seq": st.get("last_seq"),
        "fw": st.get("fw"),
        "rssi": st.get("rssi"),
        "reset": st.get("reset"),
        "faults": _faults(st),
        "cfg": config_version(st),
        "cfg_pushed": pushed_ver,
        "cfg_err": st.get("cfg_err"),
    }
