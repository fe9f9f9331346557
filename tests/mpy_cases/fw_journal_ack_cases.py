"""Review regressions under a real MicroPython VM (run by tests/firmware/test_journal.py).

MicroPython's struct.pack_into wraps an int above 2**32 silently, where CPython raises."""

from firmware import journal
from firmware.memfs import unacked


def _p(i):
    return journal.pack_event(1, i * 1000, None, "yes", None)


def test_journal_bogus_ack_past_u32_is_ignored():
    j = journal.Journal(journal.MemFs(), prefix="/j", capacity=100)
    j.append(_p(1))
    j.ack(2**32 + 5)
    assert (j.acked, j.seq, j.refused) == (0, 1, 2**32 + 5)
    assert j.append(_p(2)) == 2
    assert [s for s, _ in unacked(j)] == [1, 2]


def test_journal_presses_after_ack_jump_are_found():
    j = journal.Journal(journal.MemFs(), prefix="/j", capacity=100)
    j.append(_p(1))
    j.append(_p(2))
    j.ack(3)
    new = [j.append(_p(i)) for i in range(3, 6)]
    assert new == [6, 7, 8]  # 1 and 2 were renumbered to 4 and 5, above the ack
    assert [s for s, _ in unacked(j)] == [4, 5] + new
