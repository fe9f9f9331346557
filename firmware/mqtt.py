"""The device's MQTT client: umqtt.simple (micropython-lib, installed by the bundle) whose socket
waits keep the buttons sampled, and the HAL's client interface. Device and unix port only:
`hal.mqtt()` imports it on the first connect (simulator/host_hal.PahoClient is the CPython twin).

    c = MqttClient(client_id, host, port, user, password, keepalive, ssl)
    c.connect(clean_session=True, will=(topic, payload, retain, qos))
    c.publish(topic, payload, retain, qos) / subscribe(topic, qos) / set_callback(cb) /
    c.check_msg() / ping()                  umqtt.simple's own (inherited, not wrapped)
    c.disconnect() / close()                close() drops the socket without DISCONNECT

Every failure raises (OSError, MQTTException, AssertionError from a torn packet): the link
treats any exception as "connection lost". A subclass rather than a wrapper: each wrapper
method would cost the panel ~250 bytes of heap for nothing.

Also the device's waiting (ntp.exchange and dns.resolve use them too):
    wait_io(hal, poller, t0, timeout_ms)   until the polled socket is ready, running hal.idle()
    getaddrinfo(hal, host, port)           socket.getaddrinfo; a name goes through firmware/dns.py
`HAL` is set by Hal.mqtt() before the first connect.
"""

import errno
import select
import socket
import time

from umqtt import simple

TIMEOUT_S = 3  # per socket operation; a LAN broker answers in milliseconds
HAL = None  # firmware.hal.Hal (set by Hal.mqtt before the first connect)
_STEP_MS = 5  # a socket wait samples the buttons this often (debounce is 30 ms)


def wait_io(hal, poller, t0, timeout_ms):
    """Return when the socket registered in `poller` is ready (or failed: the next read or write
    raises); OSError(ETIMEDOUT) once timeout_ms have passed since t0. Meanwhile hal.idle()
    (Panel._sample) samples the buttons every _STEP_MS: a press during a slow connect, lookup or
    NTP exchange is journaled, not missed."""
    while True:
        # checked first: a socket that keeps polling ready but yields nothing still times out
        if hal.ticks_diff(hal.ticks_ms(), t0) >= timeout_ms:
            raise OSError(errno.ETIMEDOUT)
        for _ in poller.ipoll(_STEP_MS):
            return
        if hal.idle is not None:
            hal.idle()


def getaddrinfo(hal, host, port):
    if not host.replace(".", "").isdigit():  # a name, not an IPv4 address: look it up
        from firmware import dns, unload

        try:
            host = dns.resolve(hal, host)
        finally:
            unload("firmware.dns")
    return socket.getaddrinfo(host, port)


class TimedSocket:
    """umqtt.simple's socket, non-blocking underneath: 'blocking' means 'wait at most TIMEOUT_S,
    sampling the buttons meanwhile' (wait_io).

    umqtt.simple connects, waits for CONNACK and SUBACK, and reads the rest of every packet in
    blocking calls. Blocked in C, the panel would miss a 200 ms press while a dead broker holds
    a connect for seconds; with no timeout, a half-dead link would freeze the button loop for
    good. So every wait here is a poll of a few ms between button samples, up to TIMEOUT_S,
    then OSError(ETIMEDOUT) and the link reconnects. With TLS (mqtt.ssl) the connect and
    handshake run on a plain socket timeout (umqtt wraps the socket itself); after that the
    TLS socket is wrapped here like a plain one.
    """

    def __init__(self, sock):
        sock.setblocking(False)
        self.sock = sock
        self.blocking = True
        self.poll = select.poll()
        self.poll.register(sock)

    def setblocking(self, flag):
        self.blocking = flag

    def _wait(self, mask, t0):
        self.poll.modify(self.sock, mask)
        wait_io(HAL, self.poll, t0, TIMEOUT_S * 1000)

    def connect(self, addr):
        try:
            self.sock.connect(addr)
        except OSError as e:
            if e.errno != errno.EINPROGRESS:
                raise
        # ready = connected or failed; a failure raises on umqtt's first write
        self._wait(select.POLLOUT, time.ticks_ms())

    def read(self, n):
        if not self.blocking:
            return self.sock.read(n)  # check_msg's first byte: None when nothing is there
        buf = bytearray(n)
        mv = memoryview(buf)
        got = 0
        t0 = time.ticks_ms()
        while got < n:
            k = self.sock.readinto(mv[got:])
            if k is None:
                self._wait(select.POLLIN, t0)
            elif k == 0:
                raise OSError(errno.ECONNRESET)  # the broker closed mid-packet
            else:
                got += k
        return bytes(buf)

    def write(self, buf, n=None):
        mv = memoryview(buf)
        if n is not None:
            mv = mv[:n]
        done = 0
        t0 = time.ticks_ms()
        while done < len(mv):
            k = self.sock.write(mv[done:])
            if k:
                done += k
            else:
                self._wait(select.POLLOUT, t0)
        return done

    def close(self):
        self.sock.close()


class _Sockets:
    """Stands in for the `socket` module inside umqtt.simple: its sockets wait the panel's way,
    and a broker name is looked up by firmware/dns.py (a lookup in C could outlast the watchdog)."""

    ssl = False

    @staticmethod
    def getaddrinfo(host, port):
        return getaddrinfo(HAL, host, port)

    @staticmethod
    def socket(*args):
        s = socket.socket(*args)
        if _Sockets.ssl:
            s.settimeout(TIMEOUT_S)
            return s
        return TimedSocket(s)


setattr(simple, "socket", _Sockets)  # noqa: B010 - the stubs declare no such attribute


class MqttClient(simple.MQTTClient):
    TIMEOUT_S = TIMEOUT_S

    def connect(self, clean_session=True, will=None):
        """will = (topic, payload, retain, qos): the broker publishes it if we vanish."""
        if will:
            self.set_last_will(will[0], will[1], will[2], will[3])
        _Sockets.ssl = self.ssl
        try:
            simple.MQTTClient.connect(self, clean_session)
            if self.ssl:
                self.sock = TimedSocket(self.sock)
        except Exception:
            self.close()
            raise

    def disconnect(self):
        try:
            simple.MQTTClient.disconnect(self)
        except Exception:
            pass
        self.close()

    def close(self):
        sock, self.sock = self.sock, None
        if sock is not None:
            try:
                sock.close()
            except Exception:
                pass
