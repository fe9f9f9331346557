"""The panel's own MQTT 3.1.1 client: CONNECT (with the last will), PUBLISH QoS 0, SUBSCRIBE,
PINGREQ/PINGRESP, DISCONNECT; and the device's bounded network waits. Device and unix port
only: `hal.mqtt()` imports it on the first connect (simulator/host_hal.PahoClient is the
CPython twin with the same interface).

Why our own and not umqtt.simple: stock ESP32 images freeze umqtt.simple, frozen modules load
before /lib, and the frozen version differs per image (1.3.4 .. 1.7.0; from 1.6.0 on its
connect() calls sock.settimeout, which a panel's non-blocking socket wrapper lacks). A module
named `firmware.mqtt` cannot be shadowed by anything frozen, so the code the tests run is the
code the panel runs, whatever image it was flashed with (firmware/README.md, "MQTT client").

    c = MqttClient(hal, client_id, host, port, user, password, keepalive, ssl)   # ssl must be False
    c.set_callback(cb)          # cb(topic, msg) per incoming PUBLISH; cb(None, None) for one
                                # too large to take (skipped unread, see check_msg)
    c.connect(clean_session=True, will=(topic, payload, retain, qos))
    c.publish(topic, payload, retain=False, qos=0)       # QoS 0 only (README, "QoS decision")
    c.subscribe(topic, qos=1)   # waits for the SUBACK; refused -> OSError
    c.check_msg()               # one incoming packet if one is there; keeps the link alive
    c.disconnect() / c.close()  # close(): drop the socket, no DISCONNECT

Every wait (TCP connect, CONNACK, SUBACK, the rest of a packet, a full send buffer) polls the
socket in _STEP_MS steps and runs hal.idle() (the panel's button sampler) in between, for at
most TIMEOUT_S: a slow or dead broker never freezes the buttons. Every failure raises OSError
(the link treats any exception as "connection lost").

Keepalive: check_msg() sends PINGREQ when nothing came from the broker for keepalive/2 (or
nothing went to it), and raises OSError when nothing at all came for 1.5 x keepalive: a
half-open TCP connection (an access point that vanished without a FIN) is noticed within
that time, not after the TCP stack's hours.

Also the device's waiting (ntp.exchange and dns.resolve use them too):
    wait_io(hal, poller, t0, timeout_ms)   until the polled socket is ready, running hal.idle()
    getaddrinfo(hal, host, port)           socket.getaddrinfo; a name goes through firmware/dns.py
`hal` is the device HAL (firmware/hal.py): its clock and its idle hook (the button sampler).
"""

import errno
import select
import socket

from firmware import const

TIMEOUT_S = 3  # per wait; a LAN broker answers in milliseconds
_STEP_MS = const(5)  # a socket wait samples the buttons this often (debounce is 30 ms)
# Largest incoming payload taken: protocol.checks.MAX_BYTES (the ack and config the panel
# subscribes to are at most that). Anything larger is read and thrown away in _CHUNK pieces,
# never allocated: a 2 KB retained message used to exhaust the panel's heap on every connect.
_MAX_PAYLOAD = const(1024)
_MAX_TOPIC = const(255)  # the panel's own topics are < 180 bytes (root 100, ids 32 + 32)
_CHUNK = const(64)
_WHY = " (user/password)"  # CONNACK codes 4 (bad user name or password), 5 (not authorised)


def wait_io(hal, poller, t0, timeout_ms):
    """Return when the socket registered in `poller` is ready (or failed: the next read or write
    raises); OSError(ETIMEDOUT) once timeout_ms have passed since t0. Meanwhile hal.idle()
    (the Panel's sampler) reads the buttons every _STEP_MS: a press during a slow connect,
    lookup or NTP exchange is journaled and shown on the LEDs, not missed."""
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


def _str(buf, s):
    """Append an MQTT string (2-byte length, bytes)."""
    if type(s) is str:
        s = s.encode()
    buf.append(len(s) >> 8)
    buf.append(len(s) & 255)
    buf.extend(s)


