"""firmware.journal review cases under a real MicroPython VM (run by
tests/firmware/test_journal.py): ENOSPC (OSError errno in args[0] on MicroPython)
overflows early instead of losing the press; a renumbering whose meta write fails is undone."""

from firmware import journal
from firmware.memfs import MemFs, unacked


def _p(i):
    return journal.pack_event(1, i * 1000, None, "yes" if i % 2 else "no", None)


def test_enospc_drops_oldest_and_stores_the_press():
    fs = MemFs(disk=256 * 1024)
    j = journal.Journal(fs, capacity=80)
    j.next_boot()
    for i in range(1, 61):
        j.append(_p(i))
    j.ack(1)
    fs.disk -= fs.room("/j") - 300  # other files took the room (no big bytearray here)
    for i in range(61, 201):
        j.append(_p(i))
    got = list(unacked(j))
    assert [s for s, _ in got] == list(range(201 - len(got), 201)), got[:3]
    assert got[-1] == (200, _p(200)) and j.dropped == 199 - len(got)


def test_failed_renumbering_is_undone():
    fs = MemFs()
    j = journal.Journal(fs, capacity=16)
    for i in range(1, 6):
        j.append(_p(i))
    fs.fail_writes = 1
    try:
        j.ack(500)
        raise AssertionError("no OSError")
    except OSError:
        pass
    assert (j.acked, j.seq, j.renumbered) == (0, 5, 0)
    assert [s for s, _ in unacked(j)] == [1, 2, 3, 4, 5]
    j.ack(500)
    assert [s for s, _ in unacked(j)] == [501, 502, 503, 504, 505]
    j2 = journal.Journal(fs, capacity=16)
    assert [s for s, _ in unacked(j2)] == [501, 502, 503, 504, 505]
