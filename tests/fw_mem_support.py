"""Heap figures of the panel firmware: from the 64-bit unix-port VM to an ESP32 estimate.

    from fw_mem_support import mpy_bytes, esp32_estimate
    code = mpy_bytes(lib, ["firmware.app", "protocol.panel", ...])   # .mpy bytes in a bundle
    est = esp32_estimate(heap_64bit, code)

Why an estimate: the only MicroPython VM in CI is the 64-bit unix port; the panel is a 32-bit
ESP32. On the unix port every machine word is 8 bytes and the GC allocates in 32-byte blocks;
on the ESP32 words are 4 bytes and blocks 16. What the heap holds after start-up is nearly
all loaded code (tests/mpy_cases/fw_mem_report.py: the Panel's objects are ~10 % of it):
function and class objects, raw-code descriptors, constant tables, dicts, the interned-name
pool (pointer arrays) - all made of words, so they halve - plus raw bytes that do NOT shrink:
bytecode and the characters of names and string constants. The .mpy files hold exactly those
bytes (plus a few header bytes), so

    ESP32 heap ~= (64-bit heap - B) / 2 + B = (64-bit heap + B) / 2,   B = bytes of the loaded .mpy

B over-counts a little (names the firmware's ROM already interns cost no RAM, .mpy headers),
so the estimate errs on the high side. It has not been checked on hardware.
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
    """Bytes the same heap contents take on a 32-bit ESP32 (see the module docstring)."""
    return (heap_64bit + code_bytes) // 2


def parse_lines(text, prefix):
    """{name: int} from lines "<prefix> <name> <int>"."""
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == prefix:
            out[parts[1]] = int(parts[2])
    return out
