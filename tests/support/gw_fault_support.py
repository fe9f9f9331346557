"""Real faults for the gateway's tests: a small disk that fills up (tmpfs, root only), a
PostgreSQL role whose privileges can be revoked, a database made read-only, a table gone.

Each helper makes the real thing happen to the real database; nothing is patched."""

import contextlib
import os
import shutil
import subprocess
import tempfile
import threading
import time
import uuid

import pytest


@contextlib.contextmanager
def small_disk(path, size_kb):
    """A tmpfs of `size_kb` mounted on `path` (created), for disk-full tests; skips the test
    where this process may not mount (not root, or a container without the capability).
    grow(size_kb) plays the operator who frees space."""
    os.makedirs(path, exist_ok=True)
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("a full disk needs a small tmpfs: run as root (CI does)")
    out = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=%dk,mode=0777" % size_kb, "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        pytest.skip("cannot mount a tmpfs here: %s" % out.stderr.strip())

    def grow(kb):
        subprocess.run(["mount", "-o", "remount,size=%dk" % kb, str(path)], check=True)

    try:
        yield grow
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def fill_sqlite(path):
    """Fill the file system holding the SQLite file `path` (a table of its own) until SQLite
    says the disk is full."""
    import sqlite3

    conn = sqlite3.connect(str(path), isolation_level=None, timeout=15)
    conn.execute("CREATE TABLE IF NOT EXISTS filler (x BLOB)")
    try:
        for _ in range(100000):
            conn.execute("INSERT INTO filler VALUES (?)", (os.urandom(16000),))
    except sqlite3.OperationalError as exc:
        assert "full" in str(exc), exc
    else:
        raise AssertionError("the small disk never filled up")
    finally:
        conn.close()


@contextlib.contextmanager
def pg_admin(pg_url):
    """A superuser connection to the test database (autocommit)."""
    import psycopg

    with psycopg.connect(pg_url, autocommit=True) as conn:
        yield conn


@contextlib.contextmanager
def pg_gateway_role(pg_url):
    """A login role with the rights a deployment grants the gateway (every table of the
    migrated test database); yields its URL. Dropped again afterwards (roles are per cluster).
    Skips where the test account may not create roles."""
    import psycopg

    role = "rating_gw_%s" % uuid.uuid4().hex[:10]
    with pg_admin(pg_url) as admin:
        try:
            admin.execute("CREATE ROLE %s LOGIN PASSWORD 'gw'" % role)
        except psycopg.Error as exc:
            pytest.skip("the PostgreSQL test account may not create roles: %s" % exc)
        try:
            admin.execute("GRANT ALL ON ALL TABLES IN SCHEMA public TO %s" % role)
            admin.execute("GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO %s" % role)
            base, db = pg_url.rsplit("/", 1)
            host = base.split("@", 1)[1]
            yield "postgresql://%s:gw@%s/%s" % (role, host, db), role
        finally:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (role,))
            admin.execute("DROP OWNED BY %s" % role)
            admin.execute("DROP ROLE IF EXISTS %s" % role)


def pg_reachable_dir():
    """An empty folder the PostgreSQL server's user can reach (pytest's tmp_path is private)."""
    path = tempfile.mkdtemp(prefix="rating-pgdisk-")
    os.chmod(path, 0o755)
    return path


def pg_small_tablespace(admin, path, tables):
    """Move `tables` (and their indexes) of the test database onto the small disk at `path`."""
    os.chown(path, *_postgres_ids())
    name = "small_%s" % uuid.uuid4().hex[:8]
    admin.execute("CREATE TABLESPACE %s LOCATION '%s'" % (name, path))
    for table in _with_partitions(admin, tables):
        admin.execute("ALTER TABLE %s SET TABLESPACE %s" % (table, name))
        for row in admin.execute("SELECT indexname FROM pg_indexes WHERE tablename = %s", (table,)).fetchall():
            admin.execute("ALTER INDEX %s SET TABLESPACE %s" % (row[0], name))
    return name


def pg_fill(admin):
    """Fill the small disk under raw_events (rows of the site 'fill') until nothing fits."""
    try:
        admin.execute(
            "INSERT INTO raw_events SELECT 'fill', 'x', g, 1, 0, NULL, 'yes', NULL, 0, repeat('x', 2000)"
            " FROM generate_series(1, 100000) g"
        )
    except Exception as exc:
        assert "space" in str(exc), exc
    else:
        raise AssertionError("the small disk never filled up")
    # what fitted in a half-written page was rolled back and is reusable: small rows into it
    for i in range(200000):
        try:
            admin.execute("INSERT INTO raw_events VALUES ('fill', 'y', %s, 1, 0, NULL, 'yes', NULL, 0, 'x')", (i,))
        except Exception:
            return
    raise AssertionError("the small disk never filled up")


