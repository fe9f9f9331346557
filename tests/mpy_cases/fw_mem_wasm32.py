# The panel's heap on a 32-bit MicroPython VM: the WebAssembly port (pyscript variant, 4-byte
# words, 16-byte GC blocks like the ESP32), run by tests/mpy_cases/wasm_run.mjs with the bundle's
# lib/ at /lib (the panel's own paths, so module __file__ names cost what they cost there),
# tests/mpy at /fakes, the panel's flash at /data (kept between runs: each run is one boot):
#
#   node tests/mpy_cases/wasm_run.mjs PKG 200000 tests/mpy_cases/fw_mem_wasm32.py \
#       LIB=/lib tests/mpy=/fakes FLASH=/data=back
#
# /data/run.txt says what this boot does after start-up: "idle" (nothing), or "config": a new
# remote config message arrives, and the panel restarts to check it (firmware/app.py).
#
# That VM collects garbage only between calls from JavaScript (see wasm_run.mjs), so this is a
# generator: every `gc.collect(); yield` hands back to the runner, which resumes it with the
# garbage gone. Prints
#   MEM <module> <bytes>   held after importing it (the panel's start-up imports, in the app's
#                          order, dependencies first); each followed by micropython.qstr_info()'s
#                          "qstr pool: n_pool=.., n_qstr=.., n_str_data_bytes=.., n_total_bytes=.."
#                          (the interned names so far; one such line also comes before the first)
#   MEM_TOTAL <bytes>      what those imports hold
#   RESTART <why>          the boot (or the panel) restarted (fake machine.soft_reset): the run
#                          ends; after a boot's restart, a qstr line comes first (the names the
#                          config check interned)
#   BOOT <bytes>           what firmware.main.boot() added (the kept config read back, HAL, Panel)
#   HELD <bytes>           all of it: the firmware's heap after start-up, offline; a qstr line follows
#   CONNECTED <bytes>      the same once online on the scripted broker below (connected, subscribed,
#                          retained ack taken, birth state and an event sent and acked, NTP tried);
#                          a qstr line follows
#   AFTER_CONFIG <bytes>   held once a config message was taken and kept (before the restart)
#   CFG <ver>              the remote config version in force
#   LOADED <modules>       firmware/protocol modules in sys.modules at the end
# The VM has no `socket`: the stub below gives the MQTT client a scripted broker (a stream the
# client polls like a socket), so the connected panel can be measured on 32 bits too. It is no
# broker test (those run against Mosquitto on the unix port): it only answers what the client
# needs to stay up.
# Built into the ESP32's firmware (C, no heap), frozen Python wrappers on this VM (binascii:
# ~1 KB held and ~6 KB of import garbage; os, time): loaded before the baseline, they are the
# platform's, not the firmware's.
import binascii  # noqa: E401,F401
import gc
import io
import json
import os  # noqa: E401,F401
import sys
import time  # noqa: E401,F401

import fake_machine
import fake_network
import install_fakes  # noqa: F401 - the firmware's hal imports machine/network
import micropython

CONFIG_MSG = b'{"v":1,"ver":9,"window_s":45,"brightness":30,"question":"Were you served well?"}'


class Broker(io.IOBase):
    """A scripted MQTT peer: CONNACK, SUBACK, retained ack on the ack topic, PINGRESP, and an
    ack for every event published (the gateway)."""

    def __init__(self):
        self.out = bytearray()
        self.inb = bytearray()
        self.acked = 0
        self.config = None  # a config message to deliver next (bytes)

    def setblocking(self, flag):
        pass

    def connect(self, addr):
        pass

    def close(self):
        pass

    def _pub(self, topic, payload):
        body = bytearray()
        body.append(len(topic) >> 8)
        body.append(len(topic) & 255)
        body.extend(topic)
        body.extend(b"\x00\x01")  # QoS 1 packet id
        body.extend(payload)
        self.out.append(0x33)
        self.out.append(len(body))  # < 128 here
        self.out.extend(body)

    def _next(self):
        """(kind, body) of the next whole packet the client wrote, or None."""
        b = self.inb
        n = shift = 0
        i = 1
        while i < len(b):
            n |= (b[i] & 127) << shift
            shift += 7
            i += 1
            if not b[i - 1] & 128:
                if len(b) < i + n:
                    return None
                kind, body = b[0], bytes(b[i : i + n])
                self.inb = b[i + n :]
                return kind, body
        return None

    def write(self, b):
        self.inb.extend(b)
        while True:
            got = self._next()
            if got is None:
                break
            kind, body = got
            if kind == 0x10:
                self.out.extend(b"\x20\x02\x00\x00")
            elif kind == 0x82:
                self.out.extend(b"\x90\x03" + body[:2] + b"\x01")
                topic = body[4 : 4 + body[3]]
                if topic.endswith(b"/ack"):
                    self.ack_topic = topic
                    self._pub(topic, b'{"v":1,"seq":%d}' % self.acked)
            elif kind == 0xC0:
                self.out.extend(b"\xd0\x00")
            elif kind & 0xF0 == 0x30:
                topic = body[2 : 2 + body[1]]
                if topic.endswith(b"/event"):
                    self.acked = json.loads(body[2 + body[1] :])["seq"]
                    self._pub(self.ack_topic, b'{"v":1,"seq":%d}' % self.acked)
        return len(b)

    def readinto(self, buf, n=None):
        if not self.out:
            return None
        n = len(buf) if n is None else n
        n = min(n, len(self.out))
        buf[:n] = self.out[:n]
        self.out = self.out[n:]
        return n

    def ioctl(self, req, arg):
        if req == 3:  # MP_STREAM_POLL
            return (arg & 1 if self.out else 0) | (arg & 4)
        return 0


