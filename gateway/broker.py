"""The embedded MQTT broker: amqtt on 127.0.0.1, for a machine with nothing installed.

`rating gateway run` without `--broker` starts one in the same process (its own thread and
asyncio loop); it is also runnable alone, which the simulator and the test suite use where no
Mosquitto exists:

    python -m gateway.broker --port 1883 --password-file DIR/passwd --acl-file DIR/acl
    python -m gateway.broker --port 1883 --allow-anonymous      # a throwaway test broker only

It enforces the same accounts and topic rules as Mosquitto (gateway/accounts.py,
docs/security.md): no anonymous client unless asked for explicitly, passwords checked against
the `$7$` PBKDF2 hashes, a panel publishes only its own event/state and reads only its own
ack/config, only the gateway writes acks and configs. Its accounts come from the gateway's
database (in-process: re-read every few seconds, the gateway logging in with a password made up
at start and never written anywhere) or from the password and ACL files `rating broker config`
writes for Mosquitto (standalone: re-read on SIGHUP, like Mosquitto).

amqtt 0.12.1 needs four things closed that Mosquitto does itself (each checked by
tests/gateway/test_broker_security.py):
- it looks up, resumes or deletes the session of a CONNECT's client id *before* authenticating
  it: anyone could wipe or hijack the gateway's persistent session. Here the client is
  authenticated first and its client id bound to its username (Mosquitto's
  `use_username_as_clientid`, which the generated config sets too);
- it publishes a client's last will without a topic check: a panel could leave a forged
  retained ack as its will. A will the account may not publish is dropped (Mosquitto checks
  it when sending);
- it hands retained messages to a new subscription without the receive check, and on connect
  sends a client the retained messages of every filter *any* client subscribed: here a client
  gets the retained messages of its own subscriptions, those it may read, and only while their
  publisher still may write them (Mosquitto's `check_retain_source`);
- it has no per-topic rules of its own for receive/publish by account: the plugins below.

amqtt is ~5x slower than Mosquitto (see ../../shared/MQTT-FACTS.md) and keeps sessions and
retained messages in memory only: fine for a demo or one small office; a deployment runs
Mosquitto with the configuration `rating broker config` writes. amqtt's defaults bind 0.0.0.0
and load $SYS and packet logging plugins; here the listener is loopback unless told otherwise.
"""

import argparse
import asyncio
import hashlib
import hmac
import logging
import secrets
import signal
import socket
import threading
from dataclasses import dataclass
from typing import Any

from amqtt.broker import Broker
from amqtt.contexts import Action
from amqtt.errors import MQTTError
from amqtt.mqtt.protocol.broker_handler import BrokerProtocolHandler
from amqtt.plugins.base import BaseAuthPlugin, BaseTopicPlugin
from amqtt.utils import gen_client_id

from gateway import accounts as acc

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 1883
RELOAD_S = 2.0  # the in-process broker re-reads the accounts from the database this often
REFUSED_ID = "rating-refused-login"  # the one session id refused logins share (no memory growth)

log = logging.getLogger("gateway.broker")


class Book:
    """The rules the plugins enforce, swapped whole on a reload; with caches of verified logins
    (a reconnect storm does not redo PBKDF2 for every panel) and of topic decisions (amqtt asks
    for every message and subscriber). Caches live and die with one Rules object."""

    MAX_CACHED = 20000

    def __init__(self, rules):
        self._key = secrets.token_bytes(32)  # keys the login cache: no password kept in memory
        self._state = (rules, {}, {})

    @property
    def rules(self):
        return self._state[0]

    def set(self, rules):
        """Use `rules` from now on; True when they differ from the current ones."""
        if rules == self._state[0]:
            return False
        self._state = (rules, {}, {})
        return True

    def _tag(self, username, password):
        return hmac.new(self._key, ("%s\0%s" % (username, password)).encode("utf-8"), hashlib.sha256).digest()

    async def login(self, username, password):
        rules, logins, _decisions = self._state
        hashed = rules.hashes.get(username) if username else None
        if not hashed or not password:
            return False
        tag = self._tag(username, password)
        if hmac.compare_digest(logins.get(username, b""), tag):
            return True
        # PBKDF2 releases the GIL: the broker's loop keeps serving the others meanwhile
        ok = await asyncio.get_running_loop().run_in_executor(None, acc.verify_password, password, hashed)
        if ok:
            if len(logins) > self.MAX_CACHED:
                logins.clear()
            logins[username] = tag
        return ok

    def may(self, username, access, topic):
        rules, _logins, decisions = self._state
        key = (username, access, topic)
        found = decisions.get(key)
        if found is None:
            found = rules.may(username, access, topic)
            if len(decisions) > self.MAX_CACHED:
                decisions.clear()
            decisions[key] = found
        return found

    def may_subscribe(self, username, topic_filter):
        return self._state[0].may_subscribe(username, topic_filter)


