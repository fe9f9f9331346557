"""The pure pipeline: World presses -> events -> gateway.windows -> polls -> kpi_core (no I/O).

No firmware, broker or database: every press becomes the event the firmware would emit at the
moment it would emit it, with consecutive seqs. Used by `rating demo` as its fast path and by
the tests as a model check (the method's window rules applied to the presses must give the
polls a person counts: simulator.truth).
"""

from gateway.windows import Anomaly, ForceMajeure, PanelWindows, Poll, Unsolicited, WindowSettings
from simulator import world as W

POWER_CUT = "power cut during its journal write"  # why a torn press is lost (Press.lost)


def event_time(press, firmware):
    """When the firmware reports a press: answers on press-down (after debounce), a short
    seller press on release, a long one when the hold crosses long_ms."""
    if press.ev == "seller_short":
        return press.t + press.hold
    if press.ev == "seller_long":
        return press.t + firmware["long_ms"]
    return press.t + firmware["debounce_ms"]


def assign_seqs(world):
    """Give every press the seq a fresh panel would: 1, 2, ... in event-time order."""
    for presses in world.presses.values():
        order = sorted(presses, key=lambda p: event_time(p, world.scenario.firmware))
        for i, p in enumerate(order, 1):
            p.seq = i


def model_world(sc):
    """The World of scenario `sc` as the model pipeline sees it: seqs assigned, and every
    power-cut victim lost (the model has no flash; the cut tears that press's journal write)."""
    w = W.generate(sc)
    assign_seqs(w)
    for presses in w.presses.values():
        for p in presses:
            if p.role == "victim":
                p.lost = POWER_CUT
    return w


def settings(sc):
    m = sc.method
    return WindowSettings(
        window_ms=int(m["window_s"] * 1000), rearm_ms=int(m["rearm_s"] * 1000), fm_ms=int(m["fm_minutes"] * 60000)
    )


def derive(world):
    """-> {"polls": [...], "fms": [...], "unsolicited": {key: n}, "anomalies": [...]}: what the
    window builder makes of the presses that were not lost."""
    fw = world.scenario.firmware
    out = {"polls": [], "fms": [], "unsolicited": {}, "anomalies": []}
    for key, presses in world.presses.items():
        w = PanelWindows(settings(world.scenario))
        evs = sorted(((event_time(p, fw), p) for p in presses if not p.lost), key=lambda x: x[1].seq)
        items = []
        for at, p in evs:
            items += w.feed(p.seq, at, p.ev, p.hold if p.ev.startswith("seller") else None)
        items += w.close_all()
        out["unsolicited"][key] = 0
        for it in items:
            if isinstance(it, Poll):
                out["polls"].append(
                    {
                        "site": key[0],
                        "device": key[1],
                        "open_seq": it.open_seq,
                        "opened_at": it.opened_at,
                        "answer": it.answer,
                        "extra_presses": it.extra_presses,
                    }
                )
            elif isinstance(it, ForceMajeure):
                out["fms"].append(
                    {
                        "site": key[0],
                        "device": key[1],
                        "seq": it.seq,
                        "start": it.start,
                        "end": it.end,
                        "presses": it.presses,
                    }
                )
            elif isinstance(it, Unsolicited):
                out["unsolicited"][key] += 1
            elif isinstance(it, Anomaly):
                out["anomalies"].append(
                    {"site": key[0], "device": key[1], "seq": it.seq, "kind": it.kind, "detail": it.detail}
                )
    return out


def raw_events(world, boot_at=None):
    """Every press that was not lost as the raw event row the gateway stores
    (gateway.store.EVENT_COLUMNS): seqs as assigned, one boot per panel that started at
    `boot_at` (default: an hour before the scenario), a synced clock, received 50 ms later.
    For checks of the gateway's derivation on a World without a broker (tests, bench/doubt.py)."""
    from protocol import messages

    fw = world.scenario.firmware
    boot_at = world.scenario.start_ms - 3600000 if boot_at is None else boot_at
    out = []
    for (site, device), presses in world.presses.items():
        for p in sorted((p for p in presses if not p.lost), key=lambda p: p.seq):
            at = int(event_time(p, fw))
            hold = p.hold if p.ev.startswith("seller") else None
            if p.ev == "seller_long":
                hold = fw["long_ms"]  # reported when the hold crosses long_ms
            out.append(
                {
                    "site": site,
                    "device": device,
                    "seq": p.seq,
                    "boot": 1,
                    "up_ms": at - boot_at,
                    "t_ms": at,
                    "ev": p.ev,
                    "hold_ms": hold,
                    "received_ms": at + 50,
                    "payload": messages.encode_event(p.seq, 1, at - boot_at, at, p.ev, hold).decode(),
                }
            )
    return out
