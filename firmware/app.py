"""The panel application: buttons -> events -> journal -> link, plus LEDs, clock and config.

    panel = Panel(hal, cfg)          # cfg: config.load(...) result; hal: firmware.hal.Hal or
                                     # simulator.host_hal.HostHal
    while True:                      # device (firmware/main.py)
        panel.step()
        hal.sleep_ms(Panel.LOOP_MS)

A step function, driven by the caller's clock: a caller that steps only when needed (tests,
the simulator) asks firmware/deadlines.py how far it may skip; the device just steps every
LOOP_MS. step() is cheap when nothing happens: four pin reads, a few integer compares.

Order of an event: sample -> encode compactly -> journal.append (durable) -> link.kick()
(publish if online). Nothing is ever published that is not already in the journal.
"""

import json

from firmware import MPY, SMALL_INTS, buttons, clock, const, journal, ui, unload
from firmware.link import Link
from firmware.version import FW
from protocol import panel

ANSWERS = ("yes", "no", "unsure")
REMOTE_FILE = "remote.json"  # the applied remote config (firmware/remote.py writes it)
REMOTE_NEW = "remote.new"  # a config message not yet checked: the next boot checks it (MPY)
_QUIET_MS = const(3000)  # a restart waits for this long without a press, window or button down
_RESTART_WAIT_MS = const(600000)  # ... but not longer than this
# Loaded for a remote config (firmware.remote) or at boot only, unloaded once the Panel runs
LAZY = (
    "firmware.remote",
    "firmware.config",
    "protocol.config",
    "protocol.topics",
    "protocol.checks",
    "firmware.secret",
)