def _with_partitions(admin, tables):
    """`tables` and their partitions (raw_events is partitioned by month on PostgreSQL: a table
    space set on the parent only applies to partitions made later)."""
    out = []
    for table in tables:
        out.append(table)
        rows = admin.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = to_regclass(%s)",
            (table,),
        ).fetchall()
        out += [r[0] for r in rows]
    return out


def pg_drop_tablespace(admin, name, tables):
    for table in _with_partitions(admin, tables):
        admin.execute("ALTER TABLE %s SET TABLESPACE pg_default" % table)
        for row in admin.execute("SELECT indexname FROM pg_indexes WHERE tablename = %s", (table,)).fetchall():
            admin.execute("ALTER INDEX %s SET TABLESPACE pg_default" % row[0])
    admin.execute("DROP TABLESPACE IF EXISTS %s" % name)


def _postgres_ids():
    import pwd

    try:
        pw = pwd.getpwnam("postgres")
    except KeyError:
        pytest.skip("no postgres system user to own the tablespace folder")
    return pw.pw_uid, pw.pw_gid


# ---- fault runs: panels that press and resend like the firmware, against the real gateway ------


class StockBroker:
    """Mosquitto as Debian installs it: default queue limit (1000 messages a session), no
    persistence - a restart loses every session, queued message and retained ack and config."""

    def __init__(self):
        from simulator.services import free_port, mosquitto_binary

        self.binary = mosquitto_binary()
        if not self.binary:
            pytest.skip("needs a mosquitto binary (make services installs it)")
        self.host, self.port = "127.0.0.1", free_port()
        self.url = "mqtt://%s:%d" % (self.host, self.port)
        self.dir = tempfile.mkdtemp(prefix="rating-stock-broker-")
        os.chmod(self.dir, 0o777)
        self.proc = None

    def start(self):
        from simulator.services import wait_port

        conf = os.path.join(self.dir, "mosquitto.conf")
        with open(conf, "w") as f:
            f.write("listener %d 127.0.0.1\nallow_anonymous true\nlog_dest stdout\nlog_type error\n" % self.port)
        self.proc = subprocess.Popen([self.binary, "-c", conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        assert wait_port(self.port, 10), "stock mosquitto did not start"
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)

    def restart(self, down_seconds=0.0):
        self.stop()
        time.sleep(down_seconds)
        self.start()

    def close(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class Panels:
    """`n` simulated panels on one MQTT connection, each with a journal and a link that behaves
    like firmware/link.py: events published QoS 0 in seq order from the ack, at most
    SEND_WINDOW past it; when no ack covers what was sent within `ack_timeout_s`, everything
    unacked is sent again (the timeout doubling up to `ack_timeout_max_s`); a retained state
    with seq and pending at connect and every `heartbeat_s`; an ack above the panel's own
    highest seq is refused (counted). For every event the time of the press and of the first
    ack covering it are kept: the ack delay."""

    SEND_WINDOW = 50

    def __init__(
        self, broker, root, n, site="s1", ack_timeout_s=2.0, ack_timeout_max_s=8.0, heartbeat_s=2.0, login=None
    ):
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        from protocol import messages, topics

        self.messages, self.topics = messages, topics
        self.root, self.site = root, site
        self.devices = ["f%d" % i for i in range(n)]
        self.lock = threading.Lock()
        self.head = dict.fromkeys(self.devices, 0)
        self.acked = dict.fromkeys(self.devices, 0)
        self.sent = dict.fromkeys(self.devices, 0)
        self.wait_since = dict.fromkeys(self.devices, None)
        self.timeout = dict.fromkeys(self.devices, ack_timeout_s)
        self.pressed_at = {}  # (device, seq) -> monotonic time of the press
        self.acked_at = {}  # (device, seq) -> monotonic time of the first ack covering it
        self.refused_acks = 0
        self.resends = 0
        self.base_timeout, self.max_timeout, self.heartbeat_s = ack_timeout_s, ack_timeout_max_s, heartbeat_s
        self.next_state = 0.0
        self.connected = threading.Event()
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="panels-%s" % uuid.uuid4().hex[:8])
        c.on_connect = self._on_connect
        c.on_message = self._on_ack
        c.on_disconnect = lambda *a: self.connected.clear()
        c.reconnect_delay_set(0.2, 1)
        c.max_queued_messages_set(0)
        if login:  # (username, password) of an account that may publish for all n panels
            c.username_pw_set(*login)
        self.client = c
        c.connect_async(broker.host, broker.port, keepalive=10)
        c.loop_start()
        assert self.connected.wait(10), "panels: no connection to the broker"

    def _on_connect(self, client, userdata, flags, rc, props):
        if rc.is_failure:
            return
        client.subscribe("%s/%s/+/ack" % (self.root, self.site), 1)
        with self.lock:  # like the firmware after a reconnect: resend from the ack
            for d in self.devices:
                self.sent[d] = self.acked[d]
            self.next_state = 0.0
        self.connected.set()

    def _on_ack(self, client, userdata, msg):
        device = msg.topic.split("/")[-2]
        if device not in self.acked or not msg.payload:
            return
        seq = self.messages.decode_ack(msg.payload)
        now = time.monotonic()
        with self.lock:
            if seq > self.head[device]:
                self.refused_acks += 1  # never trim on an ack above what was journaled
                return
            for s in range(self.acked[device] + 1, seq + 1):
                self.acked_at.setdefault((device, s), now)
            if seq > self.acked[device]:
                self.acked[device] = seq
                self.timeout[device] = self.base_timeout
                if self.sent[device] <= seq:
                    self.wait_since[device] = None

    def body(self, device, seq):
        from gw_ingest_support import event_body

        return event_body(seq, self.devices.index(device))

    def press(self, device):
        with self.lock:
            self.head[device] += 1
            self.pressed_at[(device, self.head[device])] = time.monotonic()

    def step(self):
        """One pass of every panel's link (call often)."""
        if not self.connected.is_set():
            return
        now = time.monotonic()
        out = []
        with self.lock:
            for d in self.devices:
                waited = self.wait_since[d]
                if waited is not None and now - waited >= self.timeout[d] and self.sent[d] > self.acked[d]:
                    self.resends += self.sent[d] - self.acked[d]
                    self.sent[d] = self.acked[d]  # rewind: everything unacked again
                    self.wait_since[d] = None
                    self.timeout[d] = min(self.timeout[d] * 2, self.max_timeout)
                while self.sent[d] < self.head[d] and self.sent[d] - self.acked[d] < self.SEND_WINDOW:
                    self.sent[d] += 1
                    out.append((self.topics.device_topic(self.root, self.site, d, "event"), self.body(d, self.sent[d])))
                    if self.wait_since[d] is None:
                        self.wait_since[d] = now
            states = now >= self.next_state
            if states:
                self.next_state = now + self.heartbeat_s
                for d in self.devices:
                    out.append((self.topics.device_topic(self.root, self.site, d, "state"), self._state(d)))
        for topic, payload in out:
            self.client.publish(topic, payload, qos=0, retain=topic.endswith("/state"))

    def _state(self, d):
        return self.messages.encode_state(
            dict(
                online=True,
                boot=1,
                up=1000,
                t=None,
                fw="sim",
                seq=self.head[d],
                pending=self.head[d] - self.acked[d],
                dropped=0,
                heap=40000,
                rssi=-60,
                faults=[],
                cfg=None,
                cfg_err=None,
            )
        )

    def all_acked(self):
        with self.lock:
            return all(self.acked[d] == self.head[d] for d in self.devices)

    def pressed(self):
        return sum(self.head.values())

    def delays(self):
        """Ack delay of every acked event, seconds."""
        return sorted(self.acked_at[k] - self.pressed_at[k] for k in self.acked_at)

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


def press_and_wait(panels, seconds, rate_per_panel, fault=None, fault_at=0.3, settle_s=60.0):
    """Press `rate_per_panel` events a second on every panel for `seconds`, running `fault()`
    once `fault_at` of the time has passed (in a thread: it may block), then keep the links
    going until every event is acked (at most `settle_s` more). Returns the fault's result."""
    result = {}
    started = time.monotonic()
    interval = 1.0 / rate_per_panel
    next_press = started
    fault_thread = None
    while time.monotonic() - started < seconds:
        now = time.monotonic()
        if now >= next_press:
            for d in panels.devices:
                panels.press(d)
            next_press += interval
        if fault and fault_thread is None and now - started >= fault_at * seconds:
            fault_thread = threading.Thread(target=lambda: result.setdefault("fault", fault()))
            fault_thread.start()
        panels.step()
        time.sleep(0.005)
    if fault_thread is not None:
        fault_thread.join()
    deadline = time.monotonic() + settle_s
    while not panels.all_acked() and time.monotonic() < deadline:
        panels.step()
        time.sleep(0.01)
    return result.get("fault")


def figures(name, panels, db_url):
    """What a fault run did, checked against the store: every press stored once, with its
    content; returns the figures to print (events pressed, stored, duplicates, worst delay)."""
    from gateway import db as dbmod

    d = dbmod.connect(db_url)
    try:
        rows = d.query("SELECT device, seq, payload FROM raw_events WHERE site = ?", (panels.site,))
        letters = d.scalar("SELECT COUNT(*) FROM dead_letters") or 0
    finally:
        d.close()
    stored = {}
    for r in rows:
        if r["device"] in panels.head:  # (a flood's made-up events on other panels are not ours)
            stored.setdefault((r["device"], r["seq"]), []).append(r["payload"])
    pressed = {(dev, s) for dev in panels.devices for s in range(1, panels.head[dev] + 1)}
    lost = sorted(pressed - set(stored))
    wrong = [k for k in pressed & set(stored) if stored[k] != [panels.body(*k).decode()]]
    delays = panels.delays()
    out = {
        "fault": name,
        "pressed": len(pressed),
        "stored": len(pressed & set(stored)),
        "lost": len(lost),
        "duplicates": sum(len(v) - 1 for v in stored.values()) + len(set(stored) - pressed),
        "wrong": len(wrong),
        "dead_letters": letters,
        "refused_acks": panels.refused_acks,
        "resent": panels.resends,
        "p99_ack_s": delays[int(len(delays) * 0.99) - 1] if delays else None,
        "worst_ack_s": delays[-1] if delays else None,
    }
    print(
        "FAULT %(fault)s: pressed %(pressed)d, stored %(stored)d, lost %(lost)d, duplicates %(duplicates)d,"
        " dead letters %(dead_letters)d, resent %(resent)d, p99 ack %(p99_ack_s).2f s, worst ack %(worst_ack_s).2f s"
        % out
    )
    return out


def site_file(site, devices):
    """A site file configuring `devices` of `site` (the deployment then refuses other panels)."""
    text = (
        '[deployment]\nlang = "en"\n\n[[sites]]\nid = "%s"\nname = "Test office"\ntimezone = "Europe/Moscow"\n\n'
        '[[questions]]\nid = "office"\nkind = "office"\ntext_ru = "Понравилось?"\ntext_en = "Did you like it?"\n' % site
    )
    for d in devices:
        text += '\n[[panels]]\nsite = "%s"\ndevice = "%s"\nquestion = "office"\n' % (site, d)
    return text


def flood(broker, root, site, device, n, huge=2, huge_bytes=5 * 1024 * 1024, seed=1):
    """One client publishing `n` hostile messages as fast as it can (QoS 0): junk with and
    without readable seqs and valid events with made-up seqs on a configured panel's event
    topic, its state topic hammered, events and states of made-up panels and sites, bad topics,
    and `huge` payloads of `huge_bytes`. Returns how long publishing took."""
    import random

    import paho.mqtt.client as mqtt
    from gw_ingest_support import bad_event, event_body, state_body
    from paho.mqtt.enums import CallbackAPIVersion

    from protocol import messages

    rng = random.Random(seed)
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="flood-%s" % uuid.uuid4().hex[:8])
    c.max_queued_messages_set(0)
    c.connect(broker.host, broker.port)
    c.loop_start()
    own = "%s/%s/%s/" % (root, site, device)
    started = time.monotonic()
    for i in range(n):
        k = i % 8
        if k == 0:
            c.publish(own + "event", bad_event(rng.randrange(1, 10**12)))
        elif k == 1:
            c.publish(own + "event", b"\x00junk %d" % i)
        elif k == 2:
            c.publish(own + "event", messages.encode_event(rng.randrange(10**3, 10**12), 1, 1000, None, "yes"))
        elif k == 3:
            c.publish(own + "state", state_body(rng.randrange(1, 10**9)))
        elif k == 4:
            c.publish("%s/x%d/p%d/event" % (root, i, i), event_body(1))
        elif k == 5:
            c.publish("%s/%s/made-up-%d/state" % (root, site, i), state_body(5))
        elif k == 6:
            c.publish("%s/%s/%d/event" % (root, "BAD SITE", i), b"{}")
        else:
            c.publish("%s/x%d/counts" % (root, i), b'{"v":1}')
        if i % 2000 == 0:
            time.sleep(0.001)  # let paho's thread write
    for _ in range(huge):
        c.publish(own + "event", b"{" + b"x" * huge_bytes)
    took = time.monotonic() - started
    c.disconnect()
    c.loop_stop()
    return took


def rss_kb(pid, field="VmHWM"):
    """A process's resident memory (VmRSS now, VmHWM the peak) in KB, from /proc."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def db_bytes(url):
    """The space the database's data takes: pg_database_size, or SQLite's pages in use (WAL
    included; a WAL file's own size says how much was written since its last checkpoint)."""
    from gateway import db as dbmod

    d = dbmod.connect(url)
    try:
        if d.dialect == "postgresql":
            return int(d.scalar("SELECT pg_database_size(current_database())"))
        pages = d.scalar("PRAGMA page_count") - d.scalar("PRAGMA freelist_count")
        return int(pages * d.scalar("PRAGMA page_size"))
    finally:
        d.close()
