"""The firmware's own MQTT 3.1.1 client (firmware/mqtt.py) on the REAL MicroPython VM (unix port,
tests/mpy_cases/fw_mqtt_vm.py): byte for byte against MQTT 3.1.1 with a scripted peer (the
expected packets are written here from the spec's sections, not by the client's code), and
against the real Mosquitto (will, retained and live messages, keepalive, clean disconnect,
credentials, a half-open connection through a proxy that goes silent).
"""

import os
import shutil
import subprocess
import tempfile
import threading
import time

import paho.mqtt.client as paho
import pytest
from mpy_support import CASES_DIR, micropython_binary, run_micropython
from paho.mqtt.enums import CallbackAPIVersion
from tcp_support import FreezingProxy, ScriptedPeer, mqtt_str, packet

from simulator import services

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.realtime,
    pytest.mark.skipif(not micropython_binary(), reason="MicroPython unix port not installed"),
]
SCRIPT = os.path.join(CASES_DIR, "fw_mqtt_vm.py")


def vm(mode, port, *args, timeout=60):
    proc = run_micropython(SCRIPT, heapsize="100k", timeout=timeout, args=(mode, "127.0.0.1", port) + args)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout.splitlines()


# ---- byte for byte ---------------------------------------------------------------------------

WILL = b'{"v":1,"online":false}'
# 3.1.2: protocol name "MQTT", level 4; flags: user 0x80, password 0x40, will retain 0x20,
# will QoS 1 (0x08), will 0x04, clean session 0x02; keepalive 1 s. 3.1.3: payload in the order
# client id, will topic, will message, user name, password.
CONNECT = packet(
    0x10,
    b"\x00\x04MQTT\x04\xee\x00\x01"
    + mqtt_str("s-d")
    + mqtt_str("r/s/d/state")
    + mqtt_str(WILL)
    + mqtt_str("u")
    + mqtt_str("p"),
)
CONNACK = b"\x20\x02\x00\x00"
SUBSCRIBE = packet(0x82, b"\x00\x01" + mqtt_str("r/s/d/ack") + b"\x01")  # 3.8: pid 1, QoS 1
RETAINED = packet(0x33, mqtt_str("r/s/d/ack") + b"\x00\x07" + b'{"v":1,"seq":5}')  # QoS 1, retain, pid 7
SUBACK = b"\x90\x03\x00\x01\x01"
PUBLISH = packet(0x30, mqtt_str("r/s/d/event") + b'{"v":1}')
PUBLISH_RETAINED = packet(0x31, mqtt_str("r/s/d/state") + b"x" * 200)  # remaining length 213: 2 bytes
OVERSIZE = packet(0x32, mqtt_str("r/s/d/config") + b"\x00\x09" + b"y" * 5000)  # QoS 1, pid 9
LONG = packet(0x32, mqtt_str("r/s/d/config") + b"\x00\x0a" + b"z" * 300)  # allowed: 300 B, pid 10
LIVE = packet(0x30, mqtt_str("r/s/d/ack") + b'{"v":1,"seq":6}')


def test_fw_mqtt_client_speaks_mqtt_311_byte_for_byte():
    peer = ScriptedPeer(
        [
            ("expect", CONNECT),
            ("send", CONNACK),
            ("expect", SUBSCRIBE),
            ("send", RETAINED + SUBACK),  # a retained message may come before the SUBACK
            ("expect", b"\x40\x02\x00\x07"),  # PUBACK of pid 7 (3.4)
            ("expect", PUBLISH),
            ("expect", PUBLISH_RETAINED),
            ("send", OVERSIZE),
            ("expect", b"\x40\x02\x00\x09"),  # acknowledged although skipped: no in-flight slot held
            ("send", LONG + LIVE),
            ("expect", b"\x40\x02\x00\x0a"),
            ("expect", b"\xc0\x00"),  # quiet for keepalive/2: PINGREQ (3.12)
            ("send", b"\xd0\x00"),
            ("serve",),  # more PINGREQs, then DISCONNECT (3.14)
        ]
    )
    out = vm("exact", peer.port)
    peer.join()
    assert peer.errors == [], (peer.errors, out)
    assert peer.disconnected, out
    assert [line for line in out if line.startswith(("OK", "ERR"))] == [
        "OK connect",
        "OK subscribe",
        "OK publish",
        "OK publish retained",
        "OK pump",
        "OK disconnect",
    ], out
    msgs = [line for line in out if line.startswith("MSG")]
    assert msgs == [
        'MSG r/s/d/ack 15 {"v":1,"seq":5}',
        "MSG None None ",  # the 5000-byte one: read past in 64-byte pieces, never allocated
        "MSG r/s/d/config 300 ",
        'MSG r/s/d/ack 15 {"v":1,"seq":6}',
    ], out