class AccountAuthPlugin(BaseAuthPlugin):
    """Only accounts of the Book log in, with their password; a last will the account may not
    publish is dropped."""

    @dataclass
    class Config:
        book: Any = None

    async def authenticate(self, *, session):
        book = self._get_config_option("book")
        username = session.username if session else None
        if book is None or not await book.login(username, session.password):
            if username:
                log.info("refused login as %r (no such account or a wrong password)", username)
            else:
                log.info("refused an anonymous login")
            return False
        if session.will_flag and not book.may(username, "write", session.will_topic or ""):
            log.warning("%s: last will on %r dropped: the account may not publish there", username, session.will_topic)
            session.will_flag = False
        return True


class AccountTopicPlugin(BaseTopicPlugin):
    """Publish, subscribe and receive as the account's rules say."""

    @dataclass
    class Config:
        book: Any = None

    async def topic_filtering(self, *, session=None, topic=None, action=None):
        return self.decide(self._get_config_option("book"), session, topic, action)

    @staticmethod
    def decide(book, session, topic, action):
        username = session.username if session else None
        if book is None or not topic:
            return False
        if action == Action.PUBLISH:
            ok = book.may(username, "write", topic)
            if not ok:
                log.info("%s may not publish on %s: dropped", username, topic)
            return ok
        if action == Action.RECEIVE:
            return book.may(username, "read", topic)
        if action == Action.SUBSCRIBE:
            return book.may_subscribe(username, topic)
        return False


class SecuredBroker(Broker):
    """amqtt's Broker with the session and retained-message holes closed (module docstring)."""

    def __init__(self, config, loop=None, book=None):
        super().__init__(config, loop=loop)
        self.book = book  # None: anonymous test broker (no account rules)

    async def _topic_filtering(self, session, topic, action):
        # The same decision as AccountTopicPlugin, without amqtt's task per plugin per call: it
        # is asked for every message and every subscriber (measured: bench/broker_auth.py).
        if self.book is not None:
            return AccountTopicPlugin.decide(self.book, session, topic, action)
        return await super()._topic_filtering(session, topic, action)

    async def _initialize_client_session(self, reader, writer, remote_address, remote_port):
        try:
            handler, session = await BrokerProtocolHandler.init_from_connect(reader, writer, self.plugins_manager)
        except MQTTError:
            await writer.close()
            raise
        if not await self._authenticate(session, None):  # type: ignore[arg-type]
            # refused: touch no real session; _handle_client_session refuses it again and
            # sends the CONNACK (the password is gone, so no second PBKDF2)
            session.client_id = REFUSED_ID
            session.clean_session = True
            session.will_flag = False
            session.password = None
            session.parent = 0
            return handler, session
        if self.book is not None and session.username:
            session.client_id = session.username  # one session per account
        if session.clean_session:
            if session.client_id:
                await self._delete_session(session.client_id)
            else:
                session.client_id = gen_client_id()
            session.parent = 0
        elif session.client_id in self._sessions:
            old = self._sessions[session.client_id][0]
            for name in ("will_flag", "will_message", "will_topic", "will_qos", "keep_alive", "username", "password"):
                setattr(old, name, getattr(session, name))
            session = old
            session.parent = 1
        else:
            session.parent = 0
        delay = self.config.get("timeout-disconnect-delay", 0)
        if session.keep_alive > 0 and isinstance(delay, int):
            session.keep_alive += delay
        return handler, session

    async def _publish_retained_messages_for_subscription(self, subscription, session):
        topic_filter, qos = subscription
        handler = self._get_handler(session)
        # amqtt calls this on connect for every filter any client subscribed: only the session's own
        if handler is None or all(
            s.client_id != session.client_id for s, _q in self._subscriptions.get(topic_filter, ())
        ):
            return
        sends = []
        for topic, retained in list(self._retained_messages.items()):
            if not self._matches(topic, topic_filter) or not self._retained_visible(session, retained):
                continue
            sends.append(
                asyncio.ensure_future(
                    handler.mqtt_publish(retained.topic, retained.data, min(qos, retained.qos or qos), retain=True)
                )
            )
        if sends:
            await asyncio.wait(sends)

    async def drop_invalid_logins(self, usernames):
        """Like Mosquitto on a reload: a connected client of `usernames` whose login no longer
        holds (revoked, password changed) is disconnected, without its will."""
        if self.book is None:
            return
        for client_id, (session, handler) in list(self._sessions.items()):
            if client_id == REFUSED_ID or session.username not in usernames:
                continue
            if session.transitions.state != "connected" or await self.book.login(session.username, session.password):
                continue
            log.info("%s: login no longer valid; disconnected", session.username)
            session.will_flag = False
            await handler.handle_connection_closed()
            await handler.stop()

    def _retained_visible(self, session, retained):
        if self.book is None:
            return True
        if not self.book.may(session.username, "read", retained.topic):
            return False
        source = retained.source_session
        return source is None or self.book.may(source.username, "write", retained.topic)


