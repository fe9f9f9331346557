"""firmware.journal: a wiped panel's unacked events survive the gateway's retained ack from its
previous life (a journal that never had an ack renumbers them above it), an ack above the seq
of a journal that had acks is refused (a forged one must not trim what the gateway never
stored), and the journal fits the file system it is on.
"""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware import journal as J
from firmware.memfs import unacked as _unacked


def p(i):
    return J.pack_event(1, 1000 * i, None, "yes" if i % 2 else "no", None)


def unacked(j):
    return list(_unacked(j))


# ---- Task 1: an ack above the journal's head renumbers the unacked records -------------------


def test_fw_journal_rebase_moves_unacked_above_the_ack():
    fs = J.MemFs()
    j = J.Journal(fs, capacity=100)
    j.next_boot()
    for i in range(1, 6):
        j.append(p(i))
    j.ack(500)  # a fresh journal; the gateway knew this panel before its flash was wiped
    assert unacked(j) == [(501, p(1)), (502, p(2)), (503, p(3)), (504, p(4)), (505, p(5))]
    assert (j.acked, j.seq, j.pending(), j.renumbered, j.refused) == (500, 505, 5, 5, 0)
    assert j.next_after(500) == (501, p(1)) and j.next_after(502) == (503, p(3))
    assert j.append(p(6)) == 506
    j2 = J.Journal(fs, capacity=100)  # persisted: a reboot sees the new numbers
    assert unacked(j2)[0] == (501, p(1)) and (j2.acked, j2.seq, j2.boot) == (500, 506, 1)
    j2.ack(502)
    assert unacked(j2) == [(503, p(3)), (504, p(4)), (505, p(5)), (506, p(6))]
    j2.ack(2000)  # a second jump: this journal's numbers are known to the gateway now
    assert (unacked(j2)[0], j2.seq, j2.acked, j2.refused) == ((503, p(3)), 506, 502, 2000)
    j2.ack(506)
    j2.ack(3000)  # nothing unacked: still refused, new events go on from our own seq
    assert (unacked(j2), j2.seq, j2.refused) == ([], 506, 3000)
    assert j2.append(p(7)) == 507


def test_fw_journal_refuses_an_ack_above_its_seq_once_acked():
    """A forged retained ack (issue 13): the journal holds 3..5 unacked after a real ack of 2;
    an ack of 10**6 trims nothing, renumbers nothing, and is remembered for state until the
    next boot. Genuine acks go on working."""
    fs = J.MemFs()
    j = J.Journal(fs, capacity=16)
    for i in range(1, 6):
        j.append(p(i))
    j.ack(2)
    meta = dict((k, bytes(v)) for k, v in fs.files.items())
    for forged in (6, 10**6, 2**32 + 5):
        j.ack(forged)
        assert (j.acked, j.seq, j.pending(), j.refused, j.renumbered) == (2, 5, 3, forged, 0)
        assert unacked(j) == [(3, p(3)), (4, p(4)), (5, p(5))]
    assert dict((k, bytes(v)) for k, v in fs.files.items()) == meta  # nothing written
    assert j.append(p(6)) == 6
    j.ack(6)
    assert (j.pending(), j.refused) == (0, 2**32 + 5)
    again = J.Journal(fs, capacity=16)
    assert (again.seq, again.acked, again.refused) == (6, 6, 0)


def test_fw_journal_rebase_across_segments_after_overflow():
    # 2 records a segment: the unacked records span many segment files, the oldest were
    # dropped by overflow; the survivors become one consecutive run above the ack
    fs = J.MemFs()
    j = J.Journal(fs, capacity=16)
    for i in range(1, 31):
        j.append(p(i))
    kept = unacked(j)
    assert j.dropped > 0 and len(kept) == j.pending() > 16
    j.ack(10**6)
    got = unacked(j)
    assert [x for _, x in got] == [x for _, x in kept]
    assert [s for s, _ in got] == list(range(10**6 + 1, 10**6 + 1 + len(kept)))
    assert j.dropped == 30 - len(kept)  # counted once, not again
    for i in range(31, 45):  # rotation and overflow go on as before
        j.append(p(i))
    j.ack(10**6 + 5)
    j3 = J.Journal(fs, capacity=16)
    assert unacked(j3) == unacked(j) and j3.seq == j.seq == 10**6 + len(kept) + 14
    assert (j3.dropped, j3.pending(), j3.acked) == (j.dropped, j.pending(), 10**6 + 5)


def test_fw_journal_rebase_persists_at_once_even_with_lazy_ack_persist():
    fs = J.MemFs()
    j = J.Journal(fs, capacity=100)
    j.ACK_PERSIST_EVERY = 10
    for i in range(1, 4):
        j.append(p(i))
    j.ack(500)  # no flush(): the renumbering must not be deferred
    assert j.append(p(4)) == 504
    assert unacked(J.Journal(fs, capacity=100)) == [(501 + i, p(i + 1)) for i in range(4)]


