"""Review findings on firmware.journal: regressions for defects found in review."""

from firmware import journal as J
from firmware.memfs import unacked


def _p(i):
    return J.pack_event(1, 1000 * i, None, "yes", None)


def test_fw_review_journal_events_after_ack_jump_are_found():
    # A wiped panel records presses before the gateway's retained ack (above its seq) arrives;
    # the presses after the jump must still be readable in order (next_after assumed the seqs
    # of one segment are consecutive and skipped them). The presses before it are renumbered
    # above the ack (tests/test_fw_journal_rebase.py).
    for ack_to in (3, 500):
        fs = J.MemFs()
        j = J.Journal(fs, capacity=100)
        j.append(_p(1))
        j.append(_p(2))
        j.ack(ack_to)
        new = [j.append(_p(i)) for i in range(3, 6)]
        assert new == [ack_to + 3, ack_to + 4, ack_to + 5]
        assert [s for s, _ in unacked(j)] == [ack_to + 1, ack_to + 2] + new
        assert j.next_after(ack_to + 2) == (ack_to + 3, _p(3))
        assert j.pending() == 5
        j2 = J.Journal(fs, capacity=100)  # and after a reboot
        assert [s for s, _ in unacked(j2)] == [ack_to + 1, ack_to + 2] + new
        assert j2.seq == new[-1]


def test_fw_review_journal_ack_beyond_32_bit_seq_space_is_ignored():
    # records and meta hold seq as u32: a bogus retained ack (hand-published, gateway bug)
    # above it raised struct.error on CPython and wrapped silently on MicroPython, after which
    # every new press was stored under a seq next_after never finds again
    fs = J.MemFs()
    j = J.Journal(fs, capacity=100)
    j.append(_p(1))
    j.ack(2**32 + 5)
    assert (j.acked, j.seq, j.pending()) == (0, 1, 1)
    assert j.append(_p(2)) == 2
    assert [s for s, _ in unacked(j)] == [1, 2]


def test_fw_review_journal_cases_under_micropython():
    from mpy_support import check_mpy_cases

    proc = check_mpy_cases("fw_review_cases", heapsize="100k", timeout=60)
    assert "2 passed, 0 failed" in proc.stdout, proc.stdout
