"""`rating device check`: the on-panel program (technician/onpanel/check.py) on the MicroPython
unix port against a real broker, the command against the stand-in panel behind a pty, and the
report it prints."""

import json
import os
import shlex
import sys
import time

import pytest
from device_standin.standin import Standin, StandinUnavailable, ensure_vm
from mpy_support import run_micropython

from rating.cli import main
from technician import check, watchdog

DRIVER = """
import sys
import install_fakes  # noqa: F401  (the fake machine/network, as in the firmware's VM tests)
D = sys.argv[1]
CHECK_ARGS = {"root": D + "/", "config": D + "/config.json", "connect_s": int(sys.argv[3]), "budget_s": 60}
CHECK_ARGS["stage"] = sys.argv[4]
CHECK_ARGS["drop"] = sys.argv[5:] != ["--no-drop"]
exec(open(sys.argv[2]).read())
"""


def report_of(text, r=None):
    r = r or check.CheckReport()
    for line in text.splitlines():
        r.feed(line)
    return r


@pytest.mark.e2e
@pytest.mark.timeout(120)
def test_the_check_program_measures_a_whole_panel_on_the_vm(tmp_path, broker, mqtt_root, bundle_lib):
    data = tmp_path / "flash"
    data.mkdir()
    cfg = {
        "site": "office-1",
        "device": "panel-1",
        "wifi": {"ssid": "shop"},
        "mqtt": {"host": broker.host, "port": broker.port, "root": mqtt_root},
        "ntp": {"host": "127.0.0.1"},  # nobody answers: no traffic leaves the machine
    }
    (data / "config.json").write_text(json.dumps(cfg))
    (data / "remote.json").write_text("kept as it was")  # the check must put it back
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    r = check.CheckReport()
    stages = []
    stage = "measure"
    while stage is not None and len(stages) < check.MAX_RUNS:
        stages.append(stage)
        # each run a new VM, as the tool's soft reset between the stages (a restart of the panel)
        proc = run_micropython(
            str(driver),
            heapsize="200k",
            path_extra=(bundle_lib,),
            timeout=90,
            args=(str(data), check.PROGRAM, 20, stage),
        )
        report_of(proc.stdout, r)
        assert "failed" not in r.found, proc.stdout + proc.stderr
        if len(stages) == 1:
            kept = (data / "config.json.ok").read_bytes()  # what the first boot checked and kept
        stage = r.next
    # a new /config.json: the first boot checks it and restarts, as on the panel; then the
    # config message: kept, restart; its check at boot, restart; the boot with it in force
    assert stages == ["measure", "measure", "check_config", "new_config"], stages
    assert r.ended and r.passed(), proc.stdout + proc.stderr
    assert r.get("boot_checked")["ms"] >= 0
    assert r.get("system")["version"].count(".") == 2 and "heap_bare" in r.found
    for key in ("heap_bare", "heap_boot", "heap_connected", "heap_config", "heap_config_check", "heap_new_config"):
        assert r.get(key)["gc_free"] > 0 and r.get(key)["gc_alloc"] > 0, key
    assert r.get("heap_boot")["gc_alloc"] > r.get("heap_bare")["gc_alloc"]
    for key in ("heap_config_check", "heap_new_config"):  # after a restart: that run's own bare VM
        assert 0 < r.get(key)["bare_alloc"] < r.get(key)["gc_alloc"], key
    assert 0 <= r.get("connect")["ms"] < 20000 and r.get("connect")["link"]["connects"] == 1
    back = r.get("reconnect")
    assert back["noticed_ms"] is not None and back["back_ms"] is not None and back["link"]["connects"] == 2
    j = r.get("journal")
    assert j["n"] == 20 and 0 < j["min_us"] <= j["median_us"] <= j["max_us"]
    cfg = r.get("config")
    assert cfg["kept"] and cfg["restart_ms"] is not None and cfg["ver"] == 1  # no remote config before
    assert r.get("config_check")["restart"] is True
    assert r.get("config_applied") == {"ver": 1, "applied": True, "error": None, "put_back": True}
    mods = r.modules()
    assert mods["firmware"]["where"].endswith("/firmware/__init__.py")
    # umqtt is not imported (the firmware does not use it); the unix port freezes none
    assert mods["umqtt.robust"] == {"file": None, "where": "missing", "used": False}
    assert mods["umqtt.simple"]["where"] == "missing"
    assert r.modules_help and "sys" in r.modules_help
    # the panel's files as they were: its remote config back, its kept config as the first boot
    # wrote it, nothing of the message left, the timing journal gone
    assert (data / "remote.json").read_text() == "kept as it was"
    assert (data / "config.json.ok").read_bytes() == kept  # the next boot needs no check
    assert not (data / "remote.new").exists()
    assert not (data / "rating-check").exists()
    assert r.get("counters")["link"]["connects"] == 2