def test_fw_mqtt_client_refused_connect_and_subscribe_raise_with_the_reason():
    connect = packet(0x10, b"\x00\x04MQTT\x04\xc2\x00\x1e" + mqtt_str("s-d") + mqtt_str("u") + mqtt_str("bad"))
    peer = ScriptedPeer([("expect", connect), ("send", b"\x20\x02\x00\x05")])  # 5: not authorised
    out = vm("refused", peer.port)
    peer.join()
    assert peer.errors == [], peer.errors
    err = [line for line in out if line.startswith("ERR connect")]
    assert err and "code 5 (user/password)" in err[0], out
    connect = packet(0x10, b"\x00\x04MQTT\x04\x02\x00\x1e" + mqtt_str("s-d"))  # clean session only
    peer = ScriptedPeer(
        [("expect", connect), ("send", CONNACK), ("expect", SUBSCRIBE), ("send", b"\x90\x03\x00\x01\x80")]
    )
    out = vm("suback", peer.port)
    peer.join()
    assert peer.errors == [], peer.errors
    assert "OK connect" in out and any(line.startswith("ERR subscribe") and "refused" in line for line in out), out


# ---- against the real broker -----------------------------------------------------------------


class Watcher:
    """A paho client on the broker: records what arrives on `topics` (retained flag too) and
    answers the VM's first event with a live QoS 1 message on its ack topic."""

    def __init__(self, broker, root):
        self.root = root
        self.got = []
        self.lock = threading.Lock()
        self.c = paho.Client(CallbackAPIVersion.VERSION2, client_id="watch-" + root.replace("/", "-"))
        self.c.on_message = self._on_message
        self.c.connect(broker.host, broker.port, 30)
        self.c.loop_start()
        self.c.subscribe([(root + "/event", 1), (root + "/state", 1)])
        time.sleep(0.3)

    def _on_message(self, _c, _u, msg):
        with self.lock:
            self.got.append((msg.topic, bytes(msg.payload), bool(msg.retain)))
        if msg.topic.endswith("/event") and msg.payload == b"hello from the vm":
            self.c.publish(self.root + "/ack", b"live", qos=1)

    def close(self):
        for t in ("/ack", "/state"):
            self.c.publish(self.root + t, b"", qos=1, retain=True).wait_for_publish(5)
        self.c.loop_stop()
        self.c.disconnect()


def test_fw_mqtt_client_against_mosquitto(broker, mqtt_root):
    w = Watcher(broker, mqtt_root)
    try:
        w.c.publish(mqtt_root + "/ack", b"retained-ack", qos=1, retain=True).wait_for_publish(5)
        out = vm("broker", broker.port, mqtt_root)
        time.sleep(0.5)
        assert [line for line in out if line.startswith("ERR")] == [], out
        msgs = [line for line in out if line.startswith("MSG")]
        assert msgs[0] == "MSG %s/ack 12 retained-ack" % mqtt_root, out  # inside subscribe()
        assert "MSG %s/ack 4 live" % mqtt_root in msgs, out  # QoS 1 live, after the event
        with w.lock:
            got = list(w.got)
        events = [p for t, p, _ in got if t.endswith("/event")]
        assert events == [b"hello from the vm", b"still here"], got  # still up after 2.5 keepalives
        wills = [p for t, p, _ in got if t.endswith("/state")]
        assert wills == [b"will-b"], got  # vm-a disconnected cleanly (no will); vm-b vanished
    finally:
        w.close()


@pytest.fixture
def auth_broker():
    """A Mosquitto of our own that refuses anonymous clients (password file)."""
    if not services.mosquitto_binary():
        pytest.skip("mosquitto not installed")
    # outside pytest's 0700 folders: mosquitto drops to its own user when started as root
    folder = tempfile.mkdtemp(prefix="rating-auth-broker-")
    os.chmod(folder, 0o755)
    pw = os.path.join(folder, "passwords")
    open(pw, "w").close()
    subprocess.run(["mosquitto_passwd", "-b", pw, "panel-1", "s3cret"], check=True, capture_output=True)
    os.chmod(pw, 0o644)
    port = services.free_port()
    conf = os.path.join(folder, "mosquitto.conf")
    with open(conf, "w") as f:
        f.write("listener %d 127.0.0.1\nallow_anonymous false\npassword_file %s\n" % (port, pw))
    proc = subprocess.Popen(
        [services.mosquitto_binary(), "-c", conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        assert services.wait_port(port), "mosquitto with a password file did not start"
        yield port
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(folder, ignore_errors=True)


def test_fw_mqtt_client_credentials_accepted_and_wrong_ones_refused(auth_broker):
    assert "OK connect" in vm("auth", auth_broker, "panel-1", "s3cret")
    out = vm("auth", auth_broker, "panel-1", "wrong")
    assert any(line.startswith("ERR connect") and "code 5" in line for line in out), out
    out = vm("auth", auth_broker, "panel-1", "-")  # a user without its password (config refuses it too)
    assert any(line.startswith("ERR connect") and "code 5" in line for line in out), out


def test_fw_mqtt_client_notices_a_half_open_connection(broker, mqtt_root):
    """Keepalive 2 s through a proxy that goes silent 2 s in (no FIN, no RST, as when the
    access point vanishes): check_msg() raises within 1.5 x keepalive of the last packet."""
    proxy = FreezingProxy(broker.port, freeze_after_s=2.0)
    try:
        out = vm("silent", proxy.port, mqtt_root, "2")
    finally:
        proxy.close()
    noticed = [line for line in out if line.startswith("NOTICED")]
    assert noticed, out
    ms = int(noticed[0].split()[1])
    assert "silent" in noticed[0] and 500 <= ms <= 3500, noticed  # 3 s after the last packet at most
