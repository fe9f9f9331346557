"""Serving the console: in the foreground (`rating web`) or in a thread (`rating demo`, tests)."""

import socket
import threading
import time


class Running:
    """A console served from a background thread; `url`, `stop()`."""

    def __init__(self, server, thread, url):
        self.server, self.thread, self.url = server, thread, url

    def stop(self, timeout=10):
        self.server.should_exit = True
        self.thread.join(timeout)


def _config(app, log_level):
    import uvicorn

    # access logs stay off: a URL may carry a search a person typed; errors still go to stderr
    return uvicorn.Config(app, log_level=log_level, access_log=False, lifespan="off", server_header=False)


def start(db_url, host="127.0.0.1", port=0, lang=None, log_level="warning"):
    """Serve the console on host:port (0: a free port) from a daemon thread; returns Running."""
    import uvicorn

    from console.web import create_app

    app = create_app(db_url, lang)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    server = uvicorn.Server(_config(app, log_level))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="console", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.02)
    if not server.started:
        server.should_exit = True
        raise RuntimeError("the console did not start within 15 s")
    return Running(server, thread, "http://%s:%d" % (host, sock.getsockname()[1]))


def serve(db_url, host, port, lang=None, log_level="warning"):
    """Serve in the foreground until Ctrl-C / SIGTERM."""
    import uvicorn

    from console.web import create_app

    app = create_app(db_url, lang)
    config = _config(app, log_level)
    config.host, config.port = host, port
    uvicorn.Server(config).run()
