"""Files in RAM for the journal (simulator, power-cut tests): the same adapter as
journal.OsFs. Not loaded on the panel; `journal.MemFs` / `journal.PowerCut` reach it too.
"""


class PowerCut(Exception):
    """MemFs ran out of its byte budget: the simulated power died mid-operation."""


class MemFs:
    """Files in RAM. budget=n: the power dies after n more bytes are written (PowerCut);
    an operation that would need a byte more stops there. fill=None leaves a cut write as a
    prefix; fill=0x00/0xFF also extends the file to full length (FAT may update the size first).
    disk=n: a file system of n bytes (room() reports what is free, a write that does not fit
    raises OSError ENOSPC); None: unlimited, room() -> None.
    fail_writes=n: the next n write() calls (the journal's meta) raise OSError ENOSPC after
    truncating the file, as open("wb") does (a flash error, a full file system).
    """

    def __init__(self, budget=None, fill=None, disk=None):
        self.files = {}
        self.budget = budget
        self.fill = fill
        self.disk = disk
        self.written = 0  # bytes written in total (flash-wear statistics)
        self.fail_writes = 0

    def read(self, path, offset, buf):
        data = self.files.get(path)
        if data is None:
            return 0
        n = max(0, min(len(buf), len(data) - offset))
        buf[0:n] = data[offset : offset + n]
        return n

    def _put(self, target, data):
        n = len(data)
        room = self.room(None)
        if room is not None and n > room:
            raise OSError(28)  # ENOSPC
        if self.budget is not None and n > self.budget:
            k = self.budget
            self.budget = 0
            target.extend(data[:k])
            if self.fill is not None:
                target.extend(bytes([self.fill]) * (n - k))
            self.written += k
            raise PowerCut()
        if self.budget is not None:
            self.budget -= n
        target.extend(data)
        self.written += n

    def append(self, path, data):
        if path not in self.files:
            self.files[path] = bytearray()  # open("ab") creates the file before writing
        self._put(self.files[path], data)

    def write(self, path, data):
        self.files[path] = bytearray()  # open("wb") truncates first
        if self.fail_writes:
            self.fail_writes -= 1
            raise OSError(28)
        self._put(self.files[path], data)

    def remove(self, path):
        if self.budget is not None and self.budget <= 0:
            raise PowerCut()
        self.files.pop(path, None)

    def size(self, path):
        data = self.files.get(path)
        return None if data is None else len(data)

    def room(self, path):
        if self.disk is None:
            return None
        return self.disk - sum(len(d) for d in self.files.values())


def unacked(j, after_seq=0):
    """A journal's unacked (seq, payload) after after_seq, in order, one record read at a time
    (tests and the simulator; the panel itself only needs Journal.next_after)."""
    s = after_seq
    while True:
        r = j.next_after(s)
        if r is None:
            return
        yield r
        s = r[0]
