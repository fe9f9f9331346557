"""`rating device deploy`: put the firmware bundle and this panel's /config.json on a board
that runs MicroPython, restart it and wait until it is online.

Idempotent: the panel is asked for the sha256 of every bundle file it has, and only files
that differ are copied; /config.json is rewritten only when its content changes; nothing
else on the flash is touched (the journal /j* files, the seq/boot counters, remote.json).
Every change goes through mpremote; --dry-run prints those command lines instead.
"""

import json
import os
import time

from technician import bundle_info, panelconfig, steps, watchdog
from technician.birth import BrokerWatch, ConsoleReading
from technician.console import Console, check_board
from technician.errors import DeviceError, StepFailed
from technician.i18n import _, ngettext

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_BUNDLE = os.path.join(REPO, "build", "firmware")
# Runs on the panel: hashes of the files a deploy writes, the current config, the last manifest.
PROBE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "onpanel", "probe.py")

RENAME = (
    "import os\n"
    "try:\n    os.rename('config.json.new', 'config.json')\n"
    "except OSError:\n    os.remove('config.json')\n    os.rename('config.json.new', 'config.json')\n"
)
# A new MQTT password in /config.json replaces one rotated over the air (firmware/secret.py),
# which would otherwise be used instead of it: those files go, after the rename
FORGET_ROTATED = (
    "for p in ('pw.json', 'pw.new', 'pw.new.tmp'):\n    try:\n        os.remove(p)\n    except OSError:\n        pass\n"
)


def write_config(port, text, out=print, new_password=False):
    """/config.json onto the panel, from this process over the serial line: it holds the Wi-Fi
    and MQTT passwords, which must never be in a temporary file or on a command line (mpremote's
    `fs cp` needs a local file, `exec` puts the text in its argv). Written to config.json.new,
    then renamed over the old file in one step."""
    from mpremote.transport import TransportError
    from mpremote.transport_serial import SerialTransport

    try:
        t = SerialTransport(port, baudrate=115200)
    except TransportError as exc:
        raise StepFailed(
            _("cannot open %(port)s to write /config.json: %(error)s") % {"port": port, "error": exc}
        ) from None
    try:
        t.enter_raw_repl(soft_reset=False)
        t.exec(watchdog.arm_code())
        t.fs_writefile("config.json.new", text.encode())
        t.exec(RENAME + (FORGET_ROTATED if new_password else ""))
        t.exit_raw_repl()
    except (TransportError, OSError) as exc:
        # the device's error text only: the exception may carry the data that was being written
        detail = getattr(exc, "error_output", "") or exc.__class__.__name__
        raise StepFailed(
            _("writing /config.json failed (%s). Press the panel's RESET button, wait 3 s and run deploy again.")
            % detail.strip().splitlines()[-1]
        ) from None
    finally:
        t.close()
    size = len(text.encode())
    out("    " + ngettext("/config.json written (%d byte)", "/config.json written (%d bytes)", size) % size)