@pytest.mark.e2e
@pytest.mark.timeout(120)
def test_a_check_cut_off_after_its_config_message_puts_the_files_back_at_its_next_run(tmp_path):
    data = tmp_path / "flash"
    data.mkdir()
    cfg = {"site": "office-1", "device": "panel-1", "wifi": {"ssid": "shop"}, "mqtt": {"host": "127.0.0.1", "port": 9}}
    (data / "config.json").write_text(json.dumps(cfg))
    remote = json.dumps({"v": 1, "ver": 7, "heartbeat_s": 90})
    (data / "remote.json").write_text(remote)  # the gateway's config, version 7
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)

    def run(stage):
        proc = run_micropython(
            str(driver), heapsize="200k", timeout=60, args=(str(data), check.PROGRAM, 1, stage, "--no-drop")
        )
        r = report_of(proc.stdout)
        assert "failed" not in r.found and r.runs == 1, proc.stdout + proc.stderr
        return r

    assert run("measure").next == "measure"  # the first boot checks the new /config.json
    kept = (data / "config.json.ok").read_bytes()
    assert run("measure").next == "check_config"
    assert run("check_config").next == "new_config"  # the message is in force now ...
    assert json.loads((data / "remote.json").read_text())["ver"] == 8
    # ... and the cable is pulled: the next check puts the panel's files back before it boots
    r = run("measure")
    assert r.get("put_back") == {"ver": 8} and r.next == "check_config"
    assert r.get("boot")["state"]["cfg"] == 7 and "boot_checked" not in r.found  # the kept config held
    assert run("check_config").next == "new_config"
    r = run("new_config")
    assert r.ended and r.get("config_applied") == {"ver": 8, "applied": True, "error": None, "put_back": True}
    assert (data / "remote.json").read_text() == remote and (data / "config.json.ok").read_bytes() == kept
    # nothing of the check is left (no remote.new, no rating-check); j.*: the panel's own journal
    assert {n for n in os.listdir(data) if not n.startswith("j.")} == {"config.json", "config.json.ok", "remote.json"}


@pytest.fixture(scope="module")
def vm():
    try:
        return ensure_vm()
    except StandinUnavailable as exc:
        pytest.skip(str(exc))


