"""The device's MQTT client: umqtt.simple (micropython-lib, installed by the bundle) with socket
timeouts and the HAL's client interface. Device and unix port only: `hal.mqtt()` imports it
on the first connect (simulator/host_hal.PahoClient is the CPython twin).

    c = MqttClient(client_id, host, port, user, password, keepalive, ssl)
    c.connect(clean_session=True, will=(topic, payload, retain, qos))
    c.publish(topic, payload, retain, qos) / subscribe(topic, qos) / set_callback(cb) /
    c.check_msg() / ping()                  umqtt.simple's own (inherited, not wrapped)
    c.disconnect() / close()                close() drops the socket without DISCONNECT

Every failure raises (OSError, MQTTException, AssertionError from a torn packet): the link
treats any exception as "connection lost". A subclass rather than a wrapper: each wrapper
method would cost the panel ~250 bytes of heap for nothing.
"""
import socket

from umqtt import simple

TIMEOUT_S = 3  # per socket operation; a LAN broker answers in milliseconds


class TimedSocket:
    """Wraps umqtt.simple's socket so that 'blocking' means 'blocking with a timeout'.

    umqtt.simple switches its socket to fully blocking after the first byte of every incoming
    packet and writes with no timeout; on a half-dead link that would freeze the button loop
    forever. Here setblocking(True) becomes settimeout(TIMEOUT_S): a stuck read or write raises
    OSError(ETIMEDOUT) and the link reconnects.
    """

    def __init__(self, sock):
        self.sock = sock
        self.setblocking(True)

    def setblocking(self, flag):
        if flag:
            try:
                self.sock.settimeout(TIMEOUT_S)
            except (AttributeError, OSError):  # an SSL socket without settimeout
                self.sock.setblocking(True)
        else:
            self.sock.setblocking(False)

    def read(self, n):
        return self.sock.read(n)

    def write(self, buf, n=None):
        if n is None:
            return self.sock.write(buf)
        return self.sock.write(buf, n)

    def close(self):
        self.sock.close()


class _Sockets:
    """Stands in for the `socket` module inside umqtt.simple: every socket it makes has the
    timeout before connect(), so an unreachable broker fails after TIMEOUT_S."""

    getaddrinfo = staticmethod(socket.getaddrinfo)

    @staticmethod
    def socket(*args):
        s = socket.socket(*args)
        s.settimeout(TIMEOUT_S)
        return s


setattr(simple, "socket", _Sockets)


class MqttClient(simple.MQTTClient):
    TIMEOUT_S = TIMEOUT_S

    def connect(self, clean_session=True, will=None):
        """will = (topic, payload, retain, qos): the broker publishes it if we vanish."""
        if will:
            self.set_last_will(will[0], will[1], will[2], will[3])
        try:
            simple.MQTTClient.connect(self, clean_session)
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
