"""When did an event happen? Pure: no clock, no I/O.

Event order is `seq`; its wall time comes from, in order of preference:
  "device"   - the panel's own clock `t` (the panel had NTP time when the button was pressed);
  "repaired" - the same boot's uptime `up` plus that boot's clock offset (t - up), learnt from any
               later message of the panel in the same boot that carried both t and up (an event or
               a heartbeat state after NTP synced);
  "arrival"  - the time the gateway received the message, when no message of that boot ever
               carried a clock (the panel lost NTP for the whole boot).
`up` is the panel's uptime in ms since that boot (monotonic within a boot), so within one boot
t - up is constant up to clock drift and NTP steps.
"""

DEVICE = "device"
REPAIRED = "repaired"
ARRIVAL = "arrival"


def resolve(t_ms, boot, up_ms, received_ms, offsets_by_boot):
    """-> (ms, source). `offsets_by_boot`: {boot: t - up} for the panel (store.boot_offsets)."""
    if t_ms is not None:
        return t_ms, DEVICE
    offset = offsets_by_boot.get(boot) if offsets_by_boot else None
    if offset is not None and up_ms is not None:
        return up_ms + offset, REPAIRED
    return received_ms, ARRIVAL


def offset(t_ms, up_ms):
    """The boot clock offset a message with both t and up gives, or None."""
    if t_ms is None or up_ms is None:
        return None
    return t_ms - up_ms
