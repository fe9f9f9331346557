"""A DNS A-record lookup over UDP that waits the panel's way. Loaded for a lookup, unloaded after.

    ip = dns.resolve(hal, "pool.ntp.org")   # "162.159.200.1"; OSError if no answer in TIMEOUT_MS

Called by firmware.mqtt.getaddrinfo for a name (an IPv4 address needs no lookup).
Why not socket.getaddrinfo: on the ESP32 a name lookup blocks in C until lwIP gives up, which
with the internet down can outlast the watchdog (a reboot on every NTP retry) and freezes
the buttons meanwhile. Here the wait is mqtt.wait_io (buttons sampled, bounded).
query()/answer() are the pure packet halves.

A name ending in ".local" (a broker on a Raspberry Pi the technician's laptop finds as
"broker.local") is not in the DNS: it is asked by a one-shot multicast DNS query (RFC 6762
section 5.1) to 224.0.0.251:5353 from our own port; responders answer such a query by unicast,
with our query id and question, so the same packet code reads the answer.
"""

import select
import socket

TIMEOUT_MS = 2000


def query(name, qid):
    q = bytearray(12)
    q[0], q[1], q[2], q[5] = qid >> 8, qid & 255, 1, 1  # id, RD flag, one question
    for label in name.split("."):
        if label:
            q.append(len(label))
            q.extend(label.encode())
    q.extend(b"\x00\x00\x01\x00\x01")  # root, type A, class IN
    return q


def _skip_name(d, i):
    while True:
        n = d[i]
        if n >= 0xC0:  # compression pointer: two bytes end the name
            return i + 2
        if n == 0:
            return i + 1
        i += n + 1


def answer(d, qid):
    """The first A record's address in a reply to query(name, qid); None if the datagram is not
    that reply; OSError if the server has no address for the name. IndexError: torn."""
    if len(d) < 12 or (d[0] << 8 | d[1]) != qid or not d[2] & 0x80:
        return None
    if d[3] & 15:
        raise OSError("dns: rcode %d" % (d[3] & 15))
    i = 12
    for _ in range(d[4] << 8 | d[5]):  # the question(s) echoed (an mDNS answer may have none)
        i = _skip_name(d, i) + 4
    for _ in range(d[6] << 8 | d[7]):
        i = _skip_name(d, i)
        if d[i + 1] == 1 and d[i + 9] == 4:  # type A (high byte 0 for known types), 4-byte data
            return "%d.%d.%d.%d" % (d[i + 10], d[i + 11], d[i + 12], d[i + 13])
        i += 10 + (d[i + 8] << 8 | d[i + 9])
    raise OSError("dns: no address for the name")


def resolve(hal, name):
    from firmware.mqtt import wait_io

    if name.endswith(".local"):  # mDNS, one-shot (tests set hal.mdns to their responder)
        server = getattr(hal, "mdns", None) or ("224.0.0.251", 5353)
    else:  # the name server DHCP gave us (tests set hal.dns to their own)
        server = getattr(hal, "dns", None) or (hal._wlan.ifconfig()[3], 53)
    qid = hal.random(65536)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.setblocking(False)
        s.sendto(query(name, qid), socket.getaddrinfo(server[0], server[1])[0][-1])
        p = select.poll()
        p.register(s, select.POLLIN)
        t0 = hal.ticks_ms()
        while True:
            wait_io(hal, p, t0, TIMEOUT_MS)
            try:
                ip = answer(s.recv(512), qid)
            except IndexError:  # torn: wait for a whole one
                ip = None
            if ip:
                return ip
    finally:
        s.close()