@pytest.mark.e2e
@pytest.mark.timeout(180)
def test_device_check_on_a_standin_panel(capsys, vm, tmp_path, fw_bundle):
    panel = Standin(tmp_path / "panel")
    panel.app_watchdog(1500)
    panel.start()
    try:
        rc = main(
            ["device", "deploy", "--port", panel.port, "--bundle", fw_bundle, "--wait", "0", "--site", "office-1"]
            + ["--device", "panel-4", "--wifi-ssid", "Shop", "--broker", "mqtt://127.0.0.1:9"]
        )
        assert rc == 0, capsys.readouterr()
        capsys.readouterr()
        time.sleep(2)  # the app runs (and feeds its watchdog)
        boots = len(panel.events("boot"))
        rc = main(["device", "check", "--port", panel.port, "--connect", "2"])
        out = capsys.readouterr().out
        lines = out.splitlines()
        assert rc == 0, out
        assert "Board: MicroPython 1.27.0 on " in out
        for label in ("bare interpreter", "after boot", "after a config message"):
            row = next(x for x in lines if x.strip().startswith(label))
            assert "gc free" in row and "KB" in row, row
        assert any(x.strip().startswith("after connect") and "not measured" in x for x in lines)
        assert "held by the firmware after boot:" in out
        assert "Connect: not online within 2 s (last error: " in out  # the VM has no sockets
        assert "Wi-Fi drop: not provoked (the panel never came online)" in out
        assert "Journal append: median " in out
        # the firmware's way: kept in /remote.new, restart; checked at boot, restart; in force
        assert "Boot: the first one checked a changed /config.json in " in out  # deploy wrote it
        config = next(x for x in lines if x.startswith("Config message: "))
        assert config.startswith("Config message: kept, restart ") and "; its boot checked it in " in config
        assert config.endswith(" and restarted; applied as version 1, then the panel's /remote.json put back")
        for label in ("boot checking it", "with the new config"):
            row = next(x for x in lines if x.strip().startswith(label))
            assert "gc free" in row and "KB" in row, row
        assert "held by the firmware after boot with the new config:" in out
        assert "Module firmware: from /lib/firmware/__init__.mpy" in out
        assert "Module umqtt.robust: not present" in out
        assert "Frozen packages (help('modules')): asyncio, asyncio.core" in out  # what this VM freezes
        assert "Panel restarted" not in out and "Restart the panel so its app runs again" in out
        files = panel.files()
        assert "remote.json" not in files and "remote.new" not in files and "config.json.ok" in files
        assert "rating-check" not in os.listdir(panel.flash)

        def kinds_since(first):
            kinds = [b["kind"] for b in panel.events("boot")[first:]]
            deadline = time.monotonic() + 10
            while kinds[-1:] != ["hard"] and time.monotonic() < deadline:
                time.sleep(0.05)
                kinds = [b["kind"] for b in panel.events("boot")[first:]]
            return kinds

        # a fresh heap to measure, again after the boot that checked the deployed config, the
        # restart for the message, the one after its check; a restart at the end
        assert kinds_since(boots) == ["soft", "soft", "soft", "soft", "hard"]
        wdts = [w["timeout"] for w in panel.events("wdt")]
        assert watchdog.CHECK_S * 1000 in wdts

        boots = len(panel.events("boot"))
        rc = main(["device", "check", "--port", panel.port, "--connect", "1", "--no-drop", "--format", "json"])
        cap = capsys.readouterr()
        data = json.loads(cap.out)  # progress went to stderr: standard output is the JSON alone
        assert rc == 0 and "measured: heap_boot" in cap.err
        assert data["connect"]["ms"] is None and data["config_applied"]["applied"] is True
        assert data["heap_boot"]["gc_alloc"] > data["heap_bare"]["gc_alloc"] and "sys" in data["help_modules"]
        assert data["modules"]["umqtt.simple"] == {"file": None, "where": "missing", "used": False}
        # the kept config the first check put back holds: no boot checks the config again
        assert "boot_checked" not in data
        assert kinds_since(boots) == ["soft", "soft", "soft", "hard"]
    finally:
        panel.stop()
    assert not panel.events("watchdog")


