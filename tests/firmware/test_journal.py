"""firmware.journal: durability across power cuts at every byte, acks, overflow, reopen."""

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware import journal as J
from firmware.memfs import unacked


def payload(i):
    return J.pack_event(
        1,
        1000 * i,
        None if i % 3 else 1732270000000 + i,
        "yes" if i % 2 else "seller_long",
        None if i % 2 else 1500 + i,
    )


def records(j):
    return list(unacked(j))


def check_consistent(j):
    """Invariants any journal must keep, whatever happened before."""
    recs = records(j)
    seqs = [s for s, _ in recs]
    assert seqs == sorted(set(seqs)), "records out of order or duplicated"
    assert all(s > j.acked for s in seqs)
    assert j.pending() == len(recs)
    assert j.seq >= (seqs[-1] if seqs else 0)
    return recs


# ---- basics on both adapters ---------------------------------------------------------------


@pytest.fixture(params=["mem", "os"])
def fs_factory(request, tmp_path):
    if request.param == "mem":
        fs = J.MemFs()
        return lambda: fs, lambda: None
    prefix = str(tmp_path / "j")
    return J.OsFs, prefix


def open_journal(fs_factory, **kw):
    make, prefix = fs_factory
    prefix = prefix() if callable(prefix) else prefix
    return J.Journal(make(), prefix=prefix or "/j", **kw)


def test_fw_core_journal_append_ack_reopen(fs_factory):
    j = open_journal(fs_factory, capacity=64)
    assert j.next_boot() == 1
    seqs = [j.append(payload(i)) for i in range(1, 41)]
    assert seqs == list(range(1, 41))
    assert j.pending() == 40
    j.ack(25)
    assert j.pending() == 15 and j.acked == 25
    assert [s for s, _ in unacked(j)] == list(range(26, 41))
    assert [s for s, _ in unacked(j, 30)] == list(range(31, 41))
    assert j.next_after(39) == (40, payload(40))
    assert j.next_after(40) is None

    j2 = open_journal(fs_factory, capacity=64)
    assert (j2.seq, j2.acked, j2.boot, j2.dropped) == (40, 25, 1, 0)
    assert records(j2) == [(i, payload(i)) for i in range(26, 41)]
    assert j2.next_boot() == 2
    assert j2.append(payload(41)) == 41
    j2.ack(20)  # lower than acked: ignored
    assert j2.acked == 25
    j2.ack(41)
    assert j2.pending() == 0 and records(j2) == []
    j3 = open_journal(fs_factory, capacity=64)
    assert (j3.seq, j3.acked, j3.pending(), j3.boot) == (41, 41, 0, 2)
    assert j3.append(payload(42)) == 42  # seq continues even with nothing left on flash


def test_fw_core_journal_acked_segments_leave_flash():
    fs = J.MemFs()
    j = J.Journal(fs, capacity=80)  # 10 records a segment
    for i in range(1, 101):
        j.append(payload(i))
    assert len([p for p in fs.files if ".s" in p]) == 9 and j.dropped == 10
    j.ack(95)
    # every fully acked segment is gone, the one being filled stays
    assert sorted(p for p in fs.files if ".s" in p) == ["/j.s9"]
    assert records(j) == [(i, payload(i)) for i in range(96, 101)]


def test_fw_core_journal_overflow_drops_oldest_and_counts():
    fs = J.MemFs()
    cap = 40  # 5 records a segment, 9 segments at most
    j = J.Journal(fs, capacity=cap)
    for i in range(1, cap + 6):  # fills 8 full segments + the 9th
        j.append(payload(i))
    assert j.dropped == 0 and j.pending() == cap + 5
    j.append(payload(cap + 6))  # needs a 10th segment: the oldest 5 go
    assert j.dropped == 5 and j.pending() == cap + 1
    assert j.dropped + j.pending() == j.seq  # nothing unaccounted
    assert records(j)[0][0] == 6
    j.ack(10)  # ack covering dropped + kept records
    for i in range(cap + 7, cap + 30):
        j.append(payload(i))
    assert j.pending() >= cap  # never fewer than `capacity` kept
    j2 = J.Journal(fs, capacity=cap)
    assert (j2.dropped, j2.pending(), j2.seq) == (j.dropped, j.pending(), j.seq)
    check_consistent(j2)


