"""Durable event journal: append-only fixed-size records in a ring of segment files.

Every event is appended (and flushed) before any publish; it leaves flash only when the
gateway's cumulative ack covers it, by dropping whole segment files. A power cut at any byte
loses at most the record being written (its CRC fails), never a neighbour. See firmware/README.md
"Journal format" for the bytes and the flash-wear budget.

File I/O goes through a small adapter (OsFs on the device, MemFs for the simulator and the
power-cut tests): read(path, offset, buf) -> n, append(path, data), write(path, data),
remove(path), size(path) -> int or None, and optionally room(path) -> bytes free or None.
MemFs and PowerCut live in firmware/memfs.py so the panel never loads them;
`journal.MemFs` / `journal.PowerCut` still work (module __getattr__).
"""

import binascii
import struct

from firmware import const

crc32 = binascii.crc32  # in every port the panel runs on (ESP32, unix, WebAssembly)

# const() with a leading underscore: numbers in the bytecode, no names in the heap
_MAGIC = const(0xA5)
_HEAD = const(6)  # magic u8, payload length u8, seq u32
_TAIL = const(4)  # crc32 of the record's other bytes, salted with (segment, slot)
# magic, gen, seq, acked, boot, dropped, first segment, record size, 0, seq offset (a record
# stores seq - offset; the offset was 4 zero bytes before, so older metas read as offset 0)
META = "<4sIIIIIIHHI"
META_MAGIC = b"JRN1"
META_SIZE = const(40)  # struct above (36) + crc32
# file-system room kept free besides the journal's records: block rounding of its 11 files
# (4 KB blocks on littlefs), remote.json, littlefs's copy-on-write blocks, a code update
_ROOM_MARGIN = const(65536)


class OsFs:
    """Real files through open()/os (device, unix port, CPython). Caches one read handle."""

    def __init__(self):
        self._rpath = None
        self._rf = None

    def _forget(self, path):
        if self._rpath == path and self._rf is not None:
            self._rf.close()
            self._rpath = self._rf = None

    def read(self, path, offset, buf):
        if self._rpath != path:
            self._forget(self._rpath)
            try:
                self._rf = open(path, "rb")
            except OSError:
                return 0
            self._rpath = path
        f = self._rf
        if f is None:
            return 0
        f.seek(offset)
        return f.readinto(buf) or 0

    def append(self, path, data):
        self._forget(path)
        f = open(path, "ab")
        try:
            f.write(data)
            f.flush()
        finally:
            f.close()  # close syncs the file on littlefs and FAT: durable on return

    def write(self, path, data):
        self._forget(path)
        f = open(path, "wb")
        try:
            f.write(data)
            f.flush()
        finally:
            f.close()

    def remove(self, path):
        import os

        self._forget(path)
        try:
            os.remove(path)
        except OSError:
            pass

    def size(self, path):
        import os

        try:
            return os.stat(path)[6]
        except OSError:
            return None

    def room(self, path):
        import os

        try:
            s = os.statvfs(path[: path.rfind("/") + 1] or ".")
            return s[1] * s[4]  # fragment size x fragments free
        except Exception:  # no statvfs on this port or file system
            return None


class _Seg:
    """One segment file: its number, slots used, first and last valid seq (0: none yet)."""

    def __init__(self, num, slots=0, first=0, last=0):
        self.num = num
        self.slots = slots
        self.first = first
        self.last = last


