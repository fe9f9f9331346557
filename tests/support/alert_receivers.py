"""Real receivers for the alert channels, started by the tests on loopback ports: a minimal SMTP
server (plain stdlib sockets, RFC 5321's commands smtplib uses; no STARTTLS, so a sender that
insists on it must fail) and an HTTP webhook receiver that can be down for a while."""

import http.server
import json
import socket
import socketserver
import threading
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SmtpServer:
    """Accepts mail from anyone; `messages` holds (mail_from, [rcpt_to], data bytes).
    `data_delay` (s): a slow server, holding each message that long before it takes it (two
    senders racing are both inside a send); `hold_banner`: while True, a client connecting gets
    no greeting (a sender stuck in its send, to be killed there)."""

    def __init__(self, port=None, data_delay=0.0):
        self.messages = []
        self.port = port or free_port()
        self.data_delay = data_delay
        self.hold_banner = False
        outer = self

        class Handler(socketserver.StreamRequestHandler):
            def reply(self, line):
                self.wfile.write(line.encode() + b"\r\n")

            def handle(self):
                while outer.hold_banner:
                    time.sleep(0.05)
                self.reply("220 test SMTP ready")
                mail_from, rcpt = None, []
                while True:
                    line = self.rfile.readline()
                    if not line:
                        return
                    verb = line.decode(errors="replace").strip()
                    upper = verb.upper()
                    if upper.startswith(("EHLO", "HELO")):
                        self.reply("250 test")
                    elif upper.startswith("MAIL FROM:"):
                        mail_from, rcpt = verb[10:].strip(), []
                        self.reply("250 OK")
                    elif upper.startswith("RCPT TO:"):
                        rcpt.append(verb[8:].strip())
                        self.reply("250 OK")
                    elif upper == "DATA":
                        self.reply("354 end with <CRLF>.<CRLF>")
                        data = b""
                        while not data.endswith(b"\r\n.\r\n"):
                            chunk = self.rfile.readline()
                            if not chunk:
                                return
                            data += chunk
                        time.sleep(outer.data_delay)
                        outer.messages.append((mail_from, rcpt, data[:-5]))
                        self.reply("250 queued")
                    elif upper in ("RSET", "NOOP"):
                        self.reply("250 OK")
                    elif upper == "QUIT":
                        self.reply("221 bye")
                        return
                    else:
                        self.reply("502 not implemented")

        class Server(socketserver.ThreadingTCPServer):
            allow_reuse_address = True
            daemon_threads = True

        self._server = Server(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self):
        self._server.shutdown()
        self._server.server_close()


class WebhookReceiver:
    """Records every POST (headers, body). `start()` / `stop()` take it up and down on the same
    port; `fail_once` makes it answer 503 to the first request of each idempotency key after
    storing it (a receiver that got the message but whose answer was lost)."""

    def __init__(self, fail_once=False, delay=0.0):
        self.delay = delay  # s before answering each request (two senders racing both send)
        self.port = free_port()
        self.url = "http://127.0.0.1:%d/hook" % self.port
        self.requests = []
        self.fail_once = fail_once
        self._failed = set()
        self._server = None

    def start(self):
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                time.sleep(outer.delay)
                outer.requests.append((dict(self.headers), body))
                key = self.headers.get("X-Rating-Idempotency-Key")
                if outer.fail_once and key not in outer._failed:
                    outer._failed.add(key)
                    self.send_response(503)
                else:
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        class Server(http.server.ThreadingHTTPServer):
            allow_reuse_address = True
            daemon_threads = True

        self._server = Server(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self):
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def keys(self):
        return [h["X-Rating-Idempotency-Key"] for h, _b in self.requests]

    def bodies(self):
        return [json.loads(b) for _h, b in self.requests]