def test_fw_core_journal_ack_beyond_seq_skips_ahead():
    # a wiped panel learns from the gateway's retained ack where its numbering stood; what it
    # holds unacked is renumbered above it (tests/firmware/test_journal_renumbering.py)
    j = J.Journal(J.MemFs(), capacity=100)
    j.append(payload(1))
    j.ack(500)
    assert records(j) == [(501, payload(1))] and j.append(payload(2)) == 502


def test_fw_core_journal_keeps_its_record_size_across_updates():
    fs = J.MemFs()
    j = J.Journal(fs, record_size=48)
    j.next_boot()
    j.append(payload(1))
    j2 = J.Journal(fs, record_size=64)
    assert j2.rs == 48 and records(j2) == [(1, payload(1))]
    assert j2.append(payload(2)) == 2 and J.Journal(fs, record_size=32).pending() == 2


def test_fw_core_journal_rejects_oversized_payload():
    j = J.Journal(J.MemFs())
    with pytest.raises(ValueError, match="at most 38"):
        j.append(bytes(39))
    assert j.append(bytes(38)) == 1


def test_fw_core_event_payload_round_trip():
    from protocol import messages

    for args in (
        (1, 0, None, "yes", None),
        (70000, 2**40, 1732270000123, "seller_long", 1500),
        (3, 5, 1577836800000, "seller_short", 0),
    ):
        p = J.pack_event(*args)
        assert len(p) <= J.Journal(J.MemFs()).max_payload
        assert J.unpack_event(p) == args
        assert messages.decode_event(messages.encode_event(7, *J.unpack_event(p)))["ev"] == args[3]


def test_fw_core_journal_os_torn_tail_file(tmp_path):
    prefix = str(tmp_path / "j")
    j = J.Journal(J.OsFs(), prefix=prefix, capacity=100)
    for i in range(1, 6):
        j.append(payload(i))
    seg = prefix + ".s0"
    with open(seg, "r+b") as f:  # power cut in the middle of record 5
        f.truncate(4 * 48 + 20)
    j2 = J.Journal(J.OsFs(), prefix=prefix, capacity=100)
    assert records(j2) == [(i, payload(i)) for i in range(1, 5)]
    assert j2.append(payload(99)) == 5
    assert os.path.getsize(seg) == 6 * 48  # torn slot completed, then the new record
    j3 = J.Journal(J.OsFs(), prefix=prefix, capacity=100)
    assert records(j3) == [(i, payload(i)) for i in range(1, 5)] + [(5, payload(99))]


def test_fw_core_journal_stale_record_in_other_slot_is_rejected():
    fs = J.MemFs()
    j = J.Journal(fs, capacity=80)
    for i in range(1, 12):  # seg 0 full (10), seg 1 has record 11
        j.append(payload(i))
    # a file system handing back old bytes: copy a valid record of seg 0 into seg 1's slot 1
    fs.files["/j.s1"] += fs.files["/j.s0"][48:96]
    j2 = J.Journal(fs, capacity=80)
    assert [s for s, _ in records(j2)] == list(range(1, 12))


def test_fw_core_journal_flash_writes_per_event():
    fs = J.MemFs()
    j = J.Journal(fs, capacity=20000)
    j.next_boot()
    before = fs.written
    for i in range(1, 101):
        j.append(payload(i))
        j.ack(i)
    per_event = (fs.written - before) / 100
    assert per_event == 48 + J.META_SIZE  # one record + one meta copy, no rewrite
    j.ACK_PERSIST_EVERY = 10
    before = fs.written
    for i in range(101, 201):
        j.append(payload(i))
        j.ack(i)
    assert (fs.written - before) / 100 == 48 + J.META_SIZE / 10


# ---- power cuts -----------------------------------------------------------------------------


class Model:
    """What a correct journal must hold, tracked alongside a workload that may be cut."""

    def __init__(self):
        self.payloads = {}  # seq -> payload of every append that returned
        self.last_seq = 0
        self.ack_done = 0  # highest ack() that returned
        self.boots = 0