class Journal:
    SEGMENTS = 8  # capacity is spread over this many full segments (+1 being filled)
    ACK_PERSIST_EVERY = 1  # persist the ack after this many newly acked records; one that
    # is not persisted yet comes again (the gateway retains it)

    def __init__(self, fs, prefix="/j", capacity=20000, record_size=48):
        if not _HEAD + _TAIL < record_size <= _HEAD + _TAIL + 255:
            raise ValueError("record_size must be %d..%d" % (_HEAD + _TAIL + 1, _HEAD + _TAIL + 255))
        self.fs = fs
        self.prefix = prefix
        self.capacity = self.capacity_wanted = capacity
        self.seg_records = max(1, (capacity + self.SEGMENTS - 1) // self.SEGMENTS)
        self._set_record_size(record_size)
        self._salt = bytearray(8)
        self._mbuf = bytearray(META_SIZE)
        self._segs = []  # _Seg, oldest first
        self.seq = 0  # last seq assigned
        self.acked = 0  # gateway's cumulative ack
        self.boot = 0
        self.dropped = 0  # unacked records lost to overflow
        self._first = 0  # number of the oldest segment file
        self._gen = 0
        self._mslot = 0  # meta copy (0/1) to write next
        self._acked_saved = 0
        self._pad = 0  # bytes that complete a torn tail slot before the next append
        self._padbyte = 0
        self._off = 0  # seq = stored seq + _off (see ack)
        self.renumbered = 0  # records renumbered above an ack since boot (see ack)
        self.refused = 0  # the last ack refused since boot for being above our seq (see ack)
        used = self._open()
        room = fs.room(prefix) if hasattr(fs, "room") else None
        if room is not None:
            # the config may ask for more than the file system holds (40,000 records are
            # 1.9 MB; a 4 MB ESP32 has ~2 MB for files and code): at most 9 segments must fit
            # in what is free plus what the journal holds already
            n = (room + used - _ROOM_MARGIN) // ((self.SEGMENTS + 1) * self.rs)
            if n < self.seg_records:
                self.seg_records = n if n > 0 else 1
                self.capacity = self.seg_records * self.SEGMENTS

    def _set_record_size(self, rs):
        self.rs = rs
        self.max_payload = rs - _HEAD - _TAIL
        self._buf = bytearray(rs)
        self._mv = memoryview(self._buf)
        self._zeros = bytes(rs)

    # ---- paths, meta -------------------------------------------------------------------

    def _seg_path(self, num):
        return "%s.s%d" % (self.prefix, num)

    def _save_meta(self):
        # two copies written alternately: a cut while writing one leaves the other intact
        self._gen += 1
        b = self._mbuf
        struct.pack_into(
            META,
            b,
            0,
            META_MAGIC,
            self._gen,
            self.seq,
            self.acked,
            self.boot,
            self.dropped,
            self._first,
            self.rs,
            0,
            self._off,
        )
        struct.pack_into("<I", b, META_SIZE - 4, crc32(memoryview(b)[0 : META_SIZE - 4]))
        self.fs.write("%s.m%d" % (self.prefix, self._mslot), b)
        self._mslot ^= 1
        self._acked_saved = self.acked

    def _load_meta(self):
        best = None
        b = self._mbuf
        for i in (0, 1):
            if self.fs.read("%s.m%d" % (self.prefix, i), 0, b) != META_SIZE:
                continue
            if struct.unpack_from("<I", b, META_SIZE - 4)[0] != crc32(memoryview(b)[0 : META_SIZE - 4]):
                continue
            m = struct.unpack_from(META, b, 0)
            if m[0] == META_MAGIC and (best is None or m[1] > best[1]):
                best = m
                self._mslot = i ^ 1  # overwrite the older copy next
        if best:
            _, self._gen, self.seq, self.acked, self.boot, self.dropped, self._first, rs, _, self._off = best
            self._acked_saved = self.acked
            if rs != self.rs and _HEAD + _TAIL < rs <= _HEAD + _TAIL + 255:
                # the journal on flash keeps its record size (a firmware update must not
                # make its records unreadable)
                self._set_record_size(rs)

    # ---- records -----------------------------------------------------------------------

    def _crc(self, num, slot):
        struct.pack_into("<II", self._salt, 0, num, slot)
        # the salt makes a stale record (an old file's bytes, another slot) fail the check
        return crc32(self._mv[0 : self.rs - _TAIL], crc32(self._salt))

    def _read(self, num, slot):
        """Load record `slot` of segment `num` into _buf; its seq if valid, else None."""
        b = self._buf
        if self.fs.read(self._seg_path(num), slot * self.rs, b) != self.rs:
            return None
        if b[0] != _MAGIC or b[1] > self.max_payload or not self._crc_ok(num, slot):
            return None
        return struct.unpack_from("<I", b, 2)[0] + self._off

    def _crc_ok(self, num, slot):
        return struct.unpack_from("<I", self._buf, self.rs - _TAIL)[0] == self._crc(num, slot)

    def _open(self):
        self._load_meta()
        fs = self.fs
        # a cut between writing the meta and removing dropped segments leaves them behind
        n = self._first - 1
        while n >= 0 and fs.size(self._seg_path(n)) is not None:
            fs.remove(self._seg_path(n))
            n -= 1
        n = self._first
        last_size = used = 0
        while True:
            size = fs.size(self._seg_path(n))
            if size is None:
                break
            seg = _Seg(n, (size + self.rs - 1) // self.rs)
            for i in range(seg.slots):
                seg.first = self._read(n, i) or 0
                if seg.first:
                    break
            if seg.first:
                for i in range(seg.slots - 1, -1, -1):
                    seg.last = self._read(n, i) or 0
                    if seg.last:
                        break
                if seg.last > self.seq:
                    self.seq = seg.last
            self._segs.append(seg)
            n += 1
            last_size = size
            used += size
        if self._segs and last_size % self.rs:
            # a torn tail: the next append first completes its slot with bytes that keep it
            # invalid (zeros, or 0xFF in the 1-in-2**32 case where zeros would pass the CRC)
            self._pad = self.rs - last_size % self.rs
            seg = self._segs[-1]
            seg.slots -= 1
            self.fs.read(self._seg_path(seg.num), seg.slots * self.rs, self._buf)
            self._mv[self.rs - self._pad :] = self._zeros[0 : self._pad]
            if self._buf[0] == _MAGIC and self._crc_ok(seg.num, seg.slots):
                self._padbyte = 0xFF
        return used

    # ---- API ---------------------------------------------------------------------------

    def next_boot(self):
        """Count this boot (persisted) and return its number: 1, 2, ..."""
        self.boot += 1
        self._save_meta()
        return self.boot

    def append(self, payload):
        """Store payload (bytes, <= max_payload) durably; return its seq (never reused)."""
        n = len(payload)
        if n > self.max_payload:
            raise ValueError("journal: payload of %d bytes, at most %d fit a record" % (n, self.max_payload))
        while True:
            seg = self._segs[-1] if self._segs else None
            if seg is None or seg.slots >= self.seg_records:
                seg = self._new_segment()
            path = self._seg_path(seg.num)
            try:
                if self._pad:
                    fill = self._zeros if self._padbyte == 0 else bytes([0xFF]) * self._pad
                    self.fs.append(path, fill[0 : self._pad])
                    self._pad = 0
                    seg.slots += 1
                seq = self.seq + 1
                b = self._buf
                b[0] = _MAGIC
                b[1] = n
                struct.pack_into("<I", b, 2, seq - self._off)
                self._mv[_HEAD : _HEAD + n] = payload
                self._mv[_HEAD + n : self.rs - _TAIL] = self._zeros[0 : self.rs - _TAIL - _HEAD - n]
                struct.pack_into("<I", b, self.rs - _TAIL, self._crc(seg.num, seg.slots))
                self.fs.append(path, b)
                break
            except OSError as e:
                # flash full or failing: re-learn where the file ends so the next try is aligned
                size = self.fs.size(path) or 0
                seg.slots = size // self.rs
                self._pad = (self.rs - size % self.rs) % self.rs
                self._padbyte = 0
                # ENOSPC although the capacity fit at open (another file grew, or not even 9
                # records fit): overflow early (the oldest go, counted) rather than lose this
                if e.args[:1] != (28,) or len(self._segs) < 2:
                    raise
                self.dropped += self._unacked_in(self._segs[0])
                self._drop(1)
        seg.slots += 1
        seg.last = seq
        if not seg.first:
            seg.first = seq
        self.seq = seq
        return seq

    def _new_segment(self):
        num = self._segs[-1].num + 1 if self._segs else self._first
        # fully acked segments go now; if still full, the oldest goes and its unacked
        # records are counted as dropped
        k = 0
        while k < len(self._segs) and self._unacked_in(self._segs[k]) == 0:
            k += 1
        if len(self._segs) - k >= self.SEGMENTS + 1:
            self.dropped += self._unacked_in(self._segs[k])
            k += 1
        if k:
            self._drop(k)
        seg = _Seg(num)
        self._segs.append(seg)
        self._pad = 0
        return seg

    def _drop(self, k):
        """Forget the k oldest segments: persist the meta first, then remove the files."""
        self._first = self._segs[k].num if k < len(self._segs) else self._segs[-1].num + 1
        self._save_meta()
        for _ in range(k):
            self.fs.remove(self._seg_path(self._segs.pop(0).num))

    def _unacked_in(self, seg):
        if seg.last <= self.acked:  # also a segment without valid records (last 0)
            return 0
        # seqs are consecutive within a segment (a torn record's seq is assigned again)
        return seg.last - (seg.first if seg.first > self.acked else self.acked + 1) + 1

    def ack(self, seq):
        """Cumulative ack: every record with seq <= `seq` is stored by the gateway. An ack
        above our own last seq is refused (noted in `refused`) unless this journal never had
        an ack: see "A wiped panel" and "A forged ack" in firmware/README.md."""
        if seq <= self.acked:
            return
        if seq > self.seq:
            if self.acked or self._off or seq > 0xFFFFFFFF:
                # This journal's numbers reached the gateway before, so it cannot know a seq
                # we never assigned: a forged or junk ack (anyone who may publish on the ack
                # topic). Trimming on it would delete presses it never stored.
                self.refused = seq
                return
            # A fresh journal (flash wiped, board replaced) and the gateway knows a previous
            # life of this panel: our unacked records never reached it under these numbers
            # and would pass for acked. Renumber them to seq+1, ... (and new events after
            # them) by moving the offset between stored and given seqs: one meta write, so a
            # power cut leaves either numbering whole, and under the old one the retained ack
            # comes again. Seqs stay consecutive, as next_after needs.
            r = self.next_after(self.acked)
            d = seq + 1 - (r[0] if r else self.seq + 1)
            if self.seq + d > 0xFFFFFFFF:
                self.refused = seq
                return
            r = self.pending()
            a = self.acked
            self._off += d
            self.seq += d
            self.acked = seq
            try:
                self._save_meta()
            except Exception:
                # not on flash: the numbering must not be used (a reboot would renumber what
                # the gateway stored under it again); the retained ack comes again
                self._off -= d
                self.seq -= d
                self.acked = a
                raise
            self.renumbered += r
            for s in self._segs:
                if s.first:
                    s.first += d
                    s.last += d
        self.acked = seq
        k = 0
        while k < len(self._segs) - 1 and self._unacked_in(self._segs[k]) == 0:
            k += 1  # the segment being filled stays (no new file per ack)
        if k:
            self._drop(k)
        elif self.acked - self._acked_saved >= self.ACK_PERSIST_EVERY:
            self._save_meta()

    def pending(self):
        n = 0
        for seg in self._segs:
            n += self._unacked_in(seg)
        return n

    def next_after(self, seq):
        """(seq, payload) of the first unacked record with a seq above `seq`, or None."""
        s = seq if seq > self.acked else self.acked
        for seg in self._segs:
            if seg.last <= s:
                continue
            # seq s+1 sits at slot >= s+1-first (slots of torn records only push it later)
            start = 0 if seg.first > s else s + 1 - seg.first
            for slot in range(start, seg.slots):
                q = self._read(seg.num, slot)
                if q is not None and q > s:
                    return q, bytes(self._mv[_HEAD : _HEAD + self._buf[1]])
        return None


EVENT = "<Iqqi"  # boot, up, t (-1 = not synced), hold (-1 = none); then the event name
_EVENT_SIZE = const(24)


def pack_event(boot, up, t, ev, hold=None):
    """A button event as a compact journal payload (24 bytes + the name)."""
    return struct.pack(EVENT, boot, up, -1 if t is None else t, -1 if hold is None else hold) + ev.encode()


def unpack_event(payload):
    """-> (boot, up, t, ev, hold), ready for messages.encode_event(seq, *...)."""
    boot, up, t, hold = struct.unpack_from(EVENT, payload, 0)
    return boot, up, (None if t < 0 else t), bytes(payload[_EVENT_SIZE:]).decode(), (None if hold < 0 else hold)


def __getattr__(name):
    # journal.MemFs / journal.PowerCut: simulator and test code, kept out of the panel's heap
    if name in ("MemFs", "PowerCut"):
        from firmware import memfs

        return getattr(memfs, name)
    raise AttributeError(name)
