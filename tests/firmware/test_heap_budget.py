"""Where the panel's heap goes: per-module import cost and the Panel's objects, measured on the
real MicroPython VM (tests/mpy_cases/fw_mem_report.py) from the bundle's .mpy files (as on
the panel) and from the .py sources. Regression guards for firmware/README.md "Heap"; the
connected whole-panel figure and its budget are tests/firmware/test_panel_on_micropython.py's.

    .venv/bin/python -m pytest tests/firmware/test_heap_budget.py -s     # prints the tables
"""

import os

import pytest
from fw_mem_support import esp32_estimate, mpy_bytes, parse_lines
from mpy_support import CASES_DIR, micropython_binary, run_micropython

pytestmark = pytest.mark.skipif(not micropython_binary(), reason="MicroPython unix port not installed")

# 64-bit unix port, bytes held by the panel's start-up imports (from .mpy). Measured 49.2 KB
# after the lean protocol.panel and -O3 (was 53.9 KB; 57.8 KB before the config payload and
# the remote-config code went lazy; 71.5 KB before the protocol split); the ceiling leaves ~5 %.
IMPORTS_CEILING = 51 * 1024 + 512
# What the panel must never hold after start-up: gateway-side protocol code, boot-only config
# validation, simulator/test code, the NTP packet code between syncs, the self-test.
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
SCRIPT = os.path.join(CASES_DIR, "fw_mem_report.py")
IDLE_BYTES_PER_STEP = 20  # measured 4-11 (LED redraws, connect retries to no broker); was ~110


def _report(lib_arg, data, path_extra=()):
    proc = run_micropython(SCRIPT, heapsize="200k", args=(lib_arg, str(data)), path_extra=path_extra)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def _total(out):
    return int(out.split("MEM_TOTAL ")[1].split()[0])


def _table(title, mem):
    rows = ["%-20s %7d" % (k, v) for k, v in mem.items()]
    return "%s\n  %s" % (title, "\n  ".join(rows))


@pytest.mark.e2e
def test_fw_mem_panel_imports_and_objects_from_mpy(bundle_lib, tmp_path):
    out = _report(bundle_lib, tmp_path)
    mem = parse_lines(out, "MEM")
    objs = parse_lines(out, "OBJ")
    total = _total(out)
    loaded = out.split("LOADED ")[1].splitlines()[0].split()
    code = mpy_bytes(bundle_lib, loaded)
    print()
    print(_table("imports (.mpy, 64-bit unix port):", mem))
    print("  total %d B; loaded .mpy %d B; ESP32 estimate %d B" % (total, code, esp32_estimate(total, code)))
    print(_table("objects:", objs))
    assert set(mem) >= {
        "protocol.panel",
        "firmware.app",
        "firmware.link",
        "firmware.journal",
        "firmware.hal",
        "firmware.mqtt",
        "firmware.main",
    }, out
    assert total <= IMPORTS_CEILING, "start-up imports hold %d B (ceiling %d)" % (total, IMPORTS_CEILING)
    assert sum(mem.values()) == pytest.approx(total, rel=0.05)
    # the Panel runs: it unloaded what it only needed to start, and loaded nothing gateway-side
    assert "firmware.app" in loaded and "protocol.panel" in loaded
    resident = [m for m in NEVER_RESIDENT if m in loaded]
    assert not resident, "held after start-up: %s" % resident
    # its objects are small next to the code: the heap is code (see fw_mem_support)
    assert 0 < objs["panel"] < total // 4


@pytest.mark.e2e
def test_fw_mem_mpy_interns_fewer_names_than_py_sources(bundle_lib, tmp_path):
    """Why the bundle ships .mpy: compiling the .py sources on the VM interns every identifier
    (local names too, which mpy-cross leaves out) and needs the compiler's RAM on the panel.
    The held bytes alone do not show it reliably: the interned-name pool grows in doublings
    (the next one is ~7 KB on the 64-bit VM), so which run crosses a doubling first decides
    the byte totals; the count of interned names is what the .mpy saves for good."""
    (tmp_path / "mpy").mkdir()
    (tmp_path / "py").mkdir()
    mpy_out = _report(bundle_lib, tmp_path / "mpy")
    py_out = _report("", tmp_path / "py")
    mpy_q, py_q = (int(o.split("n_qstr=")[1].split(",")[0]) for o in (mpy_out, py_out))
    print(
        "\nstart-up imports: .mpy %d B, %d names; .py %d B, %d names" % (_total(mpy_out), mpy_q, _total(py_out), py_q)
    )
    assert mpy_q < py_q
    assert _total(mpy_out) < _total(py_out) * 1.1