class MqttClient:
    def __init__(self, hal, client_id, host, port=1883, user=None, password=None, keepalive=60, ssl=False):
        if ssl:
            # refused by config validation already (firmware/README.md, "TLS"); never half-working
            raise ValueError("mqtt: no TLS")
        self.hal = hal
        self.client_id = client_id
        self.host = host
        self.port = port
        self.user = user
        self.password = password
        self.keepalive = keepalive
        self.cb = None
        self.sock = None
        self._poll = None
        self._pid = 0
        self._suback = None  # (pid, return code) of the last SUBACK
        self._buf = bytearray(_CHUNK)  # one small buffer for headers and skipped bytes
        self.rx_ms = self.tx_ms = self.ping_ms = 0  # HAL ticks of the last packet in / out / PINGREQ

    def set_callback(self, cb):
        self.cb = cb

    # ---- socket, bounded waits ----
    # self.sock and self._poll are None only when closed, and any exception means "lost" to
    # the link (AttributeError included): no None checks that would cost the panel's heap
    def _wait(self, mask, t0):
        self._poll.modify(self.sock, mask)  # pyright: ignore[reportOptionalMemberAccess]
        wait_io(self.hal, self._poll, t0, TIMEOUT_S * 1000)

    def _write(self, data):
        mv = memoryview(data)
        done = 0
        t0 = self.hal.ticks_ms()
        while done < len(mv):
            k = self.sock.write(mv[done:])  # pyright: ignore[reportOptionalMemberAccess]
            if k:
                done += k
            else:  # None: the send buffer is full
                self._wait(select.POLLOUT, t0)
        self.tx_ms = self.hal.ticks_ms()

    def _readinto(self, mv, t0):
        """Fill memoryview `mv` from the socket, waiting (bounded) for the rest."""
        got = 0
        while got < len(mv):
            k = self.sock.readinto(mv[got:])  # pyright: ignore[reportOptionalMemberAccess]
            if k is None:
                self._wait(select.POLLIN, t0)
            elif k == 0:
                raise OSError(errno.ECONNRESET)  # the broker closed the connection
            else:
                got += k

    def _take(self, n, t0, keep=False):
        """The next n bytes (keep), or read past them in _CHUNK pieces, allocating nothing."""
        if keep:
            b = bytearray(n)
            if n:
                self._readinto(memoryview(b), t0)
            return b
        mv = memoryview(self._buf)
        while n > 0:
            k = n if n < _CHUNK else _CHUNK
            self._readinto(mv[:k], t0)
            n -= k

    def _u16(self, t0):
        self._readinto(memoryview(self._buf)[:2], t0)
        return self._buf[0] << 8 | self._buf[1]

    def _send(self, first, body, tail=b""):
        """One packet: fixed header (type and flags, remaining length), body, then `tail` (a
        payload written as it is, not copied into the body)."""
        n = len(body) + len(tail)
        h = self._buf
        h[0] = first
        i = 1
        while True:
            h[i] = n & 127
            n >>= 7
            if not n:
                break
            h[i] |= 128
            i += 1
        self._write(memoryview(h)[: i + 1])
        self._write(body)
        if tail:
            self._write(tail)

    # ---- connection ----
    def connect(self, clean_session=True, will=None):
        """will = (topic, payload, retain, qos): the broker publishes it if we vanish."""
        self.close()
        addr = getaddrinfo(self.hal, self.host, self.port)[0][-1]
        s = socket.socket()
        self.sock = s
        try:
            s.setblocking(False)
            self._poll = select.poll()
            self._poll.register(s, select.POLLOUT)
            try:
                s.connect(addr)
            except OSError as e:
                if e.errno != errno.EINPROGRESS:
                    raise
            self._wait(select.POLLOUT, self.hal.ticks_ms())  # connected, or failed: the write raises
            flags = 2 if clean_session else 0
            body = bytearray(b"\x00\x04MQTT\x04\x00")
            body.append(self.keepalive >> 8)
            body.append(self.keepalive & 255)
            _str(body, self.client_id)
            if will:
                flags |= 4 | will[3] << 3 | (32 if will[2] else 0)
                _str(body, will[0])
                _str(body, will[1])
            if self.user is not None:
                flags |= 128
                _str(body, self.user)
                if self.password is not None:
                    flags |= 64
                    _str(body, self.password)
            body[7] = flags
            self._send(0x10, body)
            self._readinto(memoryview(self._buf)[:4], self.hal.ticks_ms())  # CONNACK (bounded wait)
            b = self._buf
            if b[0] != 0x20 or b[1] != 2:
                raise OSError("mqtt: no CONNACK")
            if b[3]:  # 4: bad user name or password, 5: not authorised (3.1.1, 3.2.2.3)
                raise OSError("mqtt: refused, code %d%s" % (b[3], _WHY if b[3] > 3 else ""))
        except Exception:
            self.close()
            raise
        self.rx_ms = self.ping_ms = self.hal.ticks_ms()

    def disconnect(self):
        try:
            self._write(b"\xe0\x00")
        except Exception:
            pass
        self.close()

    def close(self):
        s, self.sock = self.sock, None
        self._poll = None
        if s is not None:
            try:
                s.close()
            except Exception:
                pass

    # ---- out ----
    def publish(self, topic, msg, retain=False, qos=0):
        if qos:
            raise ValueError("mqtt: QoS 0 only")
        body = bytearray()
        _str(body, topic)
        self._send(0x31 if retain else 0x30, body, msg)

    def subscribe(self, topic, qos=1):
        """Subscribe and wait for the SUBACK; PUBLISHes that come first (the retained ones
        may) are handed to the callback meanwhile."""
        self._pid = self._pid % 65535 + 1
        pid = self._pid
        body = bytearray(2)
        body[0] = pid >> 8
        body[1] = pid & 255
        _str(body, topic)
        body.append(qos)
        self._send(0x82, body)
        t0 = self.hal.ticks_ms()
        self._suback = None
        while self._suback is None or self._suback[0] != pid:
            self._packet(t0)  # waits (bounded) for each packet
        if self._suback[1] & 0x80:
            raise OSError("mqtt: subscribe refused")

    # ---- in ----
    def check_msg(self):
        """Handle one incoming packet if there is one (never waits for a packet to start, only
        for the rest of one that did); send PINGREQ when due; raise OSError on a dead link (also
        AttributeError when not connected: the link takes any exception as a lost connection)."""
        t = self.hal.ticks_ms()
        ka = self.keepalive * 1000
        quiet = self.hal.ticks_diff(t, self.rx_ms)
        if quiet >= ka + ka // 2:
            raise OSError("mqtt: broker silent %d s" % (quiet // 1000))
        if self.hal.ticks_diff(t, self.ping_ms) >= ka // 2 and (
            quiet >= ka // 2 or self.hal.ticks_diff(t, self.tx_ms) >= ka // 2
        ):
            self._write(b"\xc0\x00")  # PINGREQ
            self.ping_ms = t
        # nothing there (a non-blocking read gives None)
        if self.sock.readinto(self._buf, 1) is None:  # pyright: ignore[reportOptionalMemberAccess]
            return None
        self._packet(t, True)

    def _packet(self, t0, first_read=False):
        """Read and handle one packet (its first byte already in _buf[0] if first_read)."""
        b = self._buf
        if not first_read:
            self._readinto(memoryview(b)[:1], t0)
        kind = b[0]
        n = 0
        shift = 0
        while True:  # remaining length: 1..4 bytes, 7 bits each
            self._readinto(memoryview(b)[1:2], t0)
            n |= (b[1] & 127) << shift
            if not b[1] & 128:
                break
            shift += 7
            if shift > 21:
                raise OSError("mqtt: bad length")
        self.rx_ms = self.hal.ticks_ms()
        if kind & 0xF0 == 0x30:
            self._publish_in(kind, n, t0)
        elif kind == 0x90 and n == 3:
            pid = self._u16(t0)
            self._readinto(memoryview(b)[:1], t0)
            self._suback = (pid, b[0])
        else:  # PINGRESP, and anything else we did not ask for: read past it
            self._take(n, t0)

    def _publish_in(self, kind, n, t0):
        qos = kind >> 1 & 3
        tl = self._u16(t0)
        n -= 2 + tl + (2 if qos else 0)
        # Larger than the protocol allows (or malformed, n < 0): read past it in small pieces,
        # never allocated, and hand the callback None for both
        keep = tl <= _MAX_TOPIC and 0 <= n <= _MAX_PAYLOAD
        topic = self._take(tl, t0, keep)
        if qos:
            pid = self._u16(t0)
        msg = self._take(n if n > 0 else 0, t0, keep)
        if qos == 1:  # PUBACK, also for a skipped one: an unacknowledged QoS 1 message would
            # hold one of the broker's in-flight slots for this connection
            self._write(bytes((0x40, 2, pid >> 8, pid & 255)))
        if self.cb is not None:
            self.cb(topic, msg)