def run_workload(fs, ops, model, capacity):
    j = J.Journal(fs, capacity=capacity)
    for op, arg in ops:
        if op == "boot":
            b = j.next_boot()
            model.boots = b
        elif op == "append":
            p = payload(arg)
            s = j.append(p)
            assert s > model.last_seq
            model.payloads[s] = p
            model.last_seq = s
        elif op == "ack":
            s = min(arg, j.seq)
            j.ack(s)
            model.ack_done = max(model.ack_done, s)
        elif op == "reopen":
            j = J.Journal(fs, capacity=capacity)
    return j


def verify_after_cut(fs, model, capacity, cut_op):
    fs.budget = None
    j = J.Journal(fs, capacity=capacity)
    recs = check_consistent(j)
    # nothing acked by the gateway comes back more than it may; nothing unacked is lost
    assert j.acked >= model.ack_done
    assert j.boot >= model.boots
    assert j.seq >= model.last_seq
    got = dict(recs)
    for s, p in got.items():
        if s in model.payloads:
            assert p == model.payloads[s], "record %d corrupted" % s
        else:
            # only the record being written when the power died may appear beyond the model
            assert s == model.last_seq + 1 and cut_op == "append"
    kept = [s for s in model.payloads if s > j.acked]
    missing = [s for s in kept if s not in got]
    # missing unacked records are only those dropped by overflow (oldest first, counted)
    if missing:
        assert max(missing) < min(got) if got else True
        assert j.dropped >= len(missing)
    # the journal keeps working: the next seq is new
    s = j.append(payload(999))
    assert s > model.last_seq and s not in got
    j2 = J.Journal(fs, capacity=capacity)
    assert check_consistent(j2)[-1] == (s, payload(999))


def cut_everywhere(ops, capacity, fill, setup_ops=()):
    """Run setup_ops fully, then ops with a power cut after every possible byte count."""
    base = J.MemFs()
    base_model = Model()
    run_workload(base, setup_ops, base_model, capacity)
    # total bytes the ops write when nothing is cut
    probe = J.MemFs()
    probe.files = {k: bytearray(v) for k, v in base.files.items()}
    run_workload(probe, ops, _copy_model(base_model), capacity)
    total = probe.written
    assert total > 0
    cuts = 0
    for budget in range(total + 1):
        fs = J.MemFs(budget=budget, fill=fill)
        fs.files = {k: bytearray(v) for k, v in base.files.items()}
        model = _copy_model(base_model)
        cut_op = None
        try:
            run_workload(fs, ops, model, capacity)
        except J.PowerCut:
            cuts += 1
            cut_op = "unknown"
        verify_after_cut(fs, model, capacity, "append" if cut_op else None)
    return cuts


def _copy_model(m):
    c = Model()
    c.payloads = dict(m.payloads)
    c.last_seq, c.ack_done, c.boots = m.last_seq, m.ack_done, m.boots
    return c


@pytest.mark.parametrize("fill", [None, 0x00, 0xFF])
def test_fw_core_journal_power_cut_every_byte_of_append(fill):
    setup = [("boot", None)] + [("append", i) for i in range(1, 8)] + [("ack", 3)]
    assert cut_everywhere([("append", 8)], capacity=40, fill=fill, setup_ops=setup) == 48


@pytest.mark.parametrize("fill", [None, 0xFF])
def test_fw_core_journal_power_cut_every_byte_of_ack_rotation_and_overflow(fill):
    # capacity 16: 2 records a segment, so acks drop segments and appends rotate and overflow
    setup = [("boot", None)] + [("append", i) for i in range(1, 6)]
    ops = (
        [("ack", 2), ("append", 6), ("ack", 5), ("boot", None), ("reopen", None)]
        + [("append", i) for i in range(7, 30)]
        + [("ack", 20), ("append", 30), ("reopen", None), ("append", 31)]
    )
    cuts = cut_everywhere(ops, capacity=16, fill=fill, setup_ops=setup)
    assert cuts > 1000


def test_fw_core_journal_power_cut_after_torn_tail_again():
    # cut, reopen, cut again in the pad+append that repairs the torn slot
    setup = [("append", i) for i in range(1, 4)]
    base = J.MemFs()
    run_workload(base, setup, Model(), 100)
    fs = J.MemFs(budget=20)
    fs.files = base.files
    with pytest.raises(J.PowerCut):
        J.Journal(fs, capacity=100).append(payload(4))
    for budget in range(0, 48 + 28 + 1):
        fs2 = J.MemFs(budget=budget)
        fs2.files = {k: bytearray(v) for k, v in fs.files.items()}
        try:
            J.Journal(fs2, capacity=100).append(payload(5))
        except J.PowerCut:
            pass
        fs2.budget = None
        j = J.Journal(fs2, capacity=100)
        recs = check_consistent(j)
        assert recs[:3] == [(i, payload(i)) for i in range(1, 4)]
        assert recs[3:] in ([], [(4, payload(5))])
        assert j.append(payload(6)) == len(recs) + 1


