"""One virtual panel: the real firmware (firmware.app.Panel) on the host HAL, plus what the
runner needs to know about it.

    vp = VirtualPanel(site, device, cfg, data_dir, origin_ms, presses, seed)
    vp.boot(at_ms, ntp_ok_at)      # power on (a fresh Panel over the surviving flash)
    vp.step(at_ms)                 # one firmware step at simulated time at_ms
    vp.deadline() -> (ms, why)     # when the firmware has work without any input
    vp.power_off()                 # power gone: no DISCONNECT, the broker sends the will
    vp.set_pin(button, level)      # a contact edge

Flash is a firmware.journal.MemFs that survives power cuts (it is the panel's flash chip);
`arm_power_cut(budget)` makes the next flash writes die after `budget` bytes, which tears the
record being written - the power-cut fault. Times are absolute simulated Unix ms; the HAL's
monotonic clock is `at_ms - origin_ms`.

Seqs: the firmware gives every event the next journal seq. The runner knows the order the
presses' events come in (simulator.pure.event_time), so each new journal record is matched to
the next expected press, its event name checked (`mismatches`), and the press's `seq` set.
"""

from firmware import journal
from firmware.app import Panel
from firmware.link import JOINING, OFF, UP
from simulator.host_hal import HostHal


class VirtualPanel:
    def __init__(self, site, device, cfg, data_dir, origin_ms, presses, seed=1, firmware=None):
        self.site, self.device = site, device
        self.key = (site, device)
        self.cfg = cfg
        self.origin = origin_ms
        self.hal = HostHal(data_dir=data_dir, now_ms=0, seed=seed)
        self.hal.keep_led_log = False
        self.fs = journal.MemFs()
        self.panel = None
        self.boot_at = 0  # abs ms of the current power-on (set by boot())
        self.ntp_ok_at = None
        self.expected = list(presses)  # presses in event order, consumed as events appear
        self.assigned = []  # (seq, press) in seq order
        self.mismatches = []  # readable problems (event name or count)
        self.torn = []  # presses whose journal write a power cut tore
        self.boots = 0
        self.ack_timeouts = self.resends = 0  # the links of earlier boots (see link_counts)
        self.power_cut_pending = False
        self.hal.ntp_unix_ms = self._ntp

    # ---- clocks ----
    def _ntp(self):
        now = self.origin + self.hal.now_ms
        if self.ntp_ok_at is not None and now < self.ntp_ok_at:
            return None
        return now

    def _set_time(self, at_ms):
        rel = at_ms - self.origin
        if rel > self.hal.now_ms:
            self.hal.now_ms = rel

    @property
    def now(self):
        return self.origin + self.hal.now_ms

    # ---- power ----
    def boot(self, at_ms, ntp_ok_at=None):
        self._set_time(at_ms)
        self.ntp_ok_at = ntp_ok_at
        self.fs.budget = None
        self.power_cut_pending = False
        self.panel = Panel(self.hal, self.cfg, fs=self.fs, ticks=self.hal.ticks_ms())
        self.boot_at = self.now - self.panel.up
        self.boots += 1

    def power_off(self):
        """Power (or the watchdog) takes the panel down: TCP dies without DISCONNECT."""
        p, self.panel = self.panel, None
        if p is None:
            return
        self.ack_timeouts += p.link.ack_timeouts
        self.resends += p.link.resends
        c = p.link.client
        if c is not None:
            try:
                c.sever()
            except Exception:
                pass
            try:
                c.close()
            except Exception:
                pass

    def arm_power_cut(self, budget):
        self.fs.budget = budget
        self.power_cut_pending = True

    @property
    def power_died(self):
        return self.power_cut_pending and self.fs.budget == 0

    # ---- inputs ----
    def set_pin(self, button, level):
        self.hal.set_pressed(button, level)

    def step(self, at_ms):
        p = self.panel
        if p is None:
            return
        self._set_time(at_ms)
        s0, n0 = p.journal.seq, p.presses
        p.step(self.hal.ticks_ms())
        if p.presses != n0:
            self._assign(p, s0, p.journal.seq, p.presses - n0)

    def _assign(self, p, s0, s1, n_events):
        new = s1 - s0
        for i in range(n_events):
            if not self.expected:
                self.mismatches.append(
                    "%s/%s: an event nobody pressed for (seq %d)" % (self.site, self.device, s0 + i + 1)
                )
                continue
            press = self.expected.pop(0)
            if i >= new:
                self.torn.append(press)  # the append failed: power cut mid-write
                continue
            seq = s0 + i + 1
            rec = p.journal.next_after(seq - 1)
            ev = journal.unpack_event(rec[1])[3] if rec and rec[0] == seq else None
            if ev is not None and ev != press.ev:
                self.mismatches.append(
                    "%s/%s seq %d: the firmware reported %s, the finger pressed %s "
                    "(%s at %d)" % (self.site, self.device, seq, ev, press.ev, press.button, press.t)
                )
            press.seq = seq
            self.assigned.append((seq, press))

    def link_counts(self):
        """(ack timeouts, events resent) of this panel's links over all its boots."""
        p = self.panel
        if p is None:
            return self.ack_timeouts, self.resends
        return self.ack_timeouts + p.link.ack_timeouts, self.resends + p.link.resends

    # ---- scheduling ----
    def deadline(self, ack=True):
        """(abs ms, why) of the next step the firmware needs without input; (None, None) when
        powered off. Unlike Panel.idle_ms() this skips the link's 50 ms receive poll (the
        runner steps a panel when its socket is readable instead) and the LED animations.
        ack=False leaves the ack timeout out (the next step the panel needs besides it)."""
        p = self.panel
        if p is None:
            return None, None
        up = p.up
        # the earliest of (time, reason) candidates; plain comparisons, not a helper function:
        # this runs after every one of the ~10^6 steps of a chain week
        best, why = p.buttons.next_deadline(up), "buttons"
        t = p.window_until
        if t is not None and (best is None or t < best):
            best, why = t, "window"
        link = p.link
        st = link.state
        if st == UP:
            t = p.ntp.next_ms
            if t is not None and (best is None or t < best):
                best, why = t, "ntp"
            if link.state_due or link._can_send():
                t, reason = up, "send"
            elif not link.ack_seen and link.sent < p.head() and up - link.up_since < link.ACK_GRACE_MS:
                t, reason = link.up_since + link.ACK_GRACE_MS, "grace"  # the retained ack may come
            else:
                t = None
            if t is not None and (best is None or t < best):
                best, why = t, reason
            t = link.next_heartbeat
            if t is not None and (best is None or t < best):
                best, why = t, "heartbeat"
            if ack and link.ack_wait_since is not None:
                t = link.ack_wait_since + link.ack_timeout_ms
                if best is None or t < best:
                    best, why = t, "ack"
        else:
            if st == JOINING:
                t, reason = (up if self.hal.wifi_isconnected() else link.join_deadline), "join"
            elif st == OFF:
                t, reason = link.retry_at, "retry"
            else:
                t = None
            if t is not None and (best is None or t < best):
                best, why = t, reason
        if best is None:
            return None, None
        return self.boot_at + max(best, up), why

    def socket(self):
        """The MQTT socket while connected (for select), else None."""
        p = self.panel
        if p is None or p.link.state != UP or p.link.client is None:
            return None
        c = getattr(p.link.client, "c", None)
        return c.socket() if c is not None else None

    def poll_at(self):
        """Earliest abs ms at which a step reads incoming MQTT data."""
        p = self.panel
        if p is None:
            return self.now
        return self.boot_at + max(p.link.next_poll, p.up)

    def keepalive(self):
        """Let paho answer/send keepalive pings in real time (the broker counts real seconds)."""
        p = self.panel
        if p is None or p.link.state != UP or p.link.client is None:
            return
        c = getattr(p.link.client, "c", None)
        if c is not None:
            try:
                c.loop_misc()
            except Exception:
                pass

    # ---- state ----
    def pending(self):
        return self.panel.journal.pending() if self.panel is not None else None

    def online(self):
        return self.panel is not None and self.panel.link.state == UP