class Panel:
    LOOP_MS = 10  # device main-loop period (button sampling rate)
    # Step times are kept below this where small ints are 31-bit (firmware/rebase.py: else they
    # pass 2**30 ms after 12.4 days and every step allocates long ints); None: never rebased
    REBASE_AT = (1 << 28) if SMALL_INTS else None
    # watchdog timeout. Fed once a step; the longest healthy step is a connect to a broker that
    # answers at the last moment of every wait: name lookup 2 s + TCP 3 s + CONNACK 3 s + two
    # SUBACKs 3 s each + the birth publish 3 s = 17 s (the buttons are sampled meanwhile)
    WDT_MS = 30000
    JOURNAL_PREFIX = "j"  # journal files: <data>/j.*

    def __init__(self, hal, cfg, fs=None, ticks=None):
        self.hal = hal
        self.cfg = cfg
        self.faults_extra = []
        ticks = hal.ticks_ms() if ticks is None else ticks
        self.ticks = ticks
        self.uptime = clock.Uptime(ticks, period=clock.ticks_period(hal.ticks_add))
        self.up = self.uptime.update(ticks)
        self.base = 0  # uptime ms taken off by rebases: the real uptime is base + up
        self.restart_due = None  # up when a restart was asked for (a new remote config, MPY)
        self.restart = False  # set by step(): main.loop restarts the panel now
        self.event_at = -_QUIET_MS  # up of the last button event
        self._cfg_msg = None  # the last config payload handled (bytes)
        # a remote config the boot refused (firmware/boot.py keeps its error with the config)
        self.cfg_err = cfg.get("remote_err")
        self.reset = hal.reset_cause()
        try:
            with open(hal.path(REMOTE_FILE)) as f:
                text = f.read()
        except OSError:
            text = None  # no remote config received yet
        # the boot applied it already (remote_crc), or refused it (cfg_err): nothing to import
        if text is not None and not self.cfg_err and "remote_crc" not in cfg and not self._applied(text):
            hal.collect()  # from this shallow frame: the import below finds room
            from firmware import remote  # re-apply /remote.json (loaded for it, unloaded after)

            remote.load_saved(self, text)
        from firmware import secret  # passwords rotated over the air, off the flash (unloaded below)

        secret.load(self.cfg, hal)
        unload(*LAZY)  # before the journal and link allocate: a lower peak at boot
        t = self.cfg["timings"]
        self.buttons = buttons.Buttons(debounce_ms=t["debounce_ms"], long_ms=t["long_ms"], stuck_ms=t["stuck_ms"])
        self._faults_rev = self.buttons.faults_rev
        self.journal = journal.Journal(
            fs or journal.OsFs(), prefix=hal.path(self.JOURNAL_PREFIX), capacity=self.cfg["journal"]["capacity"]
        )
        if self.journal.capacity < self.journal.capacity_wanted:  # clamped to the file system
            self.faults_extra.append("journal_small")
        self.boot = self.journal.next_boot()
        self.wall = clock.WallClock()
        self.ntp = clock.NtpSchedule(resync_ms=self.cfg["ntp"]["resync_h"] * 3600000)
        self.ui = ui.Ui(self.cfg["led_brightness"])
        self._leds = None
        self._ui_next = 0
        self.window_until = None
        self.link = Link(
            hal, self.cfg, self, on_ack=self.journal.ack, on_config=self._on_config, state_fn=self.state, boot=self.boot
        )
        self.presses = 0
        self._kick = False
        hal.idle = self._sample  # the device HAL samples the buttons while a socket waits
        hal.log(
            "panel: %s/%s fw %s boot %d seq %d pending %d"
            % (self.cfg["site"], self.cfg["device"], FW, self.boot, self.journal.seq, self.journal.pending())
        )

    # ---- outbox for the link (journal -> wire bytes) ----
    def acked(self):
        return self.journal.acked

    def head(self):
        return self.journal.seq

    def next_after(self, seq):
        rec = self.journal.next_after(seq)
        if rec is None:
            return None
        s, payload = rec
        boot, up, t, ev, hold = journal.unpack_event(payload)
        return s, panel.encode_event(s, boot, up, t, ev, hold)

    # ---- the step ----
    def step(self, ticks=None):
        hal = self.hal
        if ticks is None:
            ticks = hal.ticks_ms()
        self.ticks = ticks
        up = self.up = self.uptime.update(ticks)
        if self.REBASE_AT is not None and up >= self.REBASE_AT:
            from firmware import rebase  # every ~3 days on a 32-bit port: loaded for it

            rebase.shift(self)
            unload("firmware.rebase")
            up = self.up
        self._sample(up)
        if self._kick:  # presses journaled since the last step (maybe during a socket wait)
            self._kick = False
            self.link.kick()
        if self.window_until is not None and up >= self.window_until:
            self._close_window()
        if self.link.online and self.ntp.due(up):
            from firmware import ntp  # sync code and packets: loaded for the sync, unloaded after

            try:
                ntp.sync(self, up)
            finally:
                unload("firmware.ntp")
        self.link.step(up)
        u = self.ui
        if u.offline == self.link.online:
            u.offline = not self.link.online
            self._ui_next = up
        self._show(up)
        if self.restart_due is not None:  # at a quiet moment: nobody is at the panel
            self.restart = (
                self.window_until is None and not self.buttons.down() and up - self.event_at >= _QUIET_MS
            ) or up - self.restart_due >= _RESTART_WAIT_MS
        hal.wdt_feed()  # healthy path only: an exception above skips it

    def _show(self, up):
        """LEDs: write only the ones that change, then nothing until the picture changes."""
        if up >= self._ui_next:
            u = self.ui
            frame = u.frame(up)
            if frame != self._leds:
                old = self._leds or (-1, -1, -1, -1)
                for i in range(4):
                    if frame[i] != old[i]:
                        self.hal.led(ui.NAMES[i], frame[i])
                self._leds = frame
            nxt = u.next_change(up)
            self._ui_next = nxt if nxt is not None else up + 3600000

    def _sample(self, up=None):
        """Read the buttons and journal what they report. Also hal.idle: run (without `up`) by
        the device HAL every few ms while a socket waits (a connect to a silent broker, a name
        lookup, NTP); then the LEDs follow the presses at once too (the thank-you blink, the
        "please rate" light), not after the wait. Never touches the link, which may be
        mid-packet: it publishes on the next step."""
        hal = self.hal
        idle = up is None
        if idle:
            up = self.uptime.update(hal.ticks_ms())
        # method calls, not a saved `hal.pressed`: on MicroPython that bound method would be
        # a heap object every step (100 a second of garbage)
        mask = (
            hal.pressed("yes") | (hal.pressed("no") << 1) | (hal.pressed("unsure") << 2) | (hal.pressed("seller") << 3)
        )
        events = self.buttons.sample(mask, up)
        if events:
            for ev, hold in events:
                self._event(up, ev, hold)
        if self.buttons.faults_rev != self._faults_rev:
            self._faults_rev = self.buttons.faults_rev
            self.link.publish_state_soon()
        if idle:
            self._show(up)

    # ---- events ----
    def _event(self, up, ev, hold):
        self.presses += 1
        self.event_at = up
        t = self.wall.now(up)
        try:
            self.journal.append(journal.pack_event(self.boot, self.base + up, t, ev, hold))
        except Exception as e:  # flash failure: the press is lost, say so in state
            self._fault("journal")
            self.hal.log("panel: journal append failed: %s" % e)
        self._kick = True
        u = self.ui
        if ev in ANSWERS:
            u.thanks_at = up  # the thank-you blink starts
            self._close_window()
        elif ev == "seller_short":
            self.window_until = up + self.cfg["timings"]["window_s"] * 1000
            u.window_open = True
        elif ev == "seller_long":
            u.fm_at = up  # force-majeure blink on the seller LED
            self._close_window()
        self._ui_next = up

    def _close_window(self):
        self.window_until = None
        if self.ui.window_open:
            self.ui.window_open = False
            self._ui_next = self.up

    def _fault(self, name):
        if name not in self.faults_extra:
            self.faults_extra.append(name)
            self.link.publish_state_soon()

    # ---- config from the gateway ----
    def _applied(self, text):
        """Is this config payload (or /remote.json) the remote config already in force? Then
        there is nothing to import: the config code's names would stay interned for good."""
        try:
            return json.loads(text) == self.cfg.get("remote")
        except Exception:  # also MemoryError/RecursionError (deep or huge JSON): decode refuses it
            return False

    def _on_config(self, msg):
        i = msg.find(b',"pwv":')
        if i > 0:  # a new MQTT password rides on the config (firmware/secret.py): the rest as always
            from firmware import secret

            secret.take(self, msg[i:])
            unload("firmware.secret")
            msg = msg[:i] + b"}"
        if msg == self._cfg_msg or self._applied(msg):
            self._cfg_msg = msg
            return  # the retained config again (after a reconnect or a boot): no import
        if MPY:
            # Checking it here would load the config code, whose names stay interned for good
            # (~8 KB over the 40 KB budget, firmware/README.md "Heap"): keep the payload as it
            # came and restart at the next quiet moment; the boot checks it (firmware/boot.py)
            # and restarts once more without the checking code.
            crc = journal.crc32(msg)
            self._cfg_msg = msg
            if crc == self.cfg.get("remote_crc") or crc == self.cfg.get("remote_bad"):
                return  # in force, or refused by a boot already (its error is in cfg_err)
            try:  # torn by a power cut, the boot refuses it, and the retained message comes again
                self.journal.fs.write(self.hal.path(REMOTE_NEW), msg)
            except Exception as e:
                self._fault("cfg_write")
                self.hal.log("panel: config not kept: %s" % e)
                return
            if self.restart_due is None:
                self.restart_due = self.up
            self.hal.log("panel: new config; restart")
            return
        self.hal.collect()  # room for the import below
        try:
            from firmware import remote  # decode/merge/persist: loaded for this, unloaded after

            remote.on_config(self, msg)
            self._cfg_msg = msg  # handled (applied, or refused with cfg_err)
        finally:
            unload(*LAZY)

    # ---- state for the gateway ----
    def state(self):
        remote = self.cfg.get("remote") or {}
        j = self.journal
        faults = list(self.buttons.faults())
        for x in self.faults_extra:
            faults.append(x)
        return {
            "online": True,
            "boot": self.boot,
            "up": self.base + self.up,
            "t": self.wall.now(self.up),
            "fw": FW,
            "seq": j.seq,
            "pending": j.pending(),
            "dropped": j.dropped,
            "heap": self.hal.mem_free(),
            "rssi": self.hal.wifi_rssi(),
            "faults": faults[:16],
            "cfg": remote.get("ver"),
            "cfg_err": self.cfg_err[:200] if self.cfg_err else None,
            "reset": self.reset,
            "oversize": self.link.oversize,
            "ack_refused": j.refused or None,
        }
