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
        raise StepFailed("cannot open %s to write /config.json: %s" % (port, exc)) from None
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
            "writing /config.json failed (%s). Press the panel's RESET button, wait 3 s and run deploy "
            "again." % detail.strip().splitlines()[-1]
        ) from None
    finally:
        t.close()
    out("    /config.json written (%d bytes)" % len(text.encode()))


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
            "Stop the app, re-arm the watchdog and read what is on the panel (file hashes, config)",
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
        what = "Copy %d changed file(s)" % len(files)
        if stale:
            what += ", remove %d old module(s)" % len(stale)
        return steps.Step(what, steps.mpremote(self.port, *steps.chain(*cmds)))

    def config_step(self, text, new_password=False):
        return steps.Step(
            "Write /config.json (validated; replaces the old file in one rename)",
            action=lambda out: write_config(self.port, text, out, new_password),
            describe="re-arm the watchdog, write :config.json.new, rename it to :config.json; it holds the "
            "passwords, so it goes through no file and no command line",
        )

    def reset_step(self):
        return steps.Step(
            "Restart the panel so it starts the new firmware", steps.mpremote(self.port, "reset", arm=False)
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
            "the panel did not answer the file check (got %r). Press its RESET "
            "button and run deploy again." % text[-200:]
        )

    def run(self):
        say = self.out
        say("Checking the board on %s ..." % self.port)
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
            say(
                "- Firmware files: all %d already up to date, nothing copied"
                % len(bundle_info.deployable(self.manifest))
            )
        if existing == json.loads(text):
            say("- /config.json: unchanged")
        else:
            new_password = (existing.get("mqtt") or {}).get("password") != cfg["mqtt"].get("password")
            steps.run(self.config_step(text, new_password), out=say)
        kept = [n for n in probe.get("root", []) if n.startswith("j") or n in ("seq", "boot", "remote.json")]
        if kept:
            say("- Kept on the panel: %s" % ", ".join(kept))
        return self.restart_and_wait(cfg)

    def report_board(self, probe):
        version = ".".join(str(x) for x in probe.get("version") or [])
        self.out("  board: %s, MicroPython %s" % (probe.get("machine"), version))
        mpy = probe.get("mpy")
        if isinstance(mpy, int) and (mpy & 0xFF) != bundle_info.MPY_MAJOR:
            raise DeviceError(
                "the panel runs MicroPython %s, whose compiled-file format (.mpy v%d) does not "
                "match the bundle (v%d, MicroPython 1.22 or newer). Flash a current MicroPython "
                "with `rating device flash`." % (version, mpy & 0xFF, bundle_info.MPY_MAJOR)
            )

    def restart_and_wait(self, cfg):
        from protocol import topics

        say = self.out
        m = cfg["mqtt"]
        host, port, ssl = self.watch_broker or (m["host"], m["port"], bool(m.get("ssl")))
        topic = topics.device_topic(m["root"], cfg["site"], cfg["device"], "state")
        watch = BrokerWatch(host, port, topic, m.get("user"), m.get("password"), ssl)
        if self.wait_s > 0 and watch.start():
            say("- Watching %s on the broker %s:%s" % (topic, host, port))
        elif self.wait_s > 0:
            say(
                "- The broker %s:%s is not reachable from this computer (%s); watching the "
                "panel's serial console instead" % (host, port, watch.error)
            )
            watch = None
        if watch:
            watch.arm()
        try:
            steps.run(self.reset_step(), out=say)
            if self.wait_s <= 0:
                say("Deployed. Not waiting for the panel (--wait 0).")
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
        say("- Waiting up to %d s for %s to come online ..." % (self.wait_s, name))
        try:
            while time.monotonic() < deadline:
                if watch and watch.birth:
                    return self._success(name, watch.birth.get("fw"), "its birth message on the broker")
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
                        "the panel reports: %s. The files are deployed; fix the "
                        "setting and run deploy again." % reading.error
                    )
                if reading.online and not watch:
                    return self._success(name, reading.fw, '"link: mqtt up" on its console')
        finally:
            if console:
                console.close()
        raise DeviceError(
            "%s did not come online within %d s (firmware and config are on the panel). Check "
            "the Wi-Fi name and password, and that the broker %s:%s is reachable from the shop "
            "network; `rating device test --port %s` shows Wi-Fi signal, broker and clock."
            % (name, self.wait_s, cfg["mqtt"]["host"], cfg["mqtt"]["port"], self.port)
        )

    def _success(self, name, fw, how):
        self.out("Panel %s is online with firmware %s (seen: %s)." % (name, fw or "?", how))
        if fw and self.manifest.get("fw") and fw != self.manifest["fw"]:
            self.out(
                "warning: the bundle is firmware %s but the panel reports %s; is an old "
                "main.py or a frozen firmware shadowing /lib?" % (self.manifest["fw"], fw)
            )
        return {"online": True, "fw": fw}