@pytest.mark.e2e
def test_fw_mem_device_boot_at_100k_unloads_boot_code(bundle_lib, tmp_path):
    """firmware.main.start() as the device runs it on a 100 KB VM heap, no broker: the first
    boot checks the new /config.json, keeps it and restarts; the next (a new VM, as after the
    soft reset) reads the kept config, the panel runs, and nothing boot-only stays loaded."""
    script = os.path.join(CASES_DIR, "fw_mem_boot.py")
    proc = run_micropython(script, heapsize="100k", args=(str(tmp_path), bundle_lib, 30))
    assert proc.returncode == 0 and "RESTART" in proc.stdout, proc.stdout + proc.stderr
    assert (tmp_path / "config.json.ok").exists()
    proc = run_micropython(script, heapsize="100k", args=(str(tmp_path), bundle_lib, 30))
    assert proc.returncode == 0 and "RESTART" not in proc.stdout, proc.stdout + proc.stderr
    loaded = proc.stdout.split("LOADED ")[1].splitlines()[0].split()
    heap = dict(kv.split("=") for kv in proc.stdout.split("HEAP ")[1].splitlines()[0].split())
    print("\ndevice boot at 100k: %s B held by the firmware, %s B free" % (heap["boot"], heap["free"]))
    assert "firmware.main" in loaded and "firmware.app" in loaded
    resident = [m for m in NEVER_RESIDENT if m in loaded]
    assert not resident, "held after boot: %s" % resident
    assert "STEPS 30 seq 0 boot 1" in proc.stdout
    # the main loop's idle step makes (almost) no garbage: it runs 100 times a second, and
    # every byte of garbage there is GC work on the panel (was ~110 B a step: a long-int
    # modulo in clock.Uptime and a bound method in Panel.step)
    idle, steps = (int(x) for x in proc.stdout.split("IDLE ")[1].split()[:2])
    print("idle steps: %d B of garbage in %d steps" % (idle, steps))
    assert idle < steps * IDLE_BYTES_PER_STEP, "%d B of garbage in %d idle steps" % (idle, steps)


@pytest.mark.e2e
def test_fw_mem_device_boot_config_error_blinks_then_unloads(bundle_lib, tmp_path):
    """A bad /config.json: the boot names the field on the console and blinks the config-error
    pattern (status+seller alternate) instead of starting; its code is unloaded afterwards too."""
    (tmp_path / "config.json").write_text('{"site": "s1", "device": "p1", "wifi": {"ssid": "x"}}')
    code = "\n".join(
        [
            "import sys, install_fakes, fake_machine",
            "sys.path.insert(0, %r)" % bundle_lib,
            "from firmware import main",
            "def make_hal(pins):",
            "    from firmware.hal import Hal",
            "    return Hal(pins, root=%r)" % str(tmp_path),
            "print('BOOT', main.boot(make_hal, %r, max_ms=600))" % str(tmp_path / "config.json"),
            "print('DUTIES', sorted(set(p.duty_u16() > 0 for p in fake_machine.pwms.values())))",
            "print('LOADED', sorted(m for m in sys.modules if m.startswith('firmware')))",
        ]
    )
    proc = run_micropython(code, heapsize="100k")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "CONFIG ERROR" in proc.stdout and "mqtt.host: missing" in proc.stdout, proc.stdout
    assert "BOOT (None, None)" in proc.stdout
    assert "DUTIES [False, True]" in proc.stdout  # some LEDs lit, some dark: the pattern ran
    loaded = proc.stdout.split("LOADED ")[1]
    assert "firmware.boot" not in loaded and "firmware.config" not in loaded, loaded
