"""Heap figures of the panel firmware: 64-bit unix-port VM, 32-bit WebAssembly VM, ESP32.

    from fw_mem_support import mpy_bytes, esp32_estimate, qstr_info, qstr_pool_bytes
    code = mpy_bytes(lib, ["firmware.app", "protocol.panel", ...])   # .mpy bytes in a bundle
    est = esp32_estimate(heap_64bit, code)
    q = qstr_info("qstr pool: n_pool=5, n_qstr=607, ...")            # micropython.qstr_info()
    pools = qstr_pool_bytes(530)                                    # name-pool arrays, 32-bit

The 32-bit figure is measured: tests/firmware/test_heap_32bit.py runs the start-up imports and the
boot on MicroPython's WebAssembly port (4-byte words, 16-byte GC blocks, the ESP32's object
layout and name pools), `.venv/bin/python -m pytest tests/firmware/test_heap_32bit.py -s`. Use that
one. What still differs from an ESP32 (the connected state, the ROM's built-in names, a
frozen umqtt.simple in stock images) is in firmware/README.md "Heap".

The estimate from the 64-bit unix port (the VM of tests/firmware/test_heap_budget.py and
test_panel_on_micropython.py): there words are 8 bytes and GC blocks 32. What the heap holds after
start-up is nearly all loaded code: function and class objects, raw-code descriptors, constant
tables, dicts, name-pool arrays - made of words, so they (about) halve: a function object is
32 B against 64 B, a trivial function ~43 B in all against ~86 B - plus raw bytes that do NOT
shrink: bytecode and the characters of names and string constants. The .mpy files hold those
bytes (plus a few header bytes), so

    ESP32 heap ~= (64-bit heap - B) / 2 + B = (64-bit heap + B) / 2,   B = bytes of the loaded .mpy

Checked against the 32-bit VM (same bundle, same script, name pools counted as a panel
allocates them): 46.2 KB estimated from 64-bit against 45.5 KB measured on 32-bit after boot,
~0.8 KB (1.7 %) high. Both VMs' raw figures depend on where their name pools fill up (the next
pool is allocated at once: 640 entries are 4.5 KB on 32-bit, 7.1 KB on 64-bit), so compare
like with like. A first 32-bit try that read gc.mem_alloc() without letting that VM collect
came out far from half (see tests/mpy_cases/wasm_run.mjs): that was garbage, not the formula.
"""

import os


def mpy_bytes(lib, modules):
    """Total size of the .mpy files (or packages' __init__.mpy) of `modules` under `lib`."""
    total = 0
    for name in modules:
        base = os.path.join(lib, *name.split("."))
        for path in (base + ".mpy", os.path.join(base, "__init__.mpy")):
            if os.path.exists(path):
                total += os.path.getsize(path)
                break
    return total


def esp32_estimate(heap_64bit, code_bytes):
    """Bytes the same heap contents take on a 32-bit ESP32, estimated from the 64-bit figure
    (see the module docstring; tests/firmware/test_heap_32bit.py measures it instead)."""
    return (heap_64bit + code_bytes) // 2


def qstr_info(line):
    """{"n_pool": .., "n_qstr": .., "n_str_data_bytes": .., "n_total_bytes": ..} from a
    micropython.qstr_info() line "qstr pool: n_pool=5, n_qstr=607, ..."."""
    pairs = (kv.split("=") for kv in line.split(":", 1)[1].split(","))
    return {k.strip(): int(v) for k, v in pairs}


def qstr_pool_bytes(names, word=4):
    """Heap held by the interned-name pools' arrays (not the names' characters) once `names`
    names are interned at run time: pools of 20, 40, 80, ... entries (the first twice the frozen
    pool's 10), each a 6-word header plus a pointer, a 2-byte hash and a 1-byte length per entry,
    in GC blocks of 4 words. Checked against qstr_info() on both VMs (32-bit: 4496 B up to 620
    names, 9008 B up to 1260; 64-bit: 7136 / 14240 B)."""
    total, alloc, room = 0, 20, 0
    while room < names:
        size = 6 * word + (word + 3) * alloc
        total += -(-size // (4 * word)) * 4 * word
        room += alloc
        alloc *= 2
    return total


def parse_lines(text, prefix):
    """{name: int} from lines "<prefix> <name> <int>"."""
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == prefix:
            out[parts[1]] = int(parts[2])
    return out
