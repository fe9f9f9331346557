"""Ack delay under a flood of panels: how long a probe panel waits for the ack of each event
while thousands of other panels press, store and get derived (issue 12 item 3).

    .venv/bin/python bench/ackdelay.py                       # 2,000 panels, 60 s, both databases
    .venv/bin/python bench/ackdelay.py --panels 500 --seconds 20 --db sqlite

Per database (SQLite in a temp folder; PostgreSQL where a server answers on 127.0.0.1:5432 or
$RATING_TEST_PG), in one run: a fresh database and `rating gateway run` against a private
Mosquitto; first the probe panel alone (the reference: 5 events a second for --reference-s),
then --panels panels pressing --rate events a second each (polls: seller presses and answers,
derived by the gateway's worker as they come) with the probe pressing alongside for
--seconds. Every panel behaves like firmware/link.py (tests/support/gw_fault_support.Panels:
QoS 0, in seq order, 50 past the ack, resend after the ack timeout). A probe event's ack delay is
the time from its press to the first ack covering it. Target: 99 % within 2 s.
"""

import argparse
import multiprocessing
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import support  # noqa: E402  (puts the repository and tests/support on sys.path)

Panels = support.fault_support().Panels


def _probe(host, port, root, site, seconds, rate, out):
    """The probe panel, in a process of its own (so the flood's simulation does not delay it):
    press `rate` events a second for `seconds`, then wait for the acks; send back the delays
    and the press times (relative to its start)."""
    broker = type("B", (), {"host": host, "port": port})()
    probe = Panels(broker, root, 1, site=site, ack_timeout_s=5.0, ack_timeout_max_s=20.0, heartbeat_s=10.0)
    start = next_press = time.monotonic()
    while time.monotonic() - start < seconds:
        if time.monotonic() >= next_press:
            probe.press(probe.devices[0])
            next_press += 1.0 / rate
        probe.step()
        time.sleep(0.002)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not probe.all_acked():
        probe.step()
        time.sleep(0.002)
    out.put(
        [(probe.acked_at[k] - probe.pressed_at[k], probe.pressed_at[k] - start) for k in sorted(probe.acked_at)]
        + [(None, None)] * (probe.pressed() - len(probe.acked_at))
    )
    probe.close()


def _flood(flood, seconds, rate):
    """Press and step the flood's links (every 50 ms, as a panel polls) for `seconds`."""
    start = time.monotonic()
    next_press = next_step = start
    while time.monotonic() - start < seconds:
        now = time.monotonic()
        if now >= next_press:
            for d in flood.devices:
                flood.press(d)
            next_press += 1.0 / rate
        if now >= next_step:
            flood.step()
            next_step = now + 0.05
        time.sleep(0.005)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not flood.all_acked():
        flood.step()
        time.sleep(0.05)


def _run_probe(host, port, root, site, seconds, make_flood=None, flood_rate=0.0):
    """The probe's (delay, pressed at) list; with make_flood, the flood runs meanwhile here (made
    after the fork: the probe's process gets no copy of its MQTT client). -> (probe, flood)."""
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    proc = ctx.Process(target=_probe, args=(host, port, root, site, seconds, 5.0, out))
    proc.start()
    flood = make_flood() if make_flood else None
    if flood is not None:
        _flood(flood, seconds, flood_rate)
    got = out.get(timeout=seconds + 120)
    proc.join(30)
    return got, flood


def _derive_lag(db_url):
    """(events stored but not yet fed to the poll windows, events stored)."""
    from gateway import db as dbmod

    d = dbmod.connect(db_url)
    try:
        stored = d.scalar("SELECT COUNT(*) FROM raw_events") or 0
        fed = d.scalar("SELECT SUM(fed_count) FROM derive_state") or 0
        return int(stored) - int(fed), int(stored)
    finally:
        d.close()


