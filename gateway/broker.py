"""The embedded MQTT broker: amqtt on 127.0.0.1, for a machine with nothing installed.

`rating gateway run` without `--broker` starts one in the same process (its own thread and
asyncio loop). It is also runnable alone, which the test suite uses where no Mosquitto exists:

    python -m gateway.broker --port 1883 [--host 127.0.0.1]

amqtt is ~5x slower than Mosquitto (see ../../shared/MQTT-FACTS.md) and keeps sessions and
retained messages in memory only: fine for a demo or one small office; a deployment runs
Mosquitto with gateway/mosquitto.conf. amqtt's defaults bind 0.0.0.0 and load $SYS and packet
logging plugins; here the listener is loopback unless told otherwise and only anonymous
authentication is loaded.
"""

import argparse
import asyncio
import logging
import signal
import socket
import threading

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 1883


def broker_config(host=DEFAULT_HOST, port=DEFAULT_PORT):
    return {
        "listeners": {"default": {"type": "tcp", "bind": "%s:%d" % (host, port)}},
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
    }


class EmbeddedBroker:
    """An amqtt broker running on its own thread; start() returns once it accepts connections."""

    START_TIMEOUT_S = 15

    def __init__(self, host=DEFAULT_HOST, port=DEFAULT_PORT):
        self.host = host
        self.port = port
        self.url = "mqtt://%s:%d" % (host, port)
        self._loop = None
        self._broker = None
        self._thread = None
        self._ready = threading.Event()
        self._error = None

    def start(self):
        # amqtt logs every connection at INFO and shutdown noise at ERROR; keep only real warnings
        logging.getLogger("amqtt").setLevel(logging.WARNING)
        logging.getLogger("transitions").setLevel(logging.WARNING)
        if not _port_free(self.host, self.port):
            raise OSError(
                "port %s:%d is already in use: stop what uses it or choose another "
                "port (--broker-port)" % (self.host, self.port)
            )
        self._thread = threading.Thread(target=self._run, name="embedded-broker", daemon=True)
        self._thread.start()
        if not self._ready.wait(self.START_TIMEOUT_S) or self._error:
            raise OSError(
                "embedded MQTT broker did not start on %s:%d: %s" % (self.host, self.port, self._error or "timeout")
            )
        return self

    def _run(self):
        from amqtt.broker import Broker

        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)

        async def boot() -> None:
            broker = Broker(broker_config(self.host, self.port), loop=loop)
            self._broker = broker
            await broker.start()

        try:
            loop.run_until_complete(boot())
        except Exception as exc:  # port taken, bad config
            self._error = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        loop.run_forever()
        loop.close()

    def stop(self):
        loop, broker, thread = self._loop, self._broker, self._thread
        if not loop or not broker:
            return

        async def down() -> None:
            try:
                await asyncio.wait_for(broker.shutdown(), 5)
            except Exception:  # best effort: the process is going away anyway
                pass
            loop.stop()

        if loop.is_running():
            asyncio.run_coroutine_threadsafe(down(), loop)
            if thread is not None:
                thread.join(10)
        self._broker = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def _port_free(host, port):
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m gateway.broker", description="Run the embedded MQTT broker (amqtt) until SIGTERM/SIGINT."
    )
    parser.add_argument(
        "--host", default=DEFAULT_HOST, help="address to listen on (default %(default)s: this machine only)"
    )
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="TCP port (default %(default)s)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    broker = EmbeddedBroker(args.host, args.port)
    try:
        broker.start()
    except OSError as exc:
        parser.exit(2, "error: %s\n" % exc)
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    print("embedded MQTT broker listening on %s" % broker.url, flush=True)
    while not done.wait(1):
        pass
    broker.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
