"""What the embedded broker's account checks cost: the same stream through the embedded amqtt
broker without accounts (--allow-anonymous) and with accounts and topic rules (the password and
ACL files `rating broker config` writes), alternating, in one run.

    .venv/bin/python bench/broker_auth.py [--messages 20000] [--panels 50] [--repeat 3]

Each panel publishes its events (QoS 1, its own login and client, in-flight 50) to one
subscriber logged in as the gateway; the rate is messages between the subscriber's first and
last arrival. Also: the time a CONNECT with a fresh password takes (PBKDF2) and a reconnect
(the verified login cached).
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from gateway import accounts as acc  # noqa: E402
from gateway import brokerconf  # noqa: E402
from protocol import messages, topics  # noqa: E402
from simulator import services  # noqa: E402

ROOT = "bench/v1"


def start(folder, logins):
    port = services.free_port()
    cmd = [sys.executable, "-m", "gateway.broker", "--port", str(port)]
    if logins is None:
        cmd.append("--allow-anonymous")
    else:
        brokerconf.write_files(folder, brokerconf.account_files(logins.accounts, ROOT))
        cmd += ["--password-file", os.path.join(folder, "passwd"), "--acl-file", os.path.join(folder, "acl")]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert services.wait_port(port, 20), "broker did not start"
    return proc, port


def client(port, login, cid):
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=cid)
    if login:
        c.username_pw_set(*login)
    c.max_inflight_messages_set(50)
    ok = threading.Event()
    c.on_connect = lambda *_a: ok.set()
    c.connect("127.0.0.1", port, 60)
    c.loop_start()
    assert ok.wait(20), "no CONNACK"
    return c


def timed_connect(port, login):
    t = time.perf_counter()
    c = client(port, login, "probe")
    ms = (time.perf_counter() - t) * 1000
    c.disconnect()
    c.loop_stop()
    return ms


def run(n, panels, with_accounts):
    folder = tempfile.mkdtemp(prefix="rating-bench-auth-")
    ids = [("s1", "p%d" % i) for i in range(panels)]
    logins = acc.demo_logins(ROOT, ids) if with_accounts else None
    proc, port = start(folder, logins)
    try:
        got = []
        done = threading.Event()
        sub = client(port, ("gateway", logins.passwords["gateway"]) if logins else None, "sub")

        def on_message(_c, _u, _m):
            got.append(time.perf_counter())
            if len(got) >= n:
                done.set()

        sub.on_message = on_message
        sub.subscribe(ROOT + "/+/+/event", 1)
        time.sleep(0.5)
        pubs = [client(port, logins.panel(s, d) if logins else None, "%s-%s" % (s, d)) for s, d in ids]
        infos = []
        for seq in range(1, n // panels + 1):
            for i, (s, d) in enumerate(ids):
                body = messages.encode_event(seq, 1, seq * 1000, None, "yes")
                infos.append(pubs[i].publish(topics.device_topic(ROOT, s, d, "event"), body, qos=1))
            if len(infos) > 1000:  # MQTT-FACTS pitfall 2
                for info in infos:
                    info.wait_for_publish(30)
                infos = []
        done.wait(300)
        rate = (len(got) - 1) / (got[-1] - got[0]) if len(got) > 1 else 0.0
        first = second = None
        if logins:
            first = timed_connect(port, logins.panel(*ids[0]))
            second = timed_connect(port, logins.panel(*ids[0]))
        for c in pubs + [sub]:
            c.disconnect()
            c.loop_stop()
        return rate, len(got), first, second
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(folder, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=20000)
    ap.add_argument("--panels", type=int, default=50)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    print("embedded broker, %d QoS 1 events from %d panels to one subscriber" % (args.messages, args.panels))
    for r in range(args.repeat):
        for with_accounts in (False, True):
            rate, got, first, second = run(args.messages, args.panels, with_accounts)
            extra = "; CONNECT %.1f ms, again %.1f ms" % (first, second) if first is not None else ""
            print(
                "run %d  %-14s %7.0f msgs/s (%d received)%s"
                % (r + 1, "accounts" if with_accounts else "anonymous", rate, got, extra),
                flush=True,
            )


if __name__ == "__main__":
    main()