def test_the_check_report_reads_the_panels_lines(capsys):
    # three runs, as on a panel: measure (ending with the config message's restart), the boot that
    # checks the message (restart), the boot with it in force
    lines = [
        'CHECK system {"version": "1.27.0", "machine": "Generic ESP32 module with ESP32", "freq_mhz": 240, '
        '"flash_bytes": 4194304, "fs_free": 1900000, "path": ["", ".frozen", "/lib"]}',
        'CHECK heap_bare {"gc_free": 110000, "gc_alloc": 4000, "idf_total": 200000, "idf_free": 150000, '
        '"idf_largest": 65536, "idf_min_free": 140000}',
        "CHECK-HELP-MODULES-BEGIN",
        "__main__          gc                umqtt/robust      umqtt/simple",
        "Plus any modules on the filesystem",
        "CHECK-HELP-MODULES-END",
        'CHECK modules {"umqtt.simple": {"file": "/lib/umqtt/simple.mpy"}, "umqtt.robust": {"file": null}, '
        '"firmware": {"where": "/lib/firmware/__init__.mpy"}}',
        "panel: office-1/panel-1 fw 0.2.0 boot 5 seq 10 pending 0",
        'CHECK boot {"ms": 812, "state": {}}',
        'CHECK heap_boot {"gc_free": 70000, "gc_alloc": 44000, "idf_total": 200000, "idf_free": 120000, '
        '"idf_largest": 60000, "idf_min_free": 110000}',
        'CHECK connect {"ms": 3400, "timeout_s": 60, "link": {"connects": 1}}',
        'CHECK heap_connected {"gc_free": 65000, "gc_alloc": 46000}',
        'CHECK reconnect {"noticed_ms": 10, "back_ms": 4100, "link": {"connects": 2}}',
        'CHECK journal {"n": 20, "min_us": 9000, "median_us": 21300, "max_us": 48000, "all_us": []}',
        'CHECK counters {"boot": 5, "seq": 10, "pending": 0, "dropped": 0, "rssi": -61, "link": {"connects": 2}, '
        '"reset_cause": 5}',
        'CHECK heap_config {"gc_free": 60000, "gc_alloc": 50000}',
        'CHECK config {"ver": 4, "kept": true, "restart_ms": 3020}',
        'CHECK end {"next": "check_config"}',
        "panel: remote config ver 4 applied",
        'CHECK config_check {"ms": 1450, "restart": true}',
        'CHECK heap_config_check {"gc_free": 90000, "gc_alloc": 24000, "bare_alloc": 3000}',
        'CHECK end {"next": "new_config"}',
        'CHECK heap_new_config {"gc_free": 72000, "gc_alloc": 43000, "bare_alloc": 3500}',
        'CHECK config_applied {"ver": 4, "applied": true, "error": null, "put_back": true}',
        "CHECK end {}",
    ]
    first_run = lines.index('CHECK end {"next": "check_config"}') + 1
    r = report_of("\n".join(lines[:first_run]))
    assert r.next == "check_config" and not r.ended and not r.passed()  # the check goes on
    r = report_of("\n".join(lines[first_run:]), r)
    assert r.passed() and r.runs == 3 and r.frozen_packages() == ["umqtt.robust", "umqtt.simple"]
    check.format_report(r, "/dev/ttyUSB0")
    out = capsys.readouterr().out
    flat = " ".join(out.split())
    assert "Board: MicroPython 1.27.0 on Generic ESP32 module with ESP32 (240 MHz, flash 4 MB" in out
    assert (
        "after boot gc free 68.4 KB used 43.0 KB IDF free 117.2 KB largest block 58.6 KB lowest ever 107.4 KB" in flat
    )
    assert "held by the firmware after boot: 39.1 KB (within the 40 KB budget)" in out
    assert "held by the firmware when connected: 41.0 KB (OVER the 40 KB budget)" in out
    assert "held by the firmware after a config message: 44.9 KB (OVER the 40 KB budget)" in out
    # measured after a restart: against that run's own bare interpreter
    assert "held by the firmware as the boot that checks it restarts: 20.5 KB (the restart frees it)" in out
    assert "held by the firmware after boot with the new config: 38.6 KB (within the 40 KB budget)" in out
    assert "Connect: online 3.4 s after boot" in out
    assert "Wi-Fi drop (WLAN.disconnect()): back online after 4.1 s" in out
    assert "Journal append: median 21.3 ms, fastest 9.0 ms, slowest 48.0 ms (20 appends)" in out
    assert (
        "Config message: kept, restart 3.0 s later; its boot checked it in 1.4 s and restarted; applied as version "
        "4, then the panel's /remote.json put back" in out
    )
    # a stock image's frozen umqtt is information only (and the file an older deploy left is shadowed)
    assert "Module umqtt.simple: frozen into the image (not used: the firmware has its own MQTT client)" in out
    assert "Module umqtt.robust: frozen into the image (not used: " in out
    assert r.modules()["umqtt.simple"] == {"file": "/lib/umqtt/simple.mpy", "where": "frozen", "used": False}
    assert "Frozen packages (help('modules')): umqtt.robust, umqtt.simple" in out
    assert "Panel counters: boot 5, seq 10, pending 0, dropped 0, rssi -61, connects 2, reset cause 5" in out
    unfinished = report_of("\n".join(lines[:5]))
    assert not unfinished.passed()


def test_the_check_report_says_where_the_config_message_stopped(capsys):
    r = report_of(
        'CHECK boot {"ms": 800, "state": {}}\nCHECK config {"ver": 2, "kept": false, "restart_ms": null, '
        '"error": "no restart within 60 s"}\nCHECK end {}'
    )
    assert r.passed()
    check.format_report(r, "p")
    out = capsys.readouterr().out
    assert "Config message: not kept (no restart within 60 s); the panel's files were put back" in out
    assert "boot checking it" not in out  # no restart, no such boot


def test_device_check_dry_run_prints_the_plan(capsys):
    rc = main(["device", "check", "--port", "/dev/ttyUSB0", "--connect", "30", "--no-drop", "--dry-run"])
    out = capsys.readouterr().out
    assert rc == 0
    runs = [x.strip() for x in out.splitlines() if "-m mpremote connect /dev/ttyUSB0" in x]
    # one run per stage, each after a soft reset (no `resume`), as the firmware restarts; then the reset
    assert len(runs) == 4
    for run, stage in zip(runs[:3], check.STAGES, strict=True):
        assert "resume" not in run  # a soft reset first: the heap is measured fresh
        assert run.startswith("%s -m mpremote connect /dev/ttyUSB0 exec " % sys.executable)
        assert "exec 'import machine;machine.WDT(timeout=900000).feed()' + exec" in run
        args = "CHECK_ARGS = dict(appends=20, budget_s=900, connect_s=30, drop=False, stage=%r)" % stage
        assert "exec %s + run " % shlex.quote(args) in run
        assert run.endswith("run " + check.PROGRAM)
    assert runs[3].endswith("resume reset")