def test_fw_journal_rebase_ack_leaving_no_seq_room_is_refused():
    j = J.Journal(J.MemFs(), capacity=100)
    for i in range(1, 4):
        j.append(p(i))
    j.ack(0xFFFFFFFF - 1)  # 3 records do not fit above it in the u32 seq space
    assert (j.acked, j.seq, unacked(j)) == (0, 3, [(1, p(1)), (2, p(2)), (3, p(3))])
    assert j.refused == 0xFFFFFFFF - 1


def _copy(fs, budget=None, fill=None):
    c = J.MemFs(budget=budget, fill=fill)
    c.files = {k: bytearray(v) for k, v in fs.files.items()}
    return c


@pytest.mark.parametrize("fill", [None, 0x00, 0xFF])
def test_fw_journal_rebase_power_cut_at_every_byte(fill):
    """Setup: presses 1..7 on a fresh flash (segments of 2, some dropped by overflow). Then the
    previous life's retained ack 500 arrives, a press, a real ack. A power cut at any byte, a
    reboot and the retained ack 500 again: every unacked press is there exactly once, in
    order, numbered 501, 502, ... (never under its old number, never lost, never twice)."""
    base = J.MemFs()
    j = J.Journal(base, capacity=16)
    j.next_boot()
    for i in range(1, 8):
        j.append(p(i))

    def ops(fs, done):
        j = J.Journal(fs, capacity=16)
        j.ack(500)
        done.append("rebased")
        j.append(p(8))
        done.append("appended")
        j.ack(502)
        done.append("acked")
        j.append(p(9))
        done.append("appended2")

    probe = _copy(base)
    ops(probe, [])
    total = probe.written
    cuts = 0
    for budget in range(total + 1):
        fs = _copy(base, budget, fill)
        done = []
        try:
            ops(fs, done)
        except J.PowerCut:
            cuts += 1
        fs.budget = None
        j = J.Journal(fs, capacity=16)
        j.ack(500)  # the retained ack again after the reboot
        got = unacked(j)
        seqs = [s for s, _ in got]
        assert seqs == list(range(j.acked + 1, j.acked + 1 + len(got))), (budget, seqs)
        assert j.acked in ((502,) if "acked" in done else (500, 502)), (budget, j.acked)
        # the presses the gateway does not have yet, in order
        want = [p(i) for i in range(1, 8)]
        if "appended" in done:
            want.append(p(8))
        if "appended2" in done:
            want.append(p(9))
        gone = j.acked - 500  # acked after the renumbering: 501, 502
        allowed = [want[gone:]]
        if "appended2" not in done:  # the press being written may be there or not
            allowed.append(want[gone:] + [p(8) if "appended" not in done else p(9)])
        assert [x for _, x in got] in allowed, (budget, done, got)
        assert j.append(p(99)) == j.acked + len(got) + 1
    assert cuts == total


rebase_ops = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.integers(1, 500)),
        st.tuples(st.just("ack"), st.integers(1, 4)),  # acked + n, at most the head
        st.tuples(st.just("jump"), st.integers(1, 10**6)),  # head + n: a previous life's
        st.tuples(st.just("reopen"), st.none()),
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=150, deadline=None)
@given(ops=rebase_ops, cut=st.integers(0, 2500), fill=st.sampled_from([None, 0, 0xFF]))
def test_fw_journal_rebase_random_workload_with_power_cut(ops, cut, fill):
    """Model: the unacked (seq, payload) in order. A jump renumbers them to ack+1, ... while no
    ack ever came (a wiped panel); after that a jump is refused and changes nothing. After a
    power cut and a reboot the gateway's last ack arrives again (it is retained): the journal
    then holds exactly the model's records (plus at most the one being appended)."""
    fs = J.MemFs(budget=cut, fill=fill)
    model, head, last_ack = [], 0, 0
    extra = None
    try:
        j = J.Journal(fs, capacity=100)
        for op, arg in ops:
            if op == "append":
                extra = (head + 1, p(arg))
                assert j.append(p(arg)) == head + 1
                model.append(extra)
                head += 1
                extra = None
            elif op == "reopen":
                j = J.Journal(fs, capacity=100)
            else:
                a = min(j.acked + arg, head) if op == "ack" else head + arg
                if a <= last_ack:
                    continue
                if a > head and last_ack:  # acked before: a forged ack, refused
                    j.ack(a)
                    assert j.refused == a and j.acked == last_ack
                    continue
                if a > head:
                    model = [(a + 1 + i, x) for i, (_, x) in enumerate(model)]
                    head = a + len(model)
                model = [(q, x) for q, x in model if q > a]
                last_ack = a
                j.ack(a)
    except J.PowerCut:
        pass
    fs.budget = None
    j = J.Journal(fs, capacity=100)
    if last_ack:
        j.ack(last_ack)
    got = unacked(j)
    assert got == model or (extra is not None and got == model + [extra]), (got, model)
    assert j.acked == last_ack and (not got or j.seq == got[-1][0])
    s = j.seq
    assert j.append(p(999)) == s + 1


