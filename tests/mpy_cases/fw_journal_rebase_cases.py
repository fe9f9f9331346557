"""firmware.journal renumbering above an ack and capacity clamping under a real MicroPython VM,
-X heapsize=100k (run by tests/firmware/test_journal_renumbering.py)."""

from mpytest import make_tmp, remove_tmp

from firmware import journal
from firmware.memfs import unacked

TMP = None


def setup():
    global TMP
    TMP = make_tmp("fwrebase")


def teardown():
    remove_tmp(TMP)


def _p(i):
    return journal.pack_event(1, i * 1000, None, "yes" if i % 2 else "no", None)


def test_rebase_on_real_files_survives_reboot():
    prefix = TMP + "/j"
    j = journal.Journal(journal.OsFs(), prefix=prefix, capacity=16)
    j.next_boot()
    for i in range(1, 6):
        j.append(_p(i))
    j.ack(500)  # a fresh journal: renumbered above the previous life's ack
    assert [s for s, _ in unacked(j)] == [501, 502, 503, 504, 505]
    assert j.renumbered == 5 and j.append(_p(6)) == 506
    j2 = journal.Journal(journal.OsFs(), prefix=prefix, capacity=16)
    got = list(unacked(j2))
    assert got == [(500 + i, _p(i)) for i in range(1, 7)], got
    assert (j2.acked, j2.seq) == (500, 506)
    j2.ack(10**6)  # acked before: refused, nothing trimmed
    assert (j2.acked, j2.seq, j2.refused, len(list(unacked(j2)))) == (500, 506, 10**6, 6)


def test_rebase_power_cut_at_every_byte():
    base = journal.MemFs()
    j = journal.Journal(base, capacity=16)
    for i in range(1, 6):
        j.append(_p(i))
    for budget in range(0, 48 + 2 * journal.META_SIZE + 1):
        fs = journal.MemFs(budget=budget)
        fs.files = dict((k, bytearray(v)) for k, v in base.files.items())
        try:
            j = journal.Journal(fs, capacity=16)
            j.ack(500)
            j.append(_p(6))
            j.ack(501)
        except journal.PowerCut:
            pass
        fs.budget = None
        j = journal.Journal(fs, capacity=16)
        j.ack(500)
        got = [x for _, x in unacked(j)]
        seqs = [s for s, _ in unacked(j)]
        assert seqs == list(range(j.acked + 1, j.acked + 1 + len(seqs))), (budget, seqs)
        want = [_p(i) for i in range(1, 7)][j.acked - 500 :]
        assert got in (want, want[:-1]), (budget, j.acked, len(got))


def test_capacity_clamped_to_room():
    room = journal.OsFs().room(TMP + "/j")
    print("OsFs.room on the unix port: %s" % room)
    assert room is None or room > 0
    fs = journal.MemFs(disk=65536 + 6000)  # the margin + ~14 records a segment
    j = journal.Journal(fs, capacity=40000)
    assert j.capacity_wanted == 40000 and j.capacity == j.seg_records * 8 < 40000
    for i in range(1, 2 * j.capacity):
        j.append(_p(i))
    assert j.dropped > 0 and j.pending() >= j.capacity