ops_strategy = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.integers(1, 500)),
        st.tuples(st.just("ack"), st.integers(0, 60)),
        st.tuples(st.just("boot"), st.none()),
        st.tuples(st.just("reopen"), st.none()),
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=120, deadline=None)
@given(ops=ops_strategy, cut=st.integers(0, 3000), fill=st.sampled_from([None, 0, 0xFF]))
def test_fw_core_journal_random_workload_with_power_cut(ops, cut, fill):
    fs = J.MemFs(budget=cut, fill=fill)
    model = Model()
    cut_op = None
    try:
        run_workload(fs, ops, model, capacity=16)
    except J.PowerCut:
        cut_op = "append"
    verify_after_cut(fs, model, 16, cut_op)


def _p(i):
    return J.pack_event(1, 1000 * i, None, "yes", None)


def test_events_after_ack_jump_are_found():
    # A wiped panel records presses before the gateway's retained ack (above its seq) arrives;
    # the presses after the jump must still be readable in order (next_after assumed the seqs
    # of one segment are consecutive and skipped them). The presses before it are renumbered
    # above the ack (tests/firmware/test_journal_renumbering.py).
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


def test_ack_beyond_32_bit_seq_space_is_ignored():
    # records and meta hold seq as u32: a bogus retained ack (hand-published, gateway bug)
    # above it raised struct.error on CPython and wrapped silently on MicroPython, after which
    # every new press was stored under a seq next_after never finds again
    fs = J.MemFs()
    j = J.Journal(fs, capacity=100)
    j.append(_p(1))
    j.ack(2**32 + 5)
    assert (j.acked, j.seq, j.pending(), j.refused) == (0, 1, 1, 2**32 + 5)
    assert j.append(_p(2)) == 2
    assert [s for s, _ in unacked(j)] == [1, 2]


@pytest.mark.e2e
def test_cases_under_micropython():
    from mpy_support import check_mpy_cases

    proc = check_mpy_cases("fw_journal_ack_cases", heapsize="100k", timeout=60)
    assert "2 passed, 0 failed" in proc.stdout, proc.stdout


def p(i):
    return J.pack_event(1, 1000 * i, None, "yes" if i % 2 else "no", None)


def _check_no_press_lost_uncounted(j, n, acked=0):
    got = records(j)
    assert [x for _, x in got] == [p(i) for i in range(n - len(got) + 1, n + 1)]
    assert [s for s, _ in got] == list(range(n - len(got) + 1, n + 1))
    assert j.seq == n and j.dropped == n - acked - len(got)


def test_fs_filled_by_another_file_drops_oldest_not_the_press():
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
    assert records(j2) == records(j) and (j2.seq, j2.dropped) == (j.seq, j.dropped)


def test_fs_smaller_than_nine_records_keeps_the_newest():
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


def test_enospc_with_one_segment_still_raises():
    # nothing older to drop: the press cannot be stored, the app reports the journal fault
    fs = J.MemFs(disk=256 * 1024)
    j = J.Journal(fs, capacity=800)
    j.append(p(1))
    fs.files["/update.mpy"] = bytearray(fs.room("/j") - 20)
    with pytest.raises(OSError):
        j.append(p(2))
    assert (j.seq, j.dropped, records(j)) == (1, 0, [(1, p(1))])


@pytest.mark.parametrize("acked_before", [0])  # acked before, a jump is refused (test_journal_renumbering)
def test_rebase_not_in_force_unless_persisted(acked_before):
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
        for s, x in records(j):
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


@pytest.mark.e2e
def test_room_cases_under_micropython():
    from mpy_support import check_mpy_cases

    proc = check_mpy_cases("fw_journal_room_cases", heapsize="100k", timeout=120)
    assert "2 passed, 0 failed" in proc.stdout, proc.stdout
