"""Memory and disk under hostile messages: the gateway's RSS and the database's growth for
100,000 hostile messages from one client (issue 12 item 4, issue 13 item 4).

    .venv/bin/python bench/hostile.py                        # 100,000 messages, both databases
    .venv/bin/python bench/hostile.py --messages 20000 --huge-mb 5 --db sqlite

Per database (SQLite in a temp folder; PostgreSQL where a server answers), in one run: a fresh
database with a site file (so panels that are not configured are refused), `rating gateway
run` against a private Mosquitto, then
- the reference: --messages valid events from 200 configured panels (what a busy deployment
  stores), and
- the flood: --messages hostile messages from one client (tests/support/gw_fault_support.flood:
  junk with and without readable seqs and made-up seqs on a configured panel, its state topic
  hammered, made-up panels and sites, bad topics) plus two --huge-mb MB payloads,
each followed by the gateway's RSS (VmRSS now, VmHWM the peak since start, from /proc) and the
database's size (SQLite's pages in use, pg_database_size).
"""

import argparse
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import paho.mqtt.client as mqtt  # noqa: E402
import support  # noqa: E402  (puts the repository and tests/support on sys.path)
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402

from gateway import schema, site  # noqa: E402
from protocol import messages  # noqa: E402

_fs = support.fault_support()
db_bytes, flood, rss_kb, site_file = _fs.db_bytes, _fs.flood, _fs.rss_kb, _fs.site_file
SITE = "shop"
PANELS = ["p%d" % i for i in range(200)]


def valid_stream(host, port, root, n):
    """n valid events round robin over the 200 configured panels (QoS 1, bounded in flight)."""
    c = mqtt.Client(CallbackAPIVersion.VERSION2)
    c.max_inflight_messages_set(50)
    c.connect(host, port)
    c.loop_start()
    seq = dict.fromkeys(PANELS, 0)
    infos = []
    for i in range(n):
        p = PANELS[i % len(PANELS)]
        seq[p] += 1
        body = messages.encode_event(seq[p], 1, seq[p] * 1000, None, "yes" if seq[p] % 2 else "seller_short")
        infos.append(c.publish("%s/%s/%s/event" % (root, SITE, p), body, qos=1))
        if len(infos) >= 2000:
            for info in infos:
                info.wait_for_publish(30)
            infos = []
    for info in infos:
        info.wait_for_publish(30)
    c.disconnect()
    c.loop_stop()


def _progress(db_url):
    """What the gateway has done so far: data, letters seen, messages refused."""
    from gateway import db as dbmod

    d = dbmod.connect(db_url)
    try:
        return (
            db_bytes(db_url),
            d.scalar("SELECT COUNT(*) FROM raw_events"),
            d.scalar("SELECT SUM(seen) FROM dead_letters"),
            d.scalar("SELECT SUM(messages) FROM refusals"),
        )
    finally:
        d.close()


def settle(db_url, seconds=3.0):
    """Wait until the gateway has worked off the broker's backlog (nothing changes for a while)."""
    last, still = None, 0.0
    while still < seconds:
        now = _progress(db_url)
        still = still + 0.5 if now == last else 0.0
        last = now
        time.sleep(0.5)


def run_one(label, db_url, host, port, args):
    db = schema.open_database(db_url)
    site.apply(db, site.parse(site_file(SITE, PANELS + ["target"])), int(time.time() * 1000), "bench.toml")
    db.close()
    root = "hostile%d%s/v1" % (os.getpid(), label.lower())  # nothing retained from another run
    gw = support.Gateway(host, port, db_url, root).start()
    assert gw.proc is not None
    pid = gw.proc.pid
    try:
        time.sleep(1.0)
        base_rss, base_db = rss_kb(pid, "VmRSS"), db_bytes(db_url)
        t = time.monotonic()
        valid_stream(host, port, root, args.messages)
        settle(db_url)
        ref_s = time.monotonic() - t
        ref_rss, ref_peak, ref_db = rss_kb(pid, "VmRSS"), rss_kb(pid), db_bytes(db_url)
        broker = type("B", (), {"host": host, "port": port})()
        t = time.monotonic()
        flood(broker, root, SITE, "target", args.messages, huge=2, huge_bytes=args.huge_mb * 1024 * 1024)
        settle(db_url)
        flood_s = time.monotonic() - t
        rss, peak, size = rss_kb(pid, "VmRSS"), rss_kb(pid), db_bytes(db_url)
    finally:
        gw.stop()
    mb = 1024.0
    print(
        "%s: start: RSS %.0f MB, database %.1f MB" % (label, base_rss / mb, base_db / mb / mb),
        flush=True,
    )
    print(
        "%s: reference, %d valid events from 200 panels (%.0f s): RSS %.0f MB (peak %.0f MB), database +%.1f MB"
        % (label, args.messages, ref_s, ref_rss / mb, ref_peak / mb, (ref_db - base_db) / mb / mb),
        flush=True,
    )
    print(
        "%s: %d hostile messages + 2 x %d MB (%.0f s): RSS %.0f MB (peak %.0f MB), database +%.2f MB"
        % (label, args.messages, args.huge_mb, flood_s, rss / mb, peak / mb, (size - ref_db) / mb / mb),
        flush=True,
    )
    print("%s: %s" % (label, "".join(line for line in gw.lines if "stopped;" in line).strip()), flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=100000)
    ap.add_argument("--huge-mb", type=int, default=50)
    ap.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    ap.add_argument(
        "--no-packet-limit",
        action="store_true",
        help="a broker without gateway/mosquitto.conf's max_packet_size (the huge payloads reach the gateway)",
    )
    args = ap.parse_args(argv)
    tmp = tempfile.mkdtemp(prefix="rating-bench-hostile-")
    limit = None if args.no_packet_limit else 16384
    broker_proc, host, port, kind = support.start_broker(tmp, max_packet_size=limit)
    print("broker: %s on %s:%d, max_packet_size %s" % (kind, host, port, limit or "none"), flush=True)
    try:
        if args.db in ("sqlite", "both"):
            run_one("SQLite", "sqlite:///%s" % os.path.join(tmp, "hostile.db"), host, port, args)
        if args.db in ("postgresql", "both"):
            url, drop, why = support.pg_database()
            if url is None or drop is None:
                print("PostgreSQL: skipped (%s)" % why)
            else:
                try:
                    run_one("PostgreSQL", url, host, port, args)
                finally:
                    drop()
    finally:
        broker_proc.terminate()
        broker_proc.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
