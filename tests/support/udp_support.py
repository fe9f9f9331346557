"""A UDP server on a free loopback port that answers every datagram (test NTP and DNS servers).

server = UdpResponder(lambda data: reply_bytes)   # an own thread; server.port
server.queries                                    # datagrams received
server.close()
"""

import socket
import threading


class UdpResponder:
    def __init__(self, answer):
        self.answer = answer
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.queries = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stop.is_set():
            try:
                data, addr = self.sock.recvfrom(512)
            except OSError:
                continue
            self.queries += 1
            self.sock.sendto(self.answer(data), addr)

    def close(self):
        self.stop.set()
        self.thread.join(2)
        self.sock.close()
