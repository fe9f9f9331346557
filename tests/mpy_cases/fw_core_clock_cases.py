"""firmware.clock under a real MicroPython VM, -X heapsize=100k (run by tests/firmware/test_core_on_micropython.py)."""

from mpytest import raises

from firmware import clock, ntp


def test_clock_uptime_across_esp32_wrap():
    period = clock.TICKS_PERIOD
    x = 12345
    for start in (0, period - 1, period - 1000, period // 2):
        up = clock.Uptime(start)
        real = 0
        for _ in range(200):
            x = (x * 1103515245 + 12345) & 0x7FFFFFFF
            real += x % (period // 2)
            assert up.update((start + real) % period) == real


def test_clock_port_period_and_epoch():
    import time

    p = clock.ticks_period(time.ticks_add)
    assert p in (1 << 30, 1 << 62), p
    assert ntp.epoch_offset_s(time.gmtime) in (0, clock.EPOCH_OFFSET)


def test_clock_ntp_parse():
    import struct

    data = bytearray(48)
    data[0] = 0x24
    data[1] = 2
    struct.pack_into(">II", data, 40, 1732270000 + ntp.NTP_DELTA, 1 << 31)
    assert ntp.ntp_parse(data, 1000, 1100) == (1100, 1732270000550)
    data[1] = 0
    raises(ValueError, ntp.ntp_parse, data, 0, 0)
