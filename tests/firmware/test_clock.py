"""firmware.clock: uptime across ticks wrap, wall clock, NTP schedule and packets."""

import socket
import struct
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware import clock, ntp

P = clock.TICKS_PERIOD


@settings(max_examples=200, deadline=None)
@given(start=st.integers(0, P - 1), steps=st.lists(st.integers(0, P // 2 - 1), max_size=60))
def test_fw_core_uptime_extends_across_wrap(start, steps):
    up = clock.Uptime(start)
    real = 0
    for d in steps:
        real += d
        assert up.update((start + real) % P) == real


def test_fw_core_uptime_ignores_backwards_and_other_periods():
    up = clock.Uptime(P - 10)
    assert up.update(5) == 15  # wrapped: 10 to the top, 5 after
    assert up.update(3) == 15  # an older reading never moves uptime back
    assert up.update(1000) == 1010
    big = clock.Uptime(2**62 - 1, period=2**62)  # unix port
    assert big.update(4) == 5


def test_fw_core_ticks_period_of_port():
    assert clock.ticks_period(lambda t, d: (t + d) % P) == P


def test_fw_core_wallclock():
    wc = clock.WallClock()
    assert wc.now(5000) is None and not wc.is_synced
    wc.synced(10000, 1732270000000)
    assert wc.now(10000) == 1732270000000 and wc.now(12500) == 1732270002500
    wc.synced(20000, 1732270010030)  # clock ran 30 ms slow in 10 s
    assert wc.last_step_ms == 30 and wc.synced_at == 20000 and wc.is_synced


def test_fw_core_epoch_conversion():
    assert ntp.epoch_offset_s(lambda s: (2000, 1, 1, 0, 0, 0, 5, 1)) == 946684800
    assert ntp.epoch_offset_s(time.gmtime) == 0
    unix_ms = 1732270000123
    s = ntp.unix_ms_to_port_s(unix_ms)
    assert s == 1732270000 - 946684800
    assert ntp.port_s_to_unix_ms(s) == 1732270000000
    assert ntp.unix_ms_to_port_s(unix_ms, 0) == 1732270000


def test_fw_core_ntp_schedule_backoff_and_resync():
    s = clock.NtpSchedule(resync_ms=6 * 3600 * 1000, retry_min_ms=5000, retry_max_ms=40000)
    assert s.due(0)
    waits = []
    t = 0
    for _ in range(6):
        s.done(t, False)
        waits.append(s.next_ms - t)
        assert not s.due(s.next_ms - 1) and s.due(s.next_ms)
        t = s.next_ms
    assert waits == [5000, 10000, 20000, 40000, 40000, 40000]
    s.done(t, True, jitter_ms=123)
    assert s.next_ms == t + 6 * 3600 * 1000 + 123 and s.failures == 0 and s.last_ok_ms == t
    s.done(s.next_ms, False)
    assert s.next_ms - s.last_ok_ms - 6 * 3600 * 1000 - 123 == 5000  # backoff restarted


def ntp_answer(unix_s, frac=0, recv_unix_s=None, mode=4, stratum=2, li=0):
    data = bytearray(48)
    data[0] = (li << 6) | (4 << 3) | mode
    data[1] = stratum
    recv = unix_s if recv_unix_s is None else recv_unix_s
    struct.pack_into(">II", data, 32, (recv + ntp.NTP_DELTA) % 2**32, 0)
    struct.pack_into(">II", data, 40, (unix_s + ntp.NTP_DELTA) % 2**32, frac)
    return bytes(data)


def test_fw_core_ntp_packets():
    req = ntp.ntp_request()
    assert len(req) == 48 and req[0] & 7 == 3 and (req[0] >> 3) & 7 == 4
    # 100 ms round trip: the answer's time is half of it later at arrival
    assert ntp.ntp_parse(ntp_answer(1732270000, frac=2**31), 1000, 1100) == (1100, 1732270000550)
    # the server held the request 40 ms: only the rest is network delay
    a = ntp_answer(1732270000, recv_unix_s=1732270000)
    assert ntp.ntp_parse(a, 0, 100)[1] == 1732270000050
    # after 2036-02-07 NTP seconds wrap (era 1)
    assert ntp.ntp_parse(ntp_answer(2200000000), 0, 0)[1] == 2200000000000
    for bad, why in (
        (ntp_answer(1, mode=3), "mode"),
        (ntp_answer(1, stratum=0), "kiss"),
        (ntp_answer(1, li=3), "not synchronised"),
        (b"\x24" * 20, "short"),
    ):
        with pytest.raises(ValueError, match=why):
            ntp.ntp_parse(bad, 0, 0)


def test_fw_core_ntp_against_a_real_udp_server():
    """The request bytes go through a real socket to a tiny SNTP server and back."""
    srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    srv.bind(("127.0.0.1", 0))
    cli = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    cli.settimeout(2)
    try:
        cli.sendto(ntp.ntp_request(), srv.getsockname())
        req, addr = srv.recvfrom(64)
        assert req[0] & 7 == 3
        now = time.time()
        srv.sendto(ntp_answer(int(now), frac=int((now % 1) * 2**32)), addr)
        data = cli.recv(64)
        up, unix_ms = ntp.ntp_parse(data, 0, 2)
        assert abs(unix_ms - now * 1000) < 5
    finally:
        srv.close()
        cli.close()
