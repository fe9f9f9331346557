"""The panel's heap measured on a 32-bit MicroPython VM: the WebAssembly port (4-byte words,
16-byte GC blocks, the same object layout and interned-name pools as the ESP32), loading the
bundle's .mpy from /lib as the panel does (tests/mpy_cases/fw_mem_wasm32.py via wasm_run.mjs).

Four VM runs on the same flash, each one boot of a panel, as they follow each other on a board:
  1. a new /config.json: the boot checks it, keeps the result and restarts (no panel runs with
     the checking code's names interned);
  2. the normal boot: the start-up imports (per module), firmware.main.boot() (the kept config,
     HAL, Panel), then online on a scripted broker (connected, subscribed, an event sent and
     acked, NTP tried); then a remote config message arrives: kept, and the panel restarts;
  3. the boot checks the new remote config and restarts again;
  4. the normal boot with the new remote config in force, online.
The 40 KB budget must hold after boot, connected, after the config message and once the new
config is in force: the figures of firmware/README.md "Heap".

    .venv/bin/python -m pytest tests/firmware/test_heap_32bit.py -s     # prints the table

Needs node and npm (the package is installed once, like the device stand-in's); skipped
without them.
"""

import json
import os
import shutil
import subprocess

import pytest
from device_standin.standin import StandinUnavailable, ensure_vm
from fw_mem_support import mpy_bytes, qstr_info, qstr_pool_bytes
from mpy_support import CASES_DIR, MPY_DIR

RUNNER = os.path.join(CASES_DIR, "wasm_run.mjs")
SCRIPT = os.path.join(CASES_DIR, "fw_mem_wasm32.py")
# The budget: every figure "with the panel's pools" (see _device) must meet it.
# Measured (fw 0.2.0, .mpy at -O3): 39.6 KB connected, 38.7 KB after boot (offline).
BUDGET = 40 * 1024
# Raw figure after boot, the harness's name pools included: a regression guard (measured 41.9 KB).
HELD_CEILING = 43 * 1024
# Names the firmware interns by then (a module's names stay interned after its unload): 417
# after boot, 445 connected (the first NTP try loads ntp and dns). A panel's pools hold 620
# run-time names; the next pool (640 entries, 4.5 KB on 32-bit) comes at once.
NAMES_CEILING = 480
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
    "firmware.rebase",
    "firmware.deadlines",
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


def _rows(out):
    """[(module, bytes held, names added, name-pool bytes added)] in import order."""
    lines = out.splitlines()
    rows = []
    prev = qstr_info(next(line for line in lines if line.startswith("qstr pool:")))
    for i, line in enumerate(lines):
        if line.startswith("MEM "):
            _, name, size = line.split()
            q = qstr_info(lines[i + 1])
            rows.append((name, int(size), q["n_qstr"] - prev["n_qstr"], _pools(q) - _pools(prev)))
            prev = q
    return rows


def _figure(out, key):
    """(raw bytes held, names interned by the firmware, bytes with the panel's own name pools)
    for the line `KEY <bytes>` (a qstr line follows it). The VM's harness (fakes, this script,
    the VM's wrappers) interns ~250 names first, so its pools fill at other points than the
    panel's, which interns (almost) only the firmware's: count the pool arrays the panel would
    allocate for the firmware's names instead of the harness's."""
    lines = out.splitlines()
    start = qstr_info(next(line for line in lines if line.startswith("qstr pool:")))
    i = next(i for i, line in enumerate(lines) if line.startswith(key + " "))
    held = int(lines[i].split()[1])
    q = qstr_info(lines[i + 1])
    names = q["n_qstr"] - start["n_qstr"]
    return held, names, held - (_pools(q) - _pools(start)) + qstr_pool_bytes(names)


