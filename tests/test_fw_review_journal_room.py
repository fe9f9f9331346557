"""firmware.journal review: a file system that fills up after the journal opened, and a meta
write that fails while an ack renumbers the journal (a wiped panel)."""

import pytest

from firmware import journal as J
from firmware.memfs import unacked as _unacked


def p(i):
    return J.pack_event(1, 1000 * i, None, "yes" if i % 2 else "no", None)


def unacked(j):
    return list(_unacked(j))


def _check_no_press_lost_uncounted(j, n, acked=0):
    got = unacked(j)
    assert [x for _, x in got] == [p(i) for i in range(n - len(got) + 1, n + 1)]
    assert [s for s, _ in got] == list(range(n - len(got) + 1, n + 1))
    assert j.seq == n and j.dropped == n - acked - len(got)


def test_fw_journal_fs_filled_by_another_file_drops_oldest_not_the_press():
    # the clamp at open saw room for the journal; then another file (a code update,
    # remote.json) takes nearly all of it: a press must still be stored, the oldest records
    # go as on overflow (counted in dropped), never the new one uncounted
    fs = J.MemFs(disk=256 * 1024)
    j = J.Journal(fs, capacity=80)  # 10 records a segment
    j.next_boot()
    for i in range(1, 61):
        j.append(p(i))
    j.ack(1)  # both meta copies exist (as on a panel)
    fs.files["/update.mpy"] = bytearray(fs.room("/j") - 300)
    for i in range(61, 201):
        j.append(p(i))  # ENOSPC must not reach the app
    _check_no_press_lost_uncounted(j, 200, acked=1)
    j2 = J.Journal(fs, capacity=80)
    assert unacked(j2) == unacked(j) and (j2.seq, j2.dropped) == (j.seq, j.dropped)


def test_fw_journal_fs_smaller_than_nine_records_keeps_the_newest():
    # not even the minimum (9 segments of 1 record) fits: the journal keeps what fits
    fs = J.MemFs(disk=2 * J.META_SIZE + 5 * 48)
    j = J.Journal(fs, capacity=20000)
    assert j.seg_records == 1
    j.next_boot()
    j.next_boot()
    for i in range(1, 31):
        j.append(p(i))
    _check_no_press_lost_uncounted(j, 30)
    assert 3 <= j.pending() <= 5


def test_fw_journal_enospc_with_one_segment_still_raises():
    # nothing older to drop: the press cannot be stored, the app reports the journal fault
    fs = J.MemFs(disk=256 * 1024)
    j = J.Journal(fs, capacity=800)
    j.append(p(1))
    fs.files["/update.mpy"] = bytearray(fs.room("/j") - 20)
    with pytest.raises(OSError):
        j.append(p(2))
    assert (j.seq, j.dropped, unacked(j)) == (1, 0, [(1, p(1))])


@pytest.mark.parametrize("acked_before", [0, 2])
def test_fw_journal_rebase_not_in_force_unless_persisted(acked_before):
    """A wiped panel's renumbering whose meta write fails must not be used: else its presses
    reach the gateway as 501.., and after a power cut (the old numbering on flash) the retained
    ack renumbers them again above it: every press stored twice."""
    fs = J.MemFs()
    j = J.Journal(fs, capacity=16)  # 2 records a segment
    for i in range(1, 6):
        j.append(p(i))
    if acked_before:
        j.ack(acked_before)
    stored = dict((s, "old life") for s in range(1, 501))

    def publish(j):
        # the link publishes the unacked events; the gateway stores a seq it does not have
        # (a stored seq with other content is dead-lettered) and acks the contiguous run
        for s, x in unacked(j):
            stored.setdefault(s, x)
        a = 500
        while a + 1 in stored:
            a += 1
        return a

    fs.fail_writes = 1
    with pytest.raises(OSError):
        j.ack(500)
    ack = publish(j)
    j = J.Journal(fs, capacity=16)  # power cut before that ack came
    j.ack(ack)  # the retained ack
    ack = publish(j)
    j.ack(ack)
    mine = [x for x in stored.values() if x != "old life"]
    assert sorted(mine) == sorted(p(i) for i in range(acked_before + 1, 6))
    assert j.pending() == 0 and j.seq == 500 + 5 - acked_before


def test_fw_review_journal_room_cases_under_micropython():
    from mpy_support import check_mpy_cases

    proc = check_mpy_cases("fw_review_journal_room_cases", heapsize="100k", timeout=120)
    assert "2 passed, 0 failed" in proc.stdout, proc.stdout
