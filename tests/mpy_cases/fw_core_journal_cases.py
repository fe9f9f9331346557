"""firmware.journal under a real MicroPython VM, -X heapsize=100k (run by tests/firmware/test_core_on_micropython.py)."""

import gc

from mpytest import make_tmp, remove_tmp

from firmware import journal
from firmware.memfs import unacked

TMP = None


def setup():
    global TMP
    TMP = make_tmp("fwcore")


def teardown():
    remove_tmp(TMP)


def _p(i):
    return journal.pack_event(1, i * 1000, None, "yes" if i % 2 else "seller_short", None if i % 2 else i)


def test_journal_real_files_reopen_and_ack():
    j = journal.Journal(journal.OsFs(), prefix=TMP + "/j", capacity=40)
    assert j.next_boot() == 1
    for i in range(1, 31):
        assert j.append(_p(i)) == i
    j.ack(12)
    j2 = journal.Journal(journal.OsFs(), prefix=TMP + "/j", capacity=40)
    assert (j2.seq, j2.acked, j2.pending(), j2.boot) == (30, 12, 18, 1)
    got = list(unacked(j2))
    assert got[0] == (13, _p(13)) and got[-1] == (30, _p(30))
    assert journal.unpack_event(got[1][1]) == (1, 14000, None, "seller_short", 14)


def test_journal_torn_tail_on_real_file():
    prefix = TMP + "/j"
    j = journal.Journal(journal.OsFs(), prefix=prefix, capacity=100)
    for i in range(1, 4):
        j.append(_p(i))
    with open(prefix + ".s0", "ab") as f:
        f.write(b"\xa5\x05\x04\x00")  # the first bytes of record 4, then the power died
    j2 = journal.Journal(journal.OsFs(), prefix=prefix, capacity=100)
    assert [s for s, _ in unacked(j2)] == [1, 2, 3]
    assert j2.append(_p(9)) == 4
    j3 = journal.Journal(journal.OsFs(), prefix=prefix, capacity=100)
    assert list(unacked(j3))[-1] == (4, _p(9))


def test_journal_power_cut_every_byte_of_append_and_rotation():
    base = journal.MemFs()
    j = journal.Journal(base, capacity=16)
    j.next_boot()
    for i in range(1, 6):
        j.append(_p(i))
    for budget in range(0, 48 * 3 + 2 * journal.META_SIZE + 2):
        fs = journal.MemFs(budget=budget)
        fs.files = dict((k, bytearray(v)) for k, v in base.files.items())
        done = 5
        try:
            j = journal.Journal(fs, capacity=16)
            j.ack(2)  # drops segment 0
            for i in range(6, 9):  # rotates into new segments
                j.append(_p(i))
                done = i
        except journal.PowerCut:
            pass
        fs.budget = None
        j = journal.Journal(fs, capacity=16)
        seqs = [s for s, _ in unacked(j)]
        assert seqs == list(range(j.acked + 1, j.acked + 1 + len(seqs))), seqs
        assert seqs[-1] >= done and j.acked in (0, 2), (budget, seqs, j.acked)
        assert j.pending() == len(seqs)
        assert j.append(_p(99)) > done


def test_journal_heap_use_is_small():
    gc.collect()
    before = gc.mem_alloc()
    j = journal.Journal(journal.OsFs(), prefix=TMP + "/j", capacity=20000)
    j.next_boot()
    for i in range(1, 301):
        j.append(_p(i))
        if i % 3 == 0:
            j.ack(i - 1)
    for _ in unacked(j):
        pass
    gc.collect()
    held = gc.mem_alloc() - before
    print("journal heap held after 300 events: %d bytes" % held)
    assert held < 3000, held