def _run(vm, lib, flash, what):
    (flash / "run.txt").write_text(what)
    proc = subprocess.run(
        ["node", RUNNER, vm, "200000", SCRIPT, lib + "=/lib", MPY_DIR + "=/fakes", "%s=/data=back" % flash],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def _state(out):
    return json.loads(out.split("STATE ")[1].splitlines()[0])


@pytest.mark.e2e
def test_fw_mem_panel_heap_on_32bit_vm(vm, bundle_lib, tmp_path):
    flash = tmp_path / "flash"
    flash.mkdir()
    first = _run(vm, bundle_lib, flash, "idle")  # 1: the new /config.json is checked, kept
    assert "RESTART boot" in first and (flash / "config.json.ok").exists(), first
    q = [qstr_info(line) for line in first.splitlines() if line.startswith("qstr pool:")]
    check_names = q[-1]["n_qstr"] - q[0]["n_qstr"]
    out = _run(vm, bundle_lib, flash, "config")  # 2: normal boot, online, a config message
    assert "RESTART config" in out and (flash / "remote.new").exists(), out
    checked = _run(vm, bundle_lib, flash, "idle")  # 3: the new remote config checked
    assert "RESTART boot" in checked and "remote config ver 9 applied" in checked, checked
    assert (flash / "remote.json").exists() and not (flash / "remote.new").exists()
    after = _run(vm, bundle_lib, flash, "idle")  # 4: running with it
    assert "CFG 9" in after and _state(after)["cfg"] == 9, after
    assert _state(after)["reset"] == "soft" and _state(out)["reset"] == "soft"  # the restarts

    rows = _rows(out)
    total = int(out.split("MEM_TOTAL ")[1].split()[0])
    boot = int(out.split("BOOT ")[1].split()[0])
    loaded = out.split("LOADED ")[1].splitlines()[0].split()
    figures = [
        ("after boot (offline)", _figure(out, "HELD")),
        ("connected", _figure(out, "CONNECTED")),
        ("after a config message, before its restart", _figure(out, "AFTER_CONFIG")),
        ("new config in force, after boot", _figure(after, "HELD")),
        ("new config in force, connected", _figure(after, "CONNECTED")),
    ]
    print(
        "\nimports (.mpy, 32-bit WebAssembly VM): bytes held, names interned, of those bytes a new name pool, .mpy size"
    )
    for name, size, added, pools in rows:
        print("  %-20s %6d %5d %6d %6d" % (name, size, added, pools, mpy_bytes(bundle_lib, [name])))
    print("  start-up imports %d B; boot (kept config, HAL, Panel) +%d B" % (total, boot))
    for what, (held, names, device) in figures:
        print(
            "  %-45s %6d B as measured, %3d names; %6d B with the panel's own name pools" % (what, held, names, device)
        )
    print("  the boot that checks a new config interns %d names (restarted before the panel runs)" % check_names)

    assert {r[0] for r in rows} >= {
        "protocol.panel",
        "firmware.app",
        "firmware.link",
        "firmware.journal",
        "firmware.hal",
        "firmware.mqtt",
        "firmware.main",
    }, out
    assert sum(r[1] for r in rows) == pytest.approx(total, rel=0.03)
    assert "panel: s1/p1" in out  # the Panel started
    assert "firmware.app" in loaded and not any(m.startswith("umqtt") for m in loaded), loaded
    resident = [m for m in NEVER_RESIDENT if m in loaded]
    assert not resident, "held after boot: %s" % resident
    held = figures[0][1][0]
    assert held <= HELD_CEILING, "firmware heap after boot %d B on 32-bit (ceiling %d)" % (held, HELD_CEILING)
    for what, (_, names, device) in figures:
        assert names <= NAMES_CEILING, "%s: the firmware interns %d names (ceiling %d)" % (what, names, NAMES_CEILING)
        assert device <= BUDGET, "%s: firmware heap %d B with the panel's pools (budget %d)" % (what, device, BUDGET)
    # the normal boot read the kept config: none of the config check's ~130 names
    assert figures[0][1][1] < check_names - 100, "the normal boot checked /config.json again"
