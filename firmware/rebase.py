"""Keep a Panel's step times on small ints: take a few days off every stored uptime.

On a 32-bit port (the ESP32) MicroPython's small ints end at 2**30 - 1; an uptime in ms passes
that after 12.4 days, and from then on every step's time arithmetic (the uptime itself, the
deadline compares and sums of the buttons, LEDs and link) would allocate long ints: garbage
at 100 steps a second, forever. So when the step time reaches Panel.REBASE_AT (2**28 ms, 3.1
days) the Panel calls shift(): every time it and its parts keep drops by the same amount,
which goes into panel.base (events and state still carry the real uptime, base + up).
Loaded for the shift and unloaded after (firmware/app.py): no heap between shifts.

The last KEEP_MS stay positive: the oldest time that still matters is a held button's press
(stuck_ms is at most 10 minutes), and Buttons.next_deadline treats negative times as "none".
"""

KEEP_MS = 1 << 21  # ~35 minutes

# (object path from the Panel, attribute names holding uptime ms or None)
_PANEL = ("up", "window_until", "_ui_next", "restart_due", "event_at")
_LINK = (
    "retry_at",
    "join_deadline",
    "kick_at",
    "up_since",
    "ack_wait_since",
    "next_poll",
    "next_heartbeat",
    "last_tx",
    "now",
    "log_next",
)


def _shift(obj, names, s):
    for name in names:
        v = getattr(obj, name)
        if v is not None:
            setattr(obj, name, v - s)


def shift(panel):
    s = panel.up - KEEP_MS
    if s <= 0:
        return
    panel.base += s
    panel.uptime.up_ms -= s
    _shift(panel, _PANEL, s)
    _shift(panel.link, _LINK, s)
    _shift(panel.ui, ("thanks_at", "fm_at"), s)
    _shift(panel.ntp, ("next_ms", "last_ok_ms"), s)
    w = panel.wall
    if w.synced_at is not None:
        w.synced_at -= s
        w._offset += s  # wall = up + offset: the same wall time for the smaller up
    b = panel.buttons
    b._press_ms -= s
    for d in b._deb:
        d.edge_ms -= s
        d._raw_ms -= s