def broker_config(host=DEFAULT_HOST, port=DEFAULT_PORT, book=None):
    """amqtt's configuration: one TCP listener, the account plugins (or, with book=None, the
    anonymous plugin of a throwaway test broker)."""
    listeners = {"default": {"type": "tcp", "bind": "%s:%d" % (host, port)}}
    if book is None:
        plugins = {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}}
    else:
        plugins = {
            "gateway.broker.AccountAuthPlugin": {"book": book},
            "gateway.broker.AccountTopicPlugin": {"book": book},
        }
    return {"listeners": listeners, "plugins": plugins}


class _DbSource:
    """The accounts in the gateway's database plus the in-process gateway's own login; its own
    connection, used only from the broker's thread pool, one call at a time."""

    def __init__(self, db_url, root, extra):
        self.db_url = db_url
        self.root = root
        self.extra = list(extra)
        self.db = None

    def __call__(self):
        from gateway import schema

        if self.db is None:
            self.db = schema.open_database(self.db_url)
        return acc.rules_from_db(self.db, self.root, self.extra)

    def close(self):
        if self.db is not None:
            self.db.close()
            self.db = None


class EmbeddedBroker:
    """An amqtt broker running on its own thread; start() returns once it accepts connections.

    Accounts: `rules` (an accounts.Rules; `set_rules` swaps them), or `source` (a callable
    returning Rules, called at start and every `reload_s` seconds), or `allow_anonymous=True`
    for a throwaway test broker. `for_gateway()` builds the in-process broker of
    `rating gateway run`."""

    START_TIMEOUT_S = 15

    def __init__(self, host=DEFAULT_HOST, port=DEFAULT_PORT, rules=None, source=None, allow_anonymous=False):
        if rules is None and source is None and not allow_anonymous:
            raise ValueError("an embedded broker needs accounts (rules or source) or allow_anonymous=True")
        self.host = host
        self.port = port
        self.url = "mqtt://%s:%d" % (host, port)
        self.source = source
        self.book = None if allow_anonymous else Book(rules if rules is not None else acc.Rules({}, {}))
        self.gateway_login: tuple[str, str] | None = None  # (username, password): the in-process gateway
        self.reload_s = RELOAD_S
        self._loop = None
        self._broker = None
        self._thread = None
        self._ready = threading.Event()
        self._error = None
        self._reload_failed = False
        self._poll_task = None

    @classmethod
    def for_gateway(cls, port, db_url, root, host=DEFAULT_HOST):
        """The broker `rating gateway run` starts without --broker: the accounts of its database,
        and a gateway login made up now that lives only in this process's memory."""
        secret = acc.new_secret()
        me = acc.Account("gateway", acc.hash_password(secret), ver=1)
        source = _DbSource(db_url, root, [me])
        broker = cls(host, port, rules=source(), source=source)
        broker.gateway_login = ("gateway", secret)
        return broker

    def set_rules(self, rules):
        """Use `rules` from now on; connected clients whose password changed or went away are
        disconnected (as Mosquitto does on a reload)."""
        if self.book is None:
            raise ValueError("this broker was started without accounts (allow_anonymous)")
        old = self.book.rules
        if not self.book.set(rules):
            return
        log.info("embedded broker: %d account(s) loaded", len(rules))
        changed = {u for u in set(old.hashes) | set(rules.hashes) if old.hashes.get(u) != rules.hashes.get(u)}
        if changed and self._loop is not None and self._broker is not None:
            asyncio.run_coroutine_threadsafe(self._broker.drop_invalid_logins(changed), self._loop)

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
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)

        async def boot() -> None:
            broker = SecuredBroker(broker_config(self.host, self.port, self.book), loop=loop, book=self.book)
            self._broker = broker
            await broker.start()

        try:
            loop.run_until_complete(boot())
        except Exception as exc:  # port taken, bad config
            self._error = exc
            self._ready.set()
            loop.close()
            return
        if self.source is not None:
            self._poll_task = loop.create_task(self._poll())
        self._ready.set()
        loop.run_forever()
        loop.close()

    async def _poll(self):
        while True:
            await asyncio.sleep(self.reload_s)
            try:
                rules = await asyncio.get_running_loop().run_in_executor(None, self.source)  # type: ignore[arg-type]
            except Exception as exc:  # the database is away: keep the accounts we have
                if not self._reload_failed:
                    log.warning("embedded broker: cannot re-read the accounts (%s); keeping the loaded ones", exc)
                self._reload_failed = True
                continue
            self._reload_failed = False
            self.set_rules(rules)

    def stop(self):
        loop, broker, thread = self._loop, self._broker, self._thread
        if not loop or not broker:
            return

        async def down() -> None:
            if self._poll_task is not None:
                self._poll_task.cancel()
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
        if isinstance(self.source, _DbSource):
            self.source.close()

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
    from gateway import brokerconf

    parser = argparse.ArgumentParser(
        prog="python -m gateway.broker",
        description=(
            "Run the embedded MQTT broker (amqtt) until SIGTERM/SIGINT. Accounts come from the "
            "password and ACL files `rating broker config` writes (re-read on SIGHUP)."
        ),
    )
    parser.add_argument(
        "--host", default=DEFAULT_HOST, help="address to listen on (default %(default)s: this machine only)"
    )
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="TCP port (default %(default)s)")
    parser.add_argument("--password-file", metavar="FILE", help="Mosquitto password file ($7$ hashes)")
    parser.add_argument("--acl-file", metavar="FILE", help="Mosquitto ACL file (user blocks of topic rules)")
    parser.add_argument(
        "--allow-anonymous",
        action="store_true",
        help="let anyone connect and do anything: a throwaway test broker only",
    )
    args = parser.parse_args(argv)
    if args.allow_anonymous and not (args.host == "localhost" or args.host == "::1" or args.host.startswith("127.")):
        parser.exit(2, "error: --allow-anonymous only on a loopback address (127.0.0.1); others need accounts\n")
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    files = (args.password_file, args.acl_file)
    if args.allow_anonymous == any(files) or (any(files) and not all(files)):
        parser.exit(
            2,
            "error: give --password-file and --acl-file (`rating broker config --out DIR` writes them), "
            "or --allow-anonymous for a throwaway test broker\n",
        )
    try:
        rules = None if args.allow_anonymous else brokerconf.rules_from_files(*files)
        broker = EmbeddedBroker(args.host, args.port, rules=rules, allow_anonymous=args.allow_anonymous)
        broker.start()
    except (OSError, brokerconf.BrokerConfError) as exc:
        parser.exit(2, "error: %s\n" % exc)
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())

    def reload(*_):
        try:
            broker.set_rules(brokerconf.rules_from_files(*files))
        except brokerconf.BrokerConfError as exc:  # like Mosquitto: a bad file keeps the old rules
            log.error("reload failed, keeping the loaded accounts: %s", exc)

    if not args.allow_anonymous:
        signal.signal(signal.SIGHUP, reload)
    print("embedded MQTT broker listening on %s" % broker.url, flush=True)
    while not done.wait(1):
        pass
    broker.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
