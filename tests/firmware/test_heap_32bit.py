"""The panel's heap measured on a 32-bit MicroPython VM: the WebAssembly port (4-byte words,
16-byte GC blocks, the same object layout and interned-name pools as the ESP32), loading the
bundle's .mpy from /lib as the panel does. The start-up imports (per module), then
firmware.main.boot() (config from the kept validated copy, HAL, Panel; offline): the second
of two VM runs on the same flash, the first being the boot after a config change, which
validates /config.json (tests/mpy_cases/fw_mem_wasm32.py via wasm_run.mjs). The 32-bit figure of firmware/README.md
"Heap"; the 64-bit unix-port figures are tests/firmware/test_heap_budget.py's and test_panel_on_micropython.py's.

    .venv/bin/python -m pytest tests/firmware/test_heap_32bit.py -s     # prints the table

Needs node and npm (the package is installed once, like the device stand-in's); skipped
without them.
"""

import os
import shutil
import subprocess

import pytest
from device_standin.standin import StandinUnavailable, ensure_vm
from fw_mem_support import mpy_bytes, qstr_info, qstr_pool_bytes
from mpy_support import CASES_DIR, MPY_DIR

RUNNER = os.path.join(CASES_DIR, "wasm_run.mjs")
SCRIPT = os.path.join(CASES_DIR, "fw_mem_wasm32.py")
# Firmware heap after boot on the 32-bit VM, offline, the panel's normal boot (config read back
# from /config.json.ok): measured 37440 B (fw 0.1.0, .mpy at -O3), 39664 B with the panel's own
# name pools (DEVICE, see below) against the 40 KB budget, which DEVICE must meet.
# Was 47760 / 45472 B before the lean protocol.panel, the kept config and -O3.
HELD_CEILING = 39 * 1024
BUDGET = 40 * 1024
# Names the firmware interns by then (a boot-only module's names stay interned after its
# unload): measured 428; the boot after a config change: 555; later loads add ~40 (ntp at the
# first sync, dns, remote). A panel's pools hold 620 run-time names; the next pool (640
# entries, 4.5 KB on 32-bit) comes at once, so the first boot must stay under it too.
NAMES_CEILING = 460
FIRST_BOOT_NAMES_CEILING = 580
NEVER_RESIDENT = (
    "protocol.messages",
    "protocol.topics",
    "protocol.config",
    "protocol.checks",
    "firmware.config",
    "firmware.remote",
    "firmware.memfs",
    "firmware.ntp",
    "firmware.selftest",
    "firmware.boot",
    "firmware.dns",
)


@pytest.fixture(scope="module")
def vm():
    if not shutil.which("node"):
        pytest.skip("node not found (the 32-bit MicroPython VM is the npm WebAssembly port)")
    try:
        return ensure_vm()
    except StandinUnavailable as exc:
        pytest.skip(str(exc))


def _pools(q):
    """Bytes of the name pools' arrays in a qstr_info() dict (the rest is the names' characters)."""
    return q["n_total_bytes"] - q["n_str_data_bytes"]


def _qstr_lines(out):
    return [qstr_info(line) for line in out.splitlines() if line.startswith("qstr pool:")]


def _rows(out):
    """[(module, bytes held, names added, name-pool bytes added)] in import order."""
    lines = out.splitlines()
    rows = []
    prev = _qstr_lines(out)[0]
    for i, line in enumerate(lines):
        if line.startswith("MEM "):
            _, name, size = line.split()
            q = qstr_info(lines[i + 1])
            rows.append((name, int(size), q["n_qstr"] - prev["n_qstr"], _pools(q) - _pools(prev)))
            prev = q
    return rows


def _run(vm, lib, flash):
    proc = subprocess.run(
        ["node", RUNNER, vm, "200000", SCRIPT, lib + "=/lib", MPY_DIR + "=/fakes", "%s=/data=back" % flash],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


@pytest.mark.e2e
def test_fw_mem_panel_heap_on_32bit_vm(vm, bundle_lib, tmp_path):
    # The first boot after a config change validates /config.json and keeps the result
    # (firmware/boot.py); every later boot - the panel's normal start - reads it back without
    # the config code, and that one is measured. The first boot's figure is printed too.
    flash = tmp_path / "flash"
    flash.mkdir()
    first = _run(vm, bundle_lib, flash)
    assert (flash / "config.json.ok").exists(), first
    first_held = int(first.split("HELD ")[1].split()[0])
    out = _run(vm, bundle_lib, flash)
    rows = _rows(out)
    total = int(out.split("MEM_TOTAL ")[1].split()[0])
    held = int(out.split("HELD ")[1].split()[0])
    boot = int(out.split("BOOT ")[1].split()[0])
    start, end = _qstr_lines(out)[0], _qstr_lines(out)[-1]
    names = end["n_qstr"] - start["n_qstr"]
    # The VM's harness (fakes, this script, the VM's own wrappers) interns ~180 names first, so
    # the pools fill at other points than on the panel, which interns (almost) only the
    # firmware's names: count the pool arrays the panel would allocate for them instead.
    device = held - (_pools(end) - _pools(start)) + qstr_pool_bytes(names)
    loaded = out.split("LOADED ")[1].splitlines()[0].split()
    print(
        "\nimports (.mpy, 32-bit WebAssembly VM): bytes held, names interned, of those bytes a new name pool, .mpy size"
    )
    for name, size, added, pools in rows:
        print("  %-20s %6d %5d %6d %6d" % (name, size, added, pools, mpy_bytes(bundle_lib, [name])))
    print(
        "  start-up imports %d B; boot (config, HAL, Panel) +%d B; held after boot %d B, "
        "%d names, %d name pools" % (total, boot, held, names, end["n_pool"])
    )
    print("  with the name pools of a panel that interns only these %d names: %d B" % (names, device))
    print("  MQTT client object before connect: %s B" % out.split("CLIENT ")[1].split()[0])
    print(
        "  first boot after a config change (validates /config.json): held %d B, %d names"
        % (first_held, _qstr_lines(first)[-1]["n_qstr"] - _qstr_lines(first)[0]["n_qstr"])
    )

    assert {r[0] for r in rows} >= {
        "protocol.panel",
        "firmware.app",
        "firmware.link",
        "firmware.journal",
        "firmware.hal",
        "umqtt.simple",
        "firmware.mqtt",
        "firmware.main",
    }, out
    assert sum(r[1] for r in rows) == pytest.approx(total, rel=0.03)
    assert "panel: s1/p1" in out  # the Panel started
    assert "firmware.app" in loaded and "umqtt.simple" in loaded
    resident = [m for m in NEVER_RESIDENT if m in loaded]
    assert not resident, "held after boot: %s" % resident
    assert held <= HELD_CEILING, "firmware heap after boot %d B on 32-bit (ceiling %d)" % (held, HELD_CEILING)
    assert names <= NAMES_CEILING, "the firmware interns %d names (ceiling %d)" % (names, NAMES_CEILING)
    assert device <= BUDGET, "firmware heap after boot %d B with the panel's pools (budget %d)" % (device, BUDGET)
    first_names = _qstr_lines(first)[-1]["n_qstr"] - _qstr_lines(first)[0]["n_qstr"]
    assert first_names <= FIRST_BOOT_NAMES_CEILING, "first boot interns %d names" % first_names
    # the normal boot read the kept config: none of the validation code's ~130 names
    assert names < first_names - 100, "the normal boot validated /config.json again"