def _stats(delays):
    if not delays:
        return "no acks"
    n = len(delays)
    within = sum(1 for d in delays if d <= 2.0) / n
    return "%d events, p50 %.3f s, p99 %.3f s, max %.3f s, %.1f %% within 2 s" % (
        n,
        delays[n // 2],
        delays[max(0, int(n * 0.99) - 1)],
        delays[-1],
        100 * within,
    )


def run_one(label, db_url, host, port, args):
    root = "bench%d%s/v1" % (os.getpid(), label.lower())  # nothing retained from another run
    gw = support.Gateway(host, port, db_url, root).start()
    broker = type("B", (), {"host": host, "port": port})()
    try:
        reference, _ = _run_probe(host, port, root, "probe", args.reference_s)

        def make_flood():
            return Panels(
                broker, root, args.panels, site="shop", ack_timeout_s=20.0, ack_timeout_max_s=60.0, heartbeat_s=60.0
            )

        t = time.monotonic()
        probed, flood = _run_probe(host, port, root, "probe2", args.seconds, make_flood, args.rate)
        took = time.monotonic() - t
        assert flood is not None
        stored = flood.pressed()
        all_acked = flood.all_acked() and all(d is not None for d, _ in probed)
        flood.close()
        # the worker keeps deriving after the flood: how far behind it is, and how long it needs
        t = time.monotonic()
        lag = _derive_lag(db_url)
        while lag[0] and time.monotonic() - t < 120:
            time.sleep(0.5)
            lag = _derive_lag(db_url)
        caught_up = time.monotonic() - t
    finally:
        gw.stop()
    print(
        "%s: derivation after the flood: %s"
        % (label, "caught up in %.1f s" % caught_up if not lag[0] else "%d of %d events not fed after 120 s" % lag),
        flush=True,
    )
    reference = sorted(d for d, _ in reference if d is not None)
    under = sorted(d for d, _ in probed if d is not None)
    worst = sorted((d, at) for d, at in probed if d is not None)[-5:]
    print("%s: reference, probe alone: %s" % (label, _stats(reference)), flush=True)
    print(
        "%s: probe under %d panels x %.2f events/s (%d events in %.0f s%s): %s"
        % (label, args.panels, args.rate, stored, took, "" if all_acked else ", NOT ALL ACKED", _stats(under)),
        flush=True,
    )
    print(
        "%s: the worst five, pressed at: %s"
        % (label, ", ".join("%.1f s (+%.1f s)" % (delay, at) for delay, at in reversed(worst))),
        flush=True,
    )
    derived = [line for line in gw.lines if "stopped;" in line]
    if derived:
        print("%s: %s" % (label, derived[-1].strip()), flush=True)
    return under


def main(argv=None):
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--panels", type=int, default=2000)
    ap.add_argument("--rate", type=float, default=0.25, help="events a second per flood panel (default 0.25)")
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--reference-s", type=float, default=15.0)
    ap.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    args = ap.parse_args(argv)
    tmp = tempfile.mkdtemp(prefix="rating-bench-ack-")
    broker_proc, host, port, kind = support.start_broker(tmp)
    print("broker: %s on %s:%d" % (kind, host, port), flush=True)
    ok = True
    try:
        if args.db in ("sqlite", "both"):
            delays = run_one("SQLite", "sqlite:///%s" % os.path.join(tmp, "ack.db"), host, port, args)
            ok = ok and bool(delays) and delays[max(0, int(len(delays) * 0.99) - 1)] <= 2.0
        if args.db in ("postgresql", "both"):
            url, drop, why = support.pg_database()
            if url is None or drop is None:
                print("PostgreSQL: skipped (%s)" % why)
            else:
                try:
                    delays = run_one("PostgreSQL", url, host, port, args)
                    ok = ok and bool(delays) and delays[max(0, int(len(delays) * 0.99) - 1)] <= 2.0
                finally:
                    drop()
    finally:
        broker_proc.terminate()
        broker_proc.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)
    print("target (99 %% of the probe's events acked within 2 s): %s" % ("met" if ok else "NOT MET"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
