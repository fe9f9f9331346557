"""When a Panel next has work to do, for callers that step it only when needed (tests, a
simulator): never loaded on the panel, whose main loop steps every Panel.LOOP_MS anyway (the
code would take its heap for nothing, firmware/README.md "Heap").

    deadlines.idle_ms(panel)             how long the caller may wait before the next step()
    deadlines.next_deadline(panel)       the same as ticks (step()'s argument)
    deadlines.link_deadline(link, now)   uptime ms at which Link.step() has something to do
"""

from firmware.link import JOINING, OFF


def link_deadline(link, now):
    """Uptime ms at which link.step() has something to do (may be <= now)."""
    st = link.state
    if st == OFF:
        return link.retry_at
    if st == JOINING:  # the caller steps when Wi-Fi is back (link.step polls isconnected)
        return link.join_deadline
    t = link.next_poll
    if link.state_due or link._can_send():
        return now
    if link.next_heartbeat < t:
        t = link.next_heartbeat
    if link.ack_wait_since is not None:
        a = link.ack_wait_since + link.ack_timeout_ms
        if a < t:
            t = a
    return t


def idle_ms(panel):
    """How long the caller may wait before the next panel.step() (0: step now)."""
    up = panel.up
    d = link_deadline(panel.link, up)
    for t in (panel.buttons.next_deadline(up), panel._ui_next, panel.window_until, panel.restart_due):
        if t is not None and t < d:
            d = t
    if panel.link.online and panel.ntp.next_ms < d:
        d = panel.ntp.next_ms
    return d - up if d > up else 0


def next_deadline(panel):
    """Ticks (the domain of step()'s argument) at which panel.step() has work to do."""
    return panel.hal.ticks_add(panel.ticks, idle_ms(panel))
