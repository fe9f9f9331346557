"""How a panel is doing, judged from what the gateway knows of it: pure, the one source of
`rating status` (gateway/status.py) and the web console's fleet page (gateway/fleet.py).

A panel is one of
- `online`: it said it is online and was heard from within STALE_BEATS heartbeats;
- `stale`: it said it is online but nothing came for longer (a hung panel, a dead link whose
  last will the broker has not sent yet, a broker that lost the will);
- `offline`: its last will (or its own state) says it is offline;
- `never_seen`: configured in the site file (or known only by dead letters), nothing valid
  ever arrived from it.
Its heartbeat is `heartbeat_s` from the site file's panel entry (pushed in its config), else
from the config last pushed to it, else the firmware's default (DEFAULT_HEARTBEAT_S).

Problems (codes, for JSON and for sorting): never_seen, offline, stale, config_error,
config_pending (the panel runs an older config version than the one last pushed), watchdog (its
last reset was the watchdog's), faults, lost (events lost), weak_signal (RSSI below WEAK_RSSI).
Panels with problems come first, the worst first.

`row(...)` builds one panel's row from its panel_state row and the settings; the shells add
what needs the database (`with_losses`: lost and missing events, the acked seq).
"""

import json

DEFAULT_HEARTBEAT_S = 60  # firmware/config.py timings.heartbeat_s (a test keeps them equal)
STALE_BEATS = 3  # heartbeats missed before an "online" panel counts as stale
STALE_SLACK_MS = 30000  # a heartbeat delayed by a reconnect is not a stale panel
WEAK_RSSI = -80  # dBm: below it MQTT over Wi-Fi drops often (ESP32 station)
STATES = ("online", "stale", "offline", "never_seen")
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


def heartbeat_of(settings, pushed_knobs):
    """The panel's heartbeat in seconds: the site file's, else the pushed config's, else the default."""
    for source in (settings or {}, pushed_knobs or {}):
        if source.get("heartbeat_s"):
            return source["heartbeat_s"]
    return DEFAULT_HEARTBEAT_S


def config_version(state):
    """The config version the panel says it runs (stored as text: older panels sent a hash)."""
    cfg = state.get("cfg")
    if isinstance(cfg, str):
        return int(cfg) if cfg.isdigit() else None
    return cfg


def faults(state):
    """The fault codes of the panel's last state (stored as JSON text)."""
    raw = state.get("faults")
    if not raw:
        return []
    return json.loads(raw) if isinstance(raw, str) else list(raw)


def reset_cause(state):
    """Why the panel last restarted ('watchdog', 'power_on', ...), None when it did not say:
    newer firmware reports it in its state message, kept whole as the row's payload."""
    if state.get("reset"):
        return state["reset"]
    try:
        data = json.loads(state["payload"]) if state.get("payload") else {}
    except ValueError:
        return None
    return data.get("reset") if isinstance(data, dict) else None


def judge(state, configured, heartbeat_s, pushed_ver, now_ms, lost=0):
    """(state word, [problem codes]) of one panel.

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
    if reset_cause(state) == "watchdog":
        problems.append("watchdog")
    if faults(state):
        problems.append("faults")
    if lost:
        problems.append("lost")
    rssi = state.get("rssi")
    if rssi is not None and rssi < WEAK_RSSI:
        problems.append("weak_signal")
    return word, problems


def row(site, device, state, configured, heartbeat_s, pushed_ver, now_ms):
    """One panel's row (JSON-able) without its losses (see with_losses)."""
    word, problems = judge(state, configured, heartbeat_s, pushed_ver, now_ms)
    running = config_version(state)
    return {
        "site": site,
        "device": device,
        "configured": configured,
        "state": word,
        "problems": problems,
        "online": None if state.get("online") is None else bool(state["online"]),
        "last_seen_ms": state.get("last_seen_ms"),
        "heartbeat_s": heartbeat_s,
        "backlog": state.get("pending"),
        "dropped": state.get("dropped"),
        "fw": state.get("fw"),
        "rssi": state.get("rssi"),
        "reset": reset_cause(state),
        "faults": faults(state),
        "cfg": running,
        "cfg_pushed": pushed_ver,
        # the panel runs the pushed version or a newer one (None: nothing pushed yet)
        "cfg_applied": None if pushed_ver is None else (running is not None and running >= pushed_ver),
        "cfg_err": state.get("cfg_err"),
        "acked_seq": None,
        "lost": None,
        "lost_ranges": "",
        "missing_open": None,
    }


def with_losses(panel, lost, lost_ranges, missing_open, acked_seq):
    """The row with its lost events (the `lost` problem in its place) and the acked seq."""
    panel.update(lost=lost, lost_ranges=lost_ranges, missing_open=missing_open, acked_seq=acked_seq)
    if lost and "lost" not in panel["problems"]:
        panel["problems"] = sorted(panel["problems"] + ["lost"], key=PROBLEM_ORDER.index)
    return panel


def sort_key(panel):
    """Problems first (the worst first), then by office and panel."""
    ranks = [PROBLEM_ORDER.index(p) for p in panel["problems"] if p in PROBLEM_ORDER]
    return (0 if ranks else 1, min(ranks) if ranks else 0, panel["site"], panel["device"])


def summary(panels):
    """{state: panels} plus panels with faults, with a config not applied, not in the site file."""
    out = {s: 0 for s in STATES}
    out.update(faults=0, config_pending=0, unconfigured=0)
    for p in panels:
        out[p["state"]] += 1
        out["faults"] += bool(p["faults"] or p["cfg_err"])
        out["config_pending"] += p["cfg_applied"] is False
        out["unconfigured"] += not p["configured"]
    return out
