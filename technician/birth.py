"""Waiting for a freshly reset panel to come online.

Two witnesses, whichever answers first:
- the broker: the panel's retained `state` topic gets a new birth (online, with a `boot`
  other than the one retained before the reset);
- the serial console: the firmware prints "link: mqtt up HOST:PORT" once connected, after
  "panel: SITE/DEVICE fw VER boot N ...", and "CONFIG ERROR ..." when /config.json is bad.
`ConsoleReading` is the pure part (lines in, verdict out); the watchers do the I/O.
"""

import re
import threading
import time

PANEL_LINE = re.compile(r"panel: (\S+)/(\S+) fw (\S+)")


class ConsoleReading:
    """Feed console lines; .online / .fw / .error tell what the panel said."""

    def __init__(self):
        self.online = False
        self.fw = None
        self.error = None
        self.host = None

    def feed(self, line):
        m = PANEL_LINE.search(line)
        if m:
            self.fw = m.group(3)
        if "link: mqtt up" in line:
            self.online = True
            self.host = line.split("link: mqtt up", 1)[1].strip() or None
        elif "CONFIG ERROR" in line:
            self.error = line[line.index("CONFIG ERROR") :]
        elif "panel: start-up failed" in line:
            self.error = line[line.index("panel:") :]


class BrokerWatch:
    """Subscribe to the panel's state topic before the reset; then wait for a new birth."""

    def __init__(self, host, port, topic, user=None, password=None, ssl=False):
        self.host, self.port, self.topic = host, port, topic
        self.user, self.password, self.ssl = user, password, ssl
        self.client = None
        self.error = None
        self.before = None  # the retained state before the reset (decoded) or None
        self.birth = None  # the new birth (decoded)
        self._armed = False
        self._lock = threading.Lock()
        self._subscribed = threading.Event()

    def start(self, timeout=5.0):
        """Connect and subscribe; False (with .error) when the broker cannot be reached."""
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        c = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id="rating-device-deploy-%d" % int(time.time() * 1000),
        )
        if self.user:
            c.username_pw_set(self.user, self.password)
        if self.ssl:
            c.tls_set()
        c.on_connect = self._on_connect
        c.on_subscribe = lambda *a: self._subscribed.set()
        c.on_message = self._on_message
        try:
            c.connect(self.host, self.port, keepalive=30)
        except Exception as exc:
            self.error = str(exc) or exc.__class__.__name__
            return False
        self.client = c
        c.loop_start()
        if not self._subscribed.wait(timeout):
            self.error = "no answer from the broker within %d s" % timeout
            self.stop()
            return False
        time.sleep(0.3)  # the retained state (if any) arrives right after the subscription
        return True

    def _on_connect(self, client, userdata, flags, reason, properties=None):
        if getattr(reason, "is_failure", False):
            self.error = "broker refused the connection: %s" % reason
            return
        client.subscribe(self.topic, qos=1)

    def _on_message(self, client, userdata, msg):
        from protocol import ProtocolError, messages

        try:
            state = messages.decode_state(msg.payload)
        except ProtocolError:
            return
        with self._lock:
            if not self._armed:
                self.before = state
            elif state.get("online") and (
                not self.before or not self.before.get("online") or state.get("boot") != self.before.get("boot")
            ):
                self.birth = state

    def arm(self):
        """From now on, a new online state is the birth we wait for."""
        with self._lock:
            self._armed = True

    def stop(self):
        if self.client is not None:
            try:
                self.client.disconnect()
                self.client.loop_stop()
            except Exception:
                pass
            self.client = None