class Deploy:
    """One deploy run; `out` receives every line shown to the technician."""

    WAIT_S = 60

    def __init__(self, port, bundle_dir=None, overrides=None, wait_s=None, watch_broker=None, out=print):
        self.port = port
        self.bundle_dir = os.path.abspath(bundle_dir or DEFAULT_BUNDLE)
        self.overrides = overrides or {}
        self.wait_s = self.WAIT_S if wait_s is None else wait_s
        self.watch_broker = watch_broker  # (host, port, ssl) or None: from the config
        self.out = out
        self.manifest = bundle_info.load(self.bundle_dir)

    # ---- plan ----------------------------------------------------------------------------
    def probe_step(self):
        return steps.Step(
            _("Stop the app, re-arm the watchdog and read what is on the panel (file hashes, config)"),
            steps.mpremote(self.port, "run", PROBE, resume=False),
        )

    def copy_step(self, files, stale, have_dirs, write_manifest):
        cmds = []
        for d in bundle_info.parents(files):
            if d not in have_dirs:
                cmds.append(["fs", "mkdir", ":" + d])
        for rel in files:
            cmds.append(["fs", "cp", os.path.join(self.bundle_dir, rel), ":" + rel])
        if stale:  # absent ones are fine: a previous run may have removed them already
            code = "import os\nfor p in %r:\n    try:\n        os.remove(p)\n    except OSError:\n        pass\n"
            code %= (["/" + r for r in stale],)
            folders = bundle_info.emptied(stale, self.manifest)
            if folders:  # a folder the bundle no longer uses (lib/umqtt); rmdir leaves one that is not empty
                code += "for p in %r:\n    try:\n        os.rmdir(p)\n    except OSError:\n        pass\n" % (
                    ["/" + d for d in folders],
                )
            cmds.append(["exec", code])
        if write_manifest:
            cmds.append(["fs", "cp", os.path.join(self.bundle_dir, "manifest.json"), ":" + bundle_info.DEVICE_MANIFEST])
        if not cmds:
            return None
        what = ngettext("Copy %d changed file", "Copy %d changed files", len(files)) % len(files)
        if stale:
            what += ", " + ngettext("remove %d old module", "remove %d old modules", len(stale)) % len(stale)
        return steps.Step(what, steps.mpremote(self.port, *steps.chain(*cmds)))

    def config_step(self, text, new_password=False):
        return steps.Step(
            _("Write /config.json (validated; replaces the old file in one rename)"),
            action=lambda out: write_config(self.port, text, out, new_password),
            describe=_(
                "re-arm the watchdog, write :config.json.new, rename it to :config.json; it holds the "
                "passwords, so it goes through no file and no command line"
            ),
        )

    def reset_step(self):
        return steps.Step(
            _("Restart the panel so it starts the new firmware"), steps.mpremote(self.port, "reset", arm=False)
        )

    def dry_run_plan(self):
        """The steps for a blank panel (a real run skips what is already there), after the
        same checks a real run makes before it changes anything (the settings given, each
        against the firmware's own rules; the bundle was read in __init__)."""
        probe = {"files": {}, "dirs": [], "online": False}
        given = panelconfig.merge({}, self.overrides)
        text = panelconfig.check_given(given)
        plan = [self.probe_step()]
        copy = self.copy_step(bundle_info.deployable(self.manifest), [], probe["dirs"], True)
        if copy:
            plan.append(copy)
        plan.append(self.config_step(text))
        plan.append(self.reset_step())
        return plan

    # ---- run -----------------------------------------------------------------------------
    def probe(self):
        text = steps.run(self.probe_step(), out=self.out, capture=True, timeout=120)
        for line in text.splitlines():
            if line.startswith("RATING-PROBE "):
                return json.loads(line[len("RATING-PROBE ") :])
        raise DeviceError(
            _("the panel did not answer the file check (got %r). Press its RESET button and run deploy again.")
            % text[-200:]
        )

    def run(self):
        say = self.out
        say(_("Checking the board on %s ...") % self.port)
        check_board(self.port)  # also re-arms the watchdog for the first step
        probe = self.probe()
        self.report_board(probe)
        existing = panelconfig.parse_existing(probe.get("config"))
        given = panelconfig.merge(existing, self.overrides)
        # the panel checks its pins with its own chip's rules at boot: check them the same way
        from firmware.boot import chip

        text, cfg = panelconfig.validate(given, chip(probe.get("machine") or ""))

        files = bundle_info.changed(self.manifest, probe["files"])
        old_manifest = None
        if probe.get("manifest"):
            try:
                old_manifest = json.loads(probe["manifest"])
            except ValueError:
                old_manifest = None
        stale = bundle_info.stale(old_manifest, self.manifest)
        same_manifest = old_manifest == self.manifest
        cp = self.copy_step(files, stale, probe["dirs"], write_manifest=bool(files or stale) or not same_manifest)
        if cp:
            steps.run(cp, out=say)
        else:
            n = len(bundle_info.deployable(self.manifest))
            say(
                "- "
                + ngettext(
                    "Firmware files: the %d file is already up to date, nothing copied",
                    "Firmware files: all %d already up to date, nothing copied",
                    n,
                )
                % n
            )
        if existing == json.loads(text):
            say("- " + _("/config.json: unchanged"))
        else:
            new_password = (existing.get("mqtt") or {}).get("password") != cfg["mqtt"].get("password")
            steps.run(self.config_step(text, new_password), out=say)
        kept = [n for n in probe.get("root", []) if n.startswith("j") or n in ("seq", "boot", "remote.json")]
        if kept:
            say("- " + _("Kept on the panel: %s") % ", ".join(kept))
        return self.restart_and_wait(cfg)

    def report_board(self, probe):
        version = ".".join(str(x) for x in probe.get("version") or [])
        self.out(
            "  "
            + _("board: %(machine)s, MicroPython %(version)s") % {"machine": probe.get("machine"), "version": version}
        )
        mpy = probe.get("mpy")
        if isinstance(mpy, int) and (mpy & 0xFF) != bundle_info.MPY_MAJOR:
            raise DeviceError(
                _(
                    "the panel runs MicroPython %(version)s, whose compiled-file format (.mpy v%(panel)d) does not "
                    "match the bundle (v%(bundle)d, MicroPython 1.22 or newer). Flash a current MicroPython "
                    "with `rating device flash`."
                )
                % {"version": version, "panel": mpy & 0xFF, "bundle": bundle_info.MPY_MAJOR}
            )

    def restart_and_wait(self, cfg):
        from protocol import topics

        say = self.out
        m = cfg["mqtt"]
        host, port, ssl = self.watch_broker or (m["host"], m["port"], bool(m.get("ssl")))
        topic = topics.device_topic(m["root"], cfg["site"], cfg["device"], "state")
        watch = BrokerWatch(host, port, topic, m.get("user"), m.get("password"), ssl)
        if self.wait_s > 0 and watch.start():
            say(
                "- "
                + _("Watching %(topic)s on the broker %(host)s:%(port)s") % {"topic": topic, "host": host, "port": port}
            )
        elif self.wait_s > 0:
            say(
                "- "
                + _(
                    "The broker %(host)s:%(port)s is not reachable from this computer (%(error)s); watching the "
                    "panel's serial console instead"
                )
                % {"host": host, "port": port, "error": watch.error}
            )
            watch = None
        if watch:
            watch.arm()
        try:
            steps.run(self.reset_step(), out=say)
            if self.wait_s <= 0:
                say(_("Deployed. Not waiting for the panel (--wait 0)."))
                return {"online": None, "fw": self.manifest.get("fw")}
            return self._wait(cfg, watch)
        finally:
            if watch:
                watch.stop()

    def _wait(self, cfg, watch):
        say = self.out
        name = "%s/%s" % (cfg["site"], cfg["device"])
        reading = ConsoleReading()
        deadline = time.monotonic() + self.wait_s
        console = None
        say("- " + _("Waiting up to %(s)d s for %(panel)s to come online ...") % {"s": self.wait_s, "panel": name})
        try:
            while time.monotonic() < deadline:
                if watch and watch.birth:
                    return self._success(name, watch.birth.get("fw"), _("its birth message on the broker"))
                if console is None:
                    try:
                        console = Console(self.port)  # a native-USB board re-appears after reset
                    except DeviceError:
                        time.sleep(0.5)
                        continue
                for line in console.lines(timeout=0.3):
                    if line is not None:
                        say("    panel> " + line)
                        reading.feed(line)
                if reading.error:
                    raise DeviceError(
                        _("the panel reports: %s. The files are deployed; fix the setting and run deploy again.")
                        % reading.error
                    )
                if reading.online and not watch:
                    return self._success(name, reading.fw, _('"link: mqtt up" on its console'))
        finally:
            if console:
                console.close()
        raise DeviceError(
            _(
                "%(panel)s did not come online within %(s)d s (firmware and config are on the panel). Check "
                "the Wi-Fi name and password, and that the broker %(host)s:%(port)s is reachable from the shop "
                "network; `rating device test --port %(device_port)s` shows Wi-Fi signal, broker and clock."
            )
            % {
                "panel": name,
                "s": self.wait_s,
                "host": cfg["mqtt"]["host"],
                "port": cfg["mqtt"]["port"],
                "device_port": self.port,
            }
        )

    def _success(self, name, fw, how):
        self.out(
            _("Panel %(panel)s is online with firmware %(fw)s (seen: %(how)s).")
            % {"panel": name, "fw": fw or "?", "how": how}
        )
        if fw and self.manifest.get("fw") and fw != self.manifest["fw"]:
            self.out(
                _(
                    "warning: the bundle is firmware %(bundle)s but the panel reports %(fw)s; is an old "
                    "main.py or a frozen firmware shadowing /lib?"
                )
                % {"bundle": self.manifest["fw"], "fw": fw}
            )
        return {"online": True, "fw": fw}
