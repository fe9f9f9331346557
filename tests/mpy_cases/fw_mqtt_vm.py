# The firmware's own MQTT client (firmware/mqtt.py) on the REAL MicroPython VM (unix port),
# with the device HAL over the fakes, against a peer the test runs (tests/firmware/test_mqtt_client.py):
#
#   micropython fw_mqtt_vm.py MODE HOST PORT [ARGS...]
#
# Prints one line per thing that happened, for the test to check:
#   MSG <topic or None> <payload length or None> <payload, if short>   a message handed to the callback
#   OK <what> / ERR <what> <exception>
# Modes:
#   exact       the scripted peer's conversation (see test_mqtt_client.py: every byte checked)
#   refused     a CONNACK that refuses; ERR connect ...
#   suback      a SUBACK that refuses; ERR subscribe ...
#   broker ROOT the real broker: connect with a will, subscribe (a retained message comes), receive
#               a live QoS 1 message, publish, stay up over keepalive 2 s on pings, disconnect
#               cleanly; then a second connection vanishes without DISCONNECT (its will)
#   auth USER PASSWORD   connect with credentials, print OK/ERR
#   silent ROOT KEEPALIVE   connect, subscribe, then call check_msg until it raises: the half-open
#               detection (the test's proxy goes silent in between); NOTICED <ms> <exception>
import sys
import time

import install_fakes  # noqa: F401

from firmware.hal import Hal
from firmware.mqtt import MqttClient

MODE, HOST, PORT = sys.argv[1], sys.argv[2], int(sys.argv[3])
ARGS = sys.argv[4:]
hal = Hal({"yes": 32, "no": 33, "unsure": 25, "seller": 26}, root="/tmp/")
seen = []


def cb(topic, msg):
    seen.append((topic, msg))
    short = "" if msg is None or len(msg) > 60 else bytes(msg).decode()
    print("MSG %s %s %s" % (None if topic is None else bytes(topic).decode(), None if msg is None else len(msg), short))


def client(cid, keepalive=30, user=None, password=None):
    c = MqttClient(hal, cid, HOST, PORT, user, password, keepalive)
    c.set_callback(cb)
    return c


def pump(c, ms):
    t = time.ticks_ms()
    while time.ticks_diff(time.ticks_ms(), t) < ms:
        c.check_msg()
        time.sleep_ms(5)


def step(what, fn, *args):
    try:
        fn(*args)
        print("OK " + what)
        return True
    except Exception as e:
        print("ERR %s %r" % (what, e))
        return False


if MODE == "exact":
    c = client("s-d", keepalive=1, user="u", password="p")
    step("connect", c.connect, True, ("r/s/d/state", b'{"v":1,"online":false}', True, 1))
    step("subscribe", c.subscribe, "r/s/d/ack", 1)
    step("publish", c.publish, "r/s/d/event", b'{"v":1}', False, 0)
    step("publish retained", c.publish, "r/s/d/state", b"x" * 200, True, 0)
    step("pump", pump, c, 1400)  # incoming messages; quiet for keepalive/2: a PINGREQ
    step("disconnect", c.disconnect)
elif MODE == "refused":
    c = client("s-d", user="u", password="bad")
    step("connect", c.connect, True, None)
elif MODE == "suback":
    c = client("s-d")
    step("connect", c.connect, True, None)
    step("subscribe", c.subscribe, "r/s/d/ack", 1)
elif MODE == "broker":
    root = ARGS[0]
    c = client("vm-a", keepalive=2)
    step("connect", c.connect, True, (root + "/state", b"will-a", True, 1))
    step("subscribe", c.subscribe, root + "/ack", 1)
    print("SUBSCRIBED")  # the test publishes a live message now
    step("pump", pump, c, 1500)
    step("publish", c.publish, root + "/event", b"hello from the vm", False, 0)
    step("keepalive", pump, c, 5000)  # 2.5 keepalives: up only if PINGREQ/PINGRESP work
    step("publish again", c.publish, root + "/event", b"still here", False, 0)
    step("disconnect", c.disconnect)
    d = client("vm-b", keepalive=30)
    step("connect b", d.connect, True, (root + "/state", b"will-b", True, 1))
    d.sock.close()  # gone without DISCONNECT: the broker publishes the will
    print("VANISHED")
elif MODE == "auth":
    c = client("vm-auth", user=ARGS[0], password=ARGS[1] if ARGS[1] != "-" else None)
    if step("connect", c.connect, True, None):
        step("disconnect", c.disconnect)
elif MODE == "silent":
    root, keepalive = ARGS[0], int(ARGS[1])
    c = client("vm-silent", keepalive=keepalive)
    step("connect", c.connect, True, None)
    step("subscribe", c.subscribe, root + "/ack", 1)
    step("pump", pump, c, 1500)  # PINGREQ/PINGRESP through the proxy while it forwards
    time.sleep_ms(300)  # the proxy goes silent about now (no FIN, no RST)
    t0 = time.ticks_ms()
    try:
        pump(c, 4 * keepalive * 1000)
        print("ERR silent not noticed")
    except OSError as e:
        print("NOTICED %d %s" % (time.ticks_diff(time.ticks_ms(), t0), e))
