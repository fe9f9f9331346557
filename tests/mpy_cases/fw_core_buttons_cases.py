"""firmware.buttons under a real MicroPython VM, -X heapsize=100k (run by tests/firmware/test_core_on_micropython.py)."""

import gc

from firmware import buttons

YES, SELLER = 1, 8


def _run(edges, end, bit):
    b = buttons.Buttons()
    out = []
    level = 0
    k = 0
    for t in range(end):
        while k < len(edges) and edges[k][0] <= t:
            level = edges[k][1]
            k += 1
        for ev in b.sample(level, t):
            out.append((t, ev[0], ev[1]))
    return out


def test_buttons_every_bounce_burst_is_one_press():
    # every subset of toggle offsets {0, 7, 14, 21, 28} (< 30 ms debounce) on press and release
    offsets = (0, 7, 14, 21, 28)
    for down in range(32):
        for up in (0, 5, 31):
            edges = []
            level = 0
            for i in range(5):
                if down >> i & 1:
                    level ^= YES
                    edges.append((100 + offsets[i], level))
            edges.append((130, YES))
            for i in range(5):
                if up >> i & 1:
                    level = YES if level == 0 else 0
                    edges.append((400 + offsets[i], level))
            edges.append((430, 0))
            out = _run(edges, 600, YES)
            assert [e[1] for e in out] == ["yes"], (down, up, out)


def test_buttons_long_short_and_stuck():
    assert _run([(100, SELLER), (100 + 1499, 0)], 1700, SELLER) == [(1629, "seller_short", 1499)]
    assert _run([(100, SELLER), (2000, 0)], 2100, SELLER) == [(1600, "seller_long", 1500)]
    b = buttons.Buttons()
    b.sample(0, 0)
    b.sample(YES, 10)
    assert b.sample(YES, 40) == [("yes", None)]
    assert b.next_deadline(40) == 30010
    assert b.sample(YES, 30010) == [] and b.faults() == ["stuck:yes"]
    b.sample(0, 31000)
    b.sample(0, 31030)
    assert b.faults() == [] and b.faults_rev == 2


def test_buttons_sample_allocates_nothing_without_events():
    b = buttons.Buttons()
    b.sample(0, 0)
    gc.collect()
    before = gc.mem_free()
    for t in range(1, 2000):
        b.sample(0, t)
    assert before - gc.mem_free() < 256, before - gc.mem_free()
