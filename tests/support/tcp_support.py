"""TCP helpers for the firmware's network tests: a scripted MQTT peer (every byte the client
sends is checked) and a proxy that can go silent (a half-open connection).

    peer = ScriptedPeer(script)        # script: [("expect", bytes) | ("send", bytes) | ("serve",)]
    peer.port; peer.join(); peer.errors; peer.got (all bytes received); peer.pings
    proxy = FreezingProxy(broker_port, freeze_after_s=None); proxy.port; proxy.freeze(); proxy.close()
    proxy = CuttableProxy(port); proxy.cut(); proxy.restore(): a link that goes away and comes back
"""

import select
import socket
import threading
import time


def mqtt_str(s):
    """An MQTT string: 2-byte length, then the bytes (MQTT 3.1.1, 1.5.3)."""
    b = s.encode() if isinstance(s, str) else bytes(s)
    return len(b).to_bytes(2, "big") + b


def packet(first, body):
    """A whole MQTT packet: first byte, remaining length (1..4 bytes, 7 bits each), body."""
    n = len(body)
    rl = bytearray()
    while True:
        byte = n & 127
        n >>= 7
        rl.append(byte | (128 if n else 0))
        if not n:
            break
    return bytes([first]) + bytes(rl) + bytes(body)


class ScriptedPeer:
    """Accepts one connection and plays `script`; a mismatch is recorded in `errors` (the
    expected and the received bytes) and ends the script. ("serve",) then answers PINGREQ with
    PINGRESP until DISCONNECT (counted in `pings`) or the connection ends."""

    TIMEOUT_S = 10

    def __init__(self, script):
        self.script = script
        self.errors = []
        self.got = b""
        self.pings = 0
        self.disconnected = False
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _read(self, conn, n):
        data = b""
        deadline = time.monotonic() + self.TIMEOUT_S
        while len(data) < n and time.monotonic() < deadline:
            conn.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = conn.recv(n - len(data))
            except TimeoutError:
                break
            if not chunk:
                break
            data += chunk
        self.got += data
        return data

    def _run(self):
        self.sock.settimeout(self.TIMEOUT_S)
        try:
            conn, _ = self.sock.accept()
        except OSError as exc:
            self.errors.append("no connection: %s" % exc)
            return
        with conn:
            for item in self.script:
                if item[0] == "send":
                    conn.sendall(item[1])
                elif item[0] == "expect":
                    data = self._read(conn, len(item[1]))
                    if data != item[1]:
                        self.errors.append("expected %s, got %s" % (item[1].hex(" "), data.hex(" ")))
                        return
                elif item[0] == "serve":
                    self._serve(conn)
            # read until the client closes: closing with its bytes unread would send an RST,
            # which can overtake what was sent last
            while self._read(conn, 1):
                pass

    def _serve(self, conn):
        while True:
            head = self._read(conn, 2)
            if head == b"\xc0\x00":
                self.pings += 1
                conn.sendall(b"\xd0\x00")
            elif head == b"\xe0\x00":
                self.disconnected = True
                return
            else:
                if head:
                    self.errors.append("unexpected %s" % head.hex(" "))
                return

    def join(self):
        self.thread.join(self.TIMEOUT_S + 5)
        self.sock.close()


class FreezingProxy:
    """Forwards TCP connections to 127.0.0.1:`target`. freeze() (or freeze_after_s after the
    first connection) makes the connections open at that moment go silent both ways, without a
    FIN or RST: what a client sees when its access point vanishes. Later connections forward."""

    def __init__(self, target, freeze_after_s=None):
        self.target = target
        self.freeze_after_s = freeze_after_s
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.pairs = []  # [client, upstream, frozen]
        self.connections = 0
        self.closed = False
        self.first_at = None
        threading.Thread(target=self._run, daemon=True).start()

    def freeze(self):
        for pair in self.pairs:
            pair[2] = True

    def _run(self):
        while not self.closed:
            socks = [self.sock] + [s for p in self.pairs if not p[2] for s in p[:2]]
            try:
                ready, _, _ = select.select(socks, [], [], 0.05)
            except (OSError, ValueError):
                return
            if self.freeze_after_s is not None and self.first_at is not None:
                if time.monotonic() - self.first_at >= self.freeze_after_s:
                    self.freeze()
                    self.freeze_after_s = None
            for s in ready:
                if s is self.sock:
                    self._accept()
                else:
                    self._forward(s)

    def _accept(self):
        try:
            c, _ = self.sock.accept()
            u = socket.create_connection(("127.0.0.1", self.target))
        except OSError:
            return
        self.pairs.append([c, u, False])
        self.connections += 1
        if self.first_at is None:
            self.first_at = time.monotonic()

    def _forward(self, s):
        for pair in self.pairs:
            if s in pair[:2] and not pair[2]:
                other = pair[1] if s is pair[0] else pair[0]
                try:
                    data = s.recv(65536)
                    if data:
                        other.sendall(data)
                        return
                except OSError:
                    pass
                for x in pair[:2]:
                    x.close()
                self.pairs.remove(pair)
                return

    def close(self):
        self.closed = True
        for pair in self.pairs:
            for x in pair[:2]:
                try:
                    x.close()
                except OSError:
                    pass
        self.sock.close()


class CuttableProxy:
    """A TCP forwarder to 127.0.0.1:`target` whose link can be cut (every connection closed, new
    ones refused: a WAN outage) and restored on the same port.

    proxy = CuttableProxy(port); proxy.port; proxy.cut(); proxy.restore(); proxy.close()"""

    def __init__(self, target):
        self.target = target
        self.port = None
        self._lock = threading.Lock()
        self._conns = []
        self._listener = None
        self.restore()

    def restore(self):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port or 0))
        sock.listen(16)
        self.port = sock.getsockname()[1]
        self._listener = sock
        threading.Thread(target=self._accept, args=(sock,), daemon=True).start()

    def _accept(self, listener):
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut or closed
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target), timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self):
        if self._listener is not None:
            try:  # wakes the thread blocked in accept() (close alone does not, on Linux)
                self._listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._listener.close()
            self._listener = None
        with self._lock:
            conns, self._conns = self._conns, []
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def close(self):
        self.cut()