# ---- Task 2: the journal fits the file system -------------------------------------------------


def test_fw_journal_capacity_is_clamped_to_the_file_system():
    # a 256 KB file system: 40,000 records of 48 B (1.9 MB) cannot fit; the journal takes what
    # fits, and overflow (not ENOSPC) is what happens when it is full
    fs = J.MemFs(disk=256 * 1024)
    fs.files["/app.mpy"] = bytearray(20000)  # code and config already there
    assert fs.room("/j") == 256 * 1024 - 20000
    j = J.Journal(fs, capacity=40000)
    assert j.capacity_wanted == 40000 and 100 < j.capacity < 40000
    assert j.capacity == j.seg_records * J.Journal.SEGMENTS
    for i in range(1, 2 * j.capacity):
        j.append(p(i))  # never raises OSError (no space left)
    assert j.dropped > 0 and j.pending() >= j.capacity
    assert fs.room("/j") >= J._ROOM_MARGIN - 2 * J.META_SIZE
    # the journal's own files count as its room at the next boot: the same capacity
    j2 = J.Journal(fs, capacity=40000)
    assert j2.capacity == j.capacity and unacked(j2) == unacked(j)


def test_fw_journal_capacity_not_clamped_when_it_fits_or_room_unknown(tmp_path):
    assert J.Journal(J.MemFs(disk=4 * 1024 * 1024), capacity=20000).capacity == 20000
    assert J.Journal(J.MemFs(), capacity=40000).capacity == 40000  # room() -> None
    fs = J.OsFs()
    room = fs.room(str(tmp_path / "j"))
    assert room is None or room > 0
    j = J.Journal(fs, prefix=str(tmp_path / "j"), capacity=100)
    assert j.capacity == j.capacity_wanted == 100


def test_fw_journal_tiny_file_system_keeps_a_working_journal():
    fs = J.MemFs(disk=J._ROOM_MARGIN + 300)
    j = J.Journal(fs, capacity=20000)
    assert j.seg_records == 1 and j.capacity == J.Journal.SEGMENTS
    for i in range(1, 30):
        j.append(p(i))
    assert j.pending() >= j.capacity


def test_fw_journal_small_fault_in_panel_state(tmp_path):
    from firmware import config
    from firmware.app import Panel
    from simulator.host_hal import HostHal

    def panel(fs):
        hal = HostHal(data_dir=str(tmp_path), now_ms=0)
        hal.wifi_up = False
        raw = {
            "site": "s1",
            "device": "p1",
            "wifi": {"ssid": "x"},
            "mqtt": {"host": "127.0.0.1"},
            "journal": {"capacity": 40000},
        }
        return Panel(hal, config.load(json.dumps(raw)), fs=fs)

    small = panel(J.MemFs(disk=512 * 1024))
    assert "journal_small" in small.state()["faults"]
    assert small.journal.capacity < 40000
    big = panel(J.MemFs(disk=4 * 1024 * 1024))
    assert "journal_small" not in big.state()["faults"]


# ---- the app: renumbered events are published -----------------------------------------------


@pytest.mark.e2e
def test_fw_journal_rebase_panel_publishes_renumbered_presses(broker, mqtt_root, tmp_path):
    """A panel with a wiped flash, pressed while offline; its gateway's retained ack says 500
    (its previous life). The presses arrive as 501, 502, 503 and are acked."""
    from fw_app_gateway import FakeGateway
    from panel_rig import DEVICE, SITE, Rig

    gw = FakeGateway(broker, mqtt_root, SITE, DEVICE)
    try:
        gw.stored = set(range(1, 501))
        gw.acked = 500
        from protocol import messages

        gw.c.publish(gw.topic["ack"], messages.encode_ack(500), qos=1, retain=True).wait_for_publish(5)
        rig = Rig(broker, mqtt_root, tmp_path)
        rig.hal.wifi_up = False
        rig.run_for(1000)  # the buttons' first samples (a button down at boot is no press)
        for name in ("yes", "no", "unsure"):
            rig.press(name)
        assert rig.panel.journal.seq == 3 and rig.panel.journal.pending() == 3
        rig.hal.wifi_up = True
        rig.run_until(lambda: rig.panel.journal.acked == 503, timeout_s=20, what="ack of seq 503")
        assert [(e["seq"], e["ev"]) for e in gw.events] == [(501, "yes"), (502, "no"), (503, "unsure")]
        assert rig.panel.journal.pending() == 0 and rig.panel.state()["seq"] == 503
        rig.panel.link.disconnect()
    finally:
        gw.close()


@pytest.mark.e2e
def test_fw_journal_rebase_cases_under_micropython():
    from mpy_support import check_mpy_cases

    proc = check_mpy_cases("fw_journal_rebase_cases", heapsize="100k", timeout=120)
    assert "3 passed, 0 failed" in proc.stdout, proc.stdout