BROKER = Broker()


class _Sockets:
    AF_INET = 2
    SOCK_STREAM = 1
    SOCK_DGRAM = 2

    @staticmethod
    def socket(af=2, kind=1, *args):
        if kind != 1:
            raise OSError(95)  # no UDP here: NTP and DNS fail, as with no server
        return BROKER

    @staticmethod
    def getaddrinfo(host, port, *args):
        return [(2, 1, 0, "", (host, port))]


sys.modules["socket"] = sys.modules["usocket"] = _Sockets

PANEL = (
    "protocol",
    "protocol.panel",
    "firmware.version",
    "firmware.clock",
    "firmware.buttons",
    "firmware.journal",
    "firmware.ui",
    "firmware.link",
    "firmware.app",
    "firmware.hal",
    "firmware.mqtt",
    "firmware.main",
)
CONFIG = {"site": "s1", "device": "p1", "wifi": {"ssid": "shop"}, "mqtt": {"host": "127.0.0.1"}}
try:
    open("/data/config.json").close()
except OSError:
    with open("/data/config.json", "w") as f:
        f.write(json.dumps(CONFIG))
with open("/data/run.txt") as f:
    RUN = f.read().strip()
del f
try:  # the last run ended in a (fake) soft reset: this boot's reset cause says so
    os.remove("/data/restarted")
    fake_machine.reset_reason = fake_machine.SOFT_RESET
except OSError:
    pass


def _restarted(why):
    print("RESTART " + why)
    with open("/data/restarted", "w") as f:
        f.write(why)


def _make_hal(pins):
    from firmware.hal import Hal

    return Hal(pins, root="/data")


def _steps(panel, n):
    for _ in range(n):
        panel.step()
        time.sleep_ms(5)


def _run():
    gc.collect()
    yield
    start = gc.mem_alloc()
    micropython.qstr_info()
    for name in PANEL:
        before = gc.mem_alloc()
        __import__(name)
        gc.collect()
        yield
        held = gc.mem_alloc()
        print("MEM %s %d" % (name, held - before))
        micropython.qstr_info()
        gc.collect()
        yield  # the print's garbage
    held = gc.mem_alloc()
    print("MEM_TOTAL %d" % (held - start))
    gc.collect()
    yield
    before = gc.mem_alloc()
    import firmware.main

    fake_network.connected = True  # joined (the driver-like fake would take 1.5 s)
    try:
        panel, hal = firmware.main.boot(_make_hal, "/data/config.json", log=print)
    except fake_machine.Reset:
        gc.collect()
        yield
        micropython.qstr_info()  # the names the config check interned (gone with the restart)
        _restarted("boot")
        return
    gc.collect()
    yield
    held = gc.mem_alloc()
    print("BOOT %d" % (held - before))
    print("HELD %d" % (held - start))
    micropython.qstr_info()
    gc.collect()
    yield
    _steps(panel, 40)  # online: connect, subscribe, retained ack, birth state, NTP tried
    assert panel.link.online, panel.link.last_error
    fake_machine.set_level(panel.cfg["pins"]["yes"], 0)  # a press: journaled, sent, acked
    _steps(panel, 10)
    fake_machine.set_level(panel.cfg["pins"]["yes"], 1)
    _steps(panel, 40)
    assert panel.journal.acked == panel.journal.seq >= 1, (panel.journal.acked, panel.journal.seq)
    gc.collect()
    yield
    print("CONNECTED %d" % (gc.mem_alloc() - start))
    micropython.qstr_info()
    print("CFG %s" % panel.cfg["remote"].get("ver"))
    print("STATE " + json.dumps(panel.state()))
    if RUN == "config":
        BROKER._pub(panel.link.t_config.encode(), CONFIG_MSG)
        _steps(panel, 10)
        assert panel.restart_due is not None
        gc.collect()
        yield
        print("AFTER_CONFIG %d" % (gc.mem_alloc() - start))
        micropython.qstr_info()
        while not panel.restart:
            _steps(panel, 10)
        try:
            firmware.main.loop(panel, hal, print, 1)
        except fake_machine.Reset:
            _restarted("config")
    print("LOADED " + " ".join(sorted(m for m in sys.modules if m.split(".")[0] in ("firmware", "protocol", "umqtt"))))


steps = _run()
