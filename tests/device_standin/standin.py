"""Start and drive the stand-in panel (bridge.mjs) from tests.

    panel = Standin(tmp_path)          # a fresh flash folder
    panel.start()                      # socat pty <-> node bridge.mjs; panel.port is the device path
    panel.flash / "config.json"        # the panel's files (host copy, synced after every command)
    panel.events("firmware")           # what the stand-in reported (events.jsonl)
    panel.press([("yes", 100, 400)])   # buttons for the next self-test (ms after "SELFTEST PRESS")
    panel.app_watchdog(3000)           # the deployed app's watchdog timeout (default: Panel.WDT_MS)
    panel.events("watchdog")           # each time the watchdog reset the panel
    panel.stop()

The MicroPython WebAssembly package is installed by `ensure_vm()` with npm into
build/node-standin/ (pinned, once, then cached); nothing of it is committed.
"""

import fcntl
import json
import os
import shutil
import signal
import subprocess
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
NPM_PACKAGE = "@micropython/micropython-webassembly-pyscript"
NPM_VERSION = "1.27.0"
PREFIX = os.path.join(REPO, "build", "node-standin")
PKG_DIR = os.path.join(PREFIX, "node_modules", "@micropython", "micropython-webassembly-pyscript")

# The firmware's default pins (firmware/config.py DEFAULTS["pins"]).
BUTTON_PINS = {"yes": 32, "no": 33, "unsure": 25, "seller": 26}


class StandinUnavailable(RuntimeError):
    """node, npm or socat missing, or the npm install failed."""


def ensure_vm():
    """Install the pinned MicroPython WebAssembly package (once); return its folder. Under a
    lock: test processes running side by side (pytest-xdist) install it once, not over each other."""
    os.makedirs(PREFIX, exist_ok=True)
    with open(PREFIX + ".lock", "w") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        return _install_vm()


def _install_vm():
    marker = os.path.join(PKG_DIR, "package.json")
    if os.path.exists(marker):
        with open(marker) as f:
            if json.load(f).get("version") == NPM_VERSION:
                return PKG_DIR
    for tool in ("node", "npm", "socat"):
        if not shutil.which(tool):
            raise StandinUnavailable("%s not found (the stand-in panel needs node, npm and socat)" % tool)
    os.makedirs(PREFIX, exist_ok=True)
    proc = subprocess.run(
        ["npm", "install", "--no-audit", "--no-fund", "--prefix", PREFIX, "%s@%s" % (NPM_PACKAGE, NPM_VERSION)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if proc.returncode != 0 or not os.path.exists(marker):
        raise StandinUnavailable("npm install %s@%s failed: %s" % (NPM_PACKAGE, NPM_VERSION, proc.stderr[-2000:]))
    return PKG_DIR


class Standin:
    def __init__(self, state_dir):
        self.dir = str(state_dir)
        self.flash = os.path.join(self.dir, "flash")
        self.port = os.path.join(self.dir, "ttyPANEL")
        self.proc = None
        os.makedirs(self.flash, exist_ok=True)

    def start(self, timeout=15.0):
        pkg = ensure_vm()
        bridge = os.path.join(HERE, "bridge.mjs")
        cmd = "node %s --state %s --pkg %s" % (bridge, self.dir, pkg)
        self.log = open(os.path.join(self.dir, "bridge.log"), "wb")
        self.proc = subprocess.Popen(
            ["socat", "PTY,link=%s,rawer" % self.port, "EXEC:%s" % cmd],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        booted = len(self.events("ready"))  # a restarted stand-in keeps its events: wait for a new boot
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if os.path.exists(self.port) and len(self.events("ready")) > booted:
                time.sleep(0.1)  # the power-on banner goes out before anyone listens, as on a board
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise StandinUnavailable("stand-in panel did not start: %s" % self.bridge_log())

    def bridge_log(self):
        try:
            with open(os.path.join(self.dir, "bridge.log"), "rb") as f:
                return f.read().decode(errors="replace")[-3000:]
        except OSError:
            return ""

    def events(self, kind=None):
        try:
            with open(os.path.join(self.dir, "events.jsonl")) as f:
                rows = [json.loads(line) for line in f if line.strip()]
        except OSError:
            return []
        return [r for r in rows if kind is None or r["event"] == kind]

    def press(self, schedule):
        """[(button, down_ms, up_ms), ...] after the self-test prints SELFTEST PRESS."""
        rows = [[BUTTON_PINS[name], down, up] for name, down, up in schedule]
        with open(os.path.join(self.dir, "buttons.json"), "w") as f:
            json.dump(rows, f)

    def app_watchdog(self, ms):
        """The watchdog timeout the deployed app starts at each boot (instead of Panel.WDT_MS)."""
        with open(os.path.join(self.dir, "app_wdt_ms"), "w") as f:
            f.write(str(int(ms)))

    def boot_console(self, text):
        """Lines the panel prints after each hard reset (what firmware prints on a real board)."""
        with open(os.path.join(self.dir, "boot_console.txt"), "w") as f:
            f.write(text)

    def files(self):
        out = {}
        for folder, _dirs, names in os.walk(self.flash):
            for name in names:
                path = os.path.join(folder, name)
                out[os.path.relpath(path, self.flash).replace(os.sep, "/")] = path
        return out

    def stop(self):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None
        if getattr(self, "log", None):
            self.log.close()
            self.log = None
