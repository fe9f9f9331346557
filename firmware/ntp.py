"""SNTP packets and the port's epoch: the part of firmware.clock used only every few hours.

Kept out of clock so its code is not held in the panel's heap between syncs: the app imports
it for a sync and unloads it after (firmware.unload).

    ntp_request() -> bytes (48)          SNTP client request (reuse it)
    ntp_parse(data, sent_up, recv_up) -> (up_ms, unix_ms)   ValueError if bad / kiss-o'-death /
                                         outside 2020..2100
    epoch_offset_s(time.gmtime)          946684800 on a 2000-epoch port (ESP32), 0 on a 1970 one
    unix_ms_to_port_s(unix_ms, offset) / port_s_to_unix_ms(s, offset)
    exchange(hal, host, request, timeout_ms) -> reply bytes   the device HAL's UDP exchange
    sync(panel, up)                      one sync of a firmware.app Panel (clock, RTC, schedule)
"""

import struct

from firmware.clock import EPOCH_OFFSET

NTP_DELTA = 2208988800  # seconds from 1900-01-01 (NTP era 0) to 1970-01-01
SYNC_TIMEOUT_MS = 1500
SYNC_JITTER_MS = 60000  # spread a store's panels' resyncs


def epoch_offset_s(gmtime):
    """Seconds between 1970 and this port's epoch, from its time.gmtime (2000 on ESP32)."""
    return EPOCH_OFFSET if gmtime(0)[0] == 2000 else 0


def unix_ms_to_port_s(unix_ms, offset=EPOCH_OFFSET):
    """Unix ms -> seconds in the port's epoch (for time.gmtime / RTC().datetime)."""
    return unix_ms // 1000 - offset


def port_s_to_unix_ms(s, offset=EPOCH_OFFSET):
    return (s + offset) * 1000


def ntp_request():
    """A 48-byte SNTP v4 client request (LI 0, VN 4, mode 3)."""
    return b"\x23" + bytes(47)


def _ntp_ms(data, at):
    secs, frac = struct.unpack_from(">II", data, at)
    if secs == 0:
        return None
    if secs < 0x80000000:
        secs += 0x100000000  # NTP era 1 starts 2036-02-07 (RFC 4330 section 3)
    return (secs - NTP_DELTA) * 1000 + (frac * 1000 >> 32)


def ntp_parse(data, sent_up, recv_up):
    """Server answer -> (recv_up, unix_ms at recv_up), for WallClock.synced(*result).

    sent_up/recv_up: uptime ms when the request left / the answer came. The server's
    processing time (transmit - receive stamp) is taken out of the round trip and half of
    the rest is added to its transmit stamp. Raises ValueError for anything unusable, also a
    time outside 2020..2100 (what the protocol accepts as `t`).
    """
    if len(data) < 48:
        raise ValueError("ntp: short answer (%d bytes)" % len(data))
    b0 = data[0]
    if b0 & 7 != 4:
        raise ValueError("ntp: not a server answer (mode %d)" % (b0 & 7))
    if b0 >> 6 == 3:
        raise ValueError("ntp: server not synchronised")
    if data[1] == 0:
        raise ValueError("ntp: kiss-o'-death from server")
    t3 = _ntp_ms(data, 40)
    if t3 is None:
        raise ValueError("ntp: empty transmit timestamp")
    t2 = _ntp_ms(data, 32)
    rtt = recv_up - sent_up
    if t2 is not None and 0 <= t3 - t2 <= rtt:
        rtt -= t3 - t2
    if rtt < 0:
        rtt = 0
    t3 += rtt // 2
    # protocol.checks T_MIN..T_MAX (2020..2100): the gateway refuses events and state with a `t`
    # outside it, and the panel's lean encoders do not check; an unsynced router answering
    # 1970/2000 must leave the clock as it was (events then carry t null, which it takes)
    if not 1577836800000 <= t3 < 4102444800000:
        raise ValueError("ntp: implausible time %d ms" % t3)
    return recv_up, t3


def exchange(hal, host, request, timeout_ms):
    """One SNTP request/reply over UDP for firmware.hal (OSError on failure). The wait samples
    the buttons (mqtt.wait_io); host may be "name", "a.b.c.d" or "host:port" (tests)."""
    import select
    import socket

    from firmware.mqtt import getaddrinfo, wait_io  # loaded: NTP syncs only while MQTT is up

    port = 123
    if ":" in host:
        host, port = host.rsplit(":", 1)
        port = int(port)
    addr = getaddrinfo(hal, host, port)[0][-1]
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.setblocking(False)
        hal.ntp_sent = hal.ticks_ms()
        s.sendto(request, addr)
        p = select.poll()
        p.register(s, select.POLLIN)
        wait_io(hal, p, hal.ticks_ms(), timeout_ms)
        return s.recv(48)
    finally:
        s.close()


def sync(panel, up):
    """Ask the panel's NTP server once; set its wall clock and RTC, schedule the next try.
    Lives here, not in firmware.app, so its code is in the heap only during a sync."""
    hal = panel.hal
    ok = False
    try:
        sent = hal.ticks_ms()
        data = hal.ntp_query(panel.cfg["ntp"]["host"], ntp_request(), SYNC_TIMEOUT_MS)
        rx = hal.ticks_ms()
        recv_up = panel.uptime.update(rx)
        # the device HAL notes when the request left, after a name lookup that must not
        # count as network delay (half of it would be added to the time)
        sent = getattr(hal, "ntp_sent", sent)
        at, unix_ms = ntp_parse(data, recv_up - hal.ticks_diff(rx, sent), recv_up)
        panel.wall.synced(at, unix_ms)
        hal.set_wall_ms(panel.wall.now(recv_up))
        ok = True
    except Exception as e:
        hal.log("panel: ntp failed: %s" % e)
    panel.ntp.done(up, ok, hal.random(SYNC_JITTER_MS) if ok else 0)
