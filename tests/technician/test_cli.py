"""rating device: pure parts and error paths on real pseudo-terminals (no MicroPython needed)."""

import json
import os
import struct
import subprocess
import sys
import threading
import time

import pytest

from rating.cli import main
from technician import birth, bundle_info, deploy, flash, panelconfig, ports, selftest
from technician.errors import DeviceError, WrongChip


# ---- a pseudo-terminal whose far end is a test thread (not a MicroPython board) ----------
class FakeLine:
    """A pty: `port` is the device path; the thread answers every write with `reply`."""

    def __init__(self, reply=b"", greeting=b""):
        self.master, self.slave = os.openpty()
        self.port = os.ttyname(self.slave)
        self.reply = reply
        self.greeting = greeting
        self.stop = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        import select

        if self.greeting:  # once the tool has opened the port (opening flushes the input)
            time.sleep(0.4)
            os.write(self.master, self.greeting)
        while not self.stop:
            r, _, _ = select.select([self.master], [], [], 0.05)
            if r:
                try:
                    os.read(self.master, 4096)
                except OSError:
                    return
                if self.reply:
                    os.write(self.master, self.reply)

    def close(self):
        self.stop = True
        self.thread.join(2)
        os.close(self.master)
        os.close(self.slave)


@pytest.fixture
def line():
    made = []

    def make(**kw):
        made.append(FakeLine(**kw))
        return made[-1]

    yield make
    for x in made:
        x.close()


def run_cli(capsys, *argv):
    rc = main(["device"] + list(argv))
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


# ---- list ----------------------------------------------------------------------------------
def test_device_classify_known_bridges():
    assert ports.classify(0x10C4, 0xEA60) == ("CP210x", "ESP32", True)
    assert ports.classify(0x1A86, 0x55D4)[2] is True
    assert ports.classify(0x303A, 0x1001)[1].startswith("ESP32-S3")
    assert ports.classify(0x046D, 0xC52B) == ("USB 046d:c52b", None, False)
    assert ports.classify(None, None) == (None, None, False)


def test_device_list_json_shows_a_present_pty(capsys, line):
    pty = line()
    rc, out, _ = run_cli(capsys, "list", "--format", "json", "--also", pty.port)
    assert rc == 0
    rows = json.loads(out)
    mine = [r for r in rows if r["port"] == pty.port]
    assert mine and mine[0]["likely_esp32"] is False and "not USB" in mine[0]["description"]


# ---- flash ---------------------------------------------------------------------------------
def image(tmp_path, chip_id, name="fw.bin"):
    header = bytes([0xE9, 3, 2, 0x20]) + b"\0" * 8 + struct.pack("<H", chip_id) + b"\0" * 2
    path = tmp_path / name
    path.write_bytes(header + b"\xff" * 64)
    return str(path)


@pytest.mark.parametrize("chip,offset", [("esp32", "0x1000"), ("esp32s3", "0x0")])
def test_device_flash_dry_run_prints_erase_write_verify(capsys, tmp_path, chip, offset):
    img = image(tmp_path, 0 if chip == "esp32" else 9)
    rc, out, _ = run_cli(capsys, "flash", "--port", "/dev/ttyUSB7", "--image", img, "--chip", chip, "--dry-run")
    assert rc == 0
    cmds = [line.strip() for line in out.splitlines() if "-m esptool" in line]
    assert len(cmds) == 3
    assert all(("--chip %s --port /dev/ttyUSB7 --baud 460800" % chip) in c for c in cmds)
    assert cmds[0].endswith("erase-flash")
    assert cmds[1].endswith("write-flash -z %s %s" % (offset, img))
    assert cmds[2].endswith("verify-flash %s %s" % (offset, img))


def test_device_flash_refuses_wrong_image_before_touching_the_board(capsys, tmp_path):
    img = image(tmp_path, 9)  # an ESP32-S3 build
    rc, _, err = run_cli(capsys, "flash", "--port", "/dev/nonexistent", "--image", img, "--chip", "esp32")
    assert rc == 2 and "built for ESP32-S3 but --chip is ESP32" in err
    bad = tmp_path / "x.uf2"
    bad.write_bytes(b"UF2\n" + b"\0" * 32)
    with pytest.raises(DeviceError, match="not an ESP32 firmware image"):
        flash.check_image(str(bad), "esp32")
    with pytest.raises(DeviceError, match="not found"):
        flash.check_image(str(tmp_path / "missing.bin"), "esp32")


def test_device_flash_dry_run_checks_the_image_as_the_real_run_does(capsys, tmp_path):
    rc, out, err = run_cli(
        capsys, "flash", "--port", "/dev/ttyUSB7", "--image", str(tmp_path / "missing.bin"), "--dry-run"
    )
    assert rc == 2 and "image file" in err and "not found" in err and "esptool" not in out
    img = image(tmp_path, 9)  # an ESP32-S3 build
    rc, out, err = run_cli(capsys, "flash", "--port", "/dev/ttyUSB7", "--image", img, "--chip", "esp32", "--dry-run")
    assert rc == 2 and "built for ESP32-S3 but --chip is ESP32" in err and out == ""


def test_device_flash_explains_esptool_failures():
    err = flash.explain(
        "A fatal error occurred: This chip is ESP32-S3, not ESP32. Wrong --chip argument?", "esp32", "/dev/ttyUSB0"
    )
    assert isinstance(err, WrongChip) and "--chip esp32s3" in str(err)
    err = flash.explain(
        "A fatal error occurred: Failed to connect to ESP32: No serial data received.", "esp32", "/dev/ttyUSB0"
    )
    assert "BOOT" in str(err)
    assert flash.explain("all fine", "esp32", "p") is None


# ---- deploy: pure planning -----------------------------------------------------------------
MANIFEST = {  # a bundle as `make firmware` writes it: no umqtt (the firmware has its own MQTT client)
    "fw": "9.9",
    "files": {
        "main.py": "a",
        "config.example.json": "b",
        "lib/firmware/x.mpy": "c",
        "lib/protocol/y.mpy": "d",
    },
}


def test_device_bundle_diff_copies_only_what_differs():
    assert bundle_info.deployable(MANIFEST) == ["lib/firmware/x.mpy", "lib/protocol/y.mpy", "main.py"]
    assert bundle_info.changed(MANIFEST, {"main.py": "a", "lib/firmware/x.mpy": "OLD"}) == [
        "lib/firmware/x.mpy",
        "lib/protocol/y.mpy",
    ]
    old = {"files": {"lib/firmware/gone.mpy": "z", "lib/firmware/x.mpy": "c", "j0001": "q"}}
    assert bundle_info.stale(old, MANIFEST) == ["lib/firmware/gone.mpy"]  # never the journal
    assert bundle_info.emptied(["lib/firmware/gone.mpy"], MANIFEST) == []  # its folder is still used
    assert bundle_info.parents(["lib/firmware/x.mpy", "main.py"]) == ["lib", "lib/firmware"]


def test_deploy_removes_the_umqtt_an_older_deploy_installed():
    # fw 0.1.0 bundles shipped lib/umqtt/simple.mpy; the panel's manifest says a deploy put it there
    old = {"files": {"lib/umqtt/simple.mpy": "e", "lib/firmware/x.mpy": "c"}}
    stale = bundle_info.stale(old, MANIFEST)
    assert stale == ["lib/umqtt/simple.mpy"]
    assert bundle_info.emptied(stale, MANIFEST) == ["lib/umqtt"]  # lib itself stays: the bundle uses it
    # never a umqtt the panel had from elsewhere (no deploy of ours listed it), nor another file there
    assert bundle_info.stale({"files": {"lib/umqtt/robust.mpy": "r"}}, MANIFEST) == []
    assert bundle_info.stale(None, MANIFEST) == []


def test_device_config_merge_keeps_what_was_not_overridden():
    existing = {
        "site": "s1",
        "device": "p1",
        "wifi": {"ssid": "Shop", "password": "old"},
        "mqtt": {"host": "10.0.0.2", "port": 1883},
        "led_brightness": 30,
    }
    over = panelconfig.overrides_from(wifi_password="new", broker="mqtt://gw.example:8884")
    merged = panelconfig.merge(existing, over)
    assert merged["wifi"] == {"ssid": "Shop", "password": "new"}
    assert merged["mqtt"] == {"host": "gw.example", "port": 8884, "ssl": False}
    assert merged["led_brightness"] == 30 and existing["wifi"]["password"] == "old"
    text, full = panelconfig.validate(merged)
    assert json.loads(text) == merged and full["mqtt"]["root"] == "rating/v1"
    # the panel has no TLS (firmware/README.md, "TLS"): an mqtts:// broker is refused, clearly
    tls = panelconfig.merge(existing, panelconfig.overrides_from(broker="mqtts://gw.example:8884"))
    with pytest.raises(DeviceError, match="mqtt.ssl: TLS is not supported on the panel"):
        panelconfig.validate(tls)


def test_device_config_errors_name_the_option():
    with pytest.raises(DeviceError, match=r"wifi\.ssid: missing.*--wifi-ssid"):
        panelconfig.validate({"site": "s1", "device": "p1", "mqtt": {"host": "h"}})
    with pytest.raises(DeviceError, match="--broker"):
        panelconfig.parse_broker("http://x")
    with pytest.raises(DeviceError, match="site"):
        panelconfig.validate({"site": "bad site/+", "device": "p1", "wifi": {"ssid": "w"}, "mqtt": {"host": "h"}})


def test_device_deploy_dry_run_lists_mpremote_steps(capsys, tmp_path):
    b = tmp_path / "fw"
    (b / "lib" / "firmware").mkdir(parents=True)
    for rel in ("main.py", "lib/firmware/x.mpy"):
        (b / rel).write_text("x")
    (b / "manifest.json").write_text(json.dumps({"fw": "9.9", "files": {"main.py": "1", "lib/firmware/x.mpy": "2"}}))
    rc, out, _ = run_cli(
        capsys,
        "deploy",
        "--port",
        "/dev/ttyUSB3",
        "--site",
        "s1",
        "--device",
        "p1",
        "--wifi-ssid",
        "W",
        "--broker",
        "mqtt://10.1.1.1:1883",
        "--bundle",
        str(b),
        "--dry-run",
    )
    assert rc == 0
    lines = [line.strip() for line in out.splitlines()]
    cmds = [line for line in lines if "-m mpremote connect /dev/ttyUSB3" in line]
    assert " run " in cmds[0] and cmds[0].endswith(deploy.PROBE) and os.path.isfile(deploy.PROBE)
    assert "umqtt" not in out  # the firmware has its own MQTT client: nothing to install
    assert "fs mkdir :lib +" in cmds[1] and "fs mkdir :lib/firmware" in cmds[1]
    assert ":main.py" in cmds[1] and ":rating-manifest.json" in cmds[1]
    # every step that stops the app re-arms the watchdog before anything else
    rearm = "exec 'import machine;machine.WDT(timeout=600000).feed()' +"
    for cmd in cmds[:2]:
        after = cmd.split("/dev/ttyUSB3 ", 1)[1]
        assert after.removeprefix("resume ").startswith(rearm), cmd
    assert cmds[2].endswith("resume reset") and len(cmds) == 3
    # /config.json (passwords) goes over the serial line from this process: no command line
    config = lines[lines.index(next(x for x in lines if x.startswith("3. Write /config.json"))) + 1]
    assert config.startswith("(in this program, over the serial line:") and ":config.json.new" in config


def small_bundle(tmp_path):
    b = tmp_path / "fw"
    (b / "lib").mkdir(parents=True)
    (b / "main.py").write_text("x")
    (b / "manifest.json").write_text(json.dumps({"fw": "9.9", "files": {"main.py": "1"}}))
    return str(b)


def test_deploy_checks_an_mqtt_user_before_its_password_is_read(capsys, tmp_path):
    # the password is asked for (or read from its file) after the settings are checked, or stays
    # the panel's: a user alone, or a password alone, passes the check of what was given
    assert panelconfig.check_given(panelconfig.overrides_from(mqtt_user="panel-9"))
    assert panelconfig.check_given(panelconfig.overrides_from(mqtt_password="pw"))
    given = ["--site", "s1", "--device", "p1", "--wifi-ssid", "W", "--broker", "mqtt://10.0.0.1"]
    rc, out, err = run_cli(
        capsys, "deploy", "--port", "/dev/ttyUSB3", "--bundle", small_bundle(tmp_path), *given, "--mqtt-user", "u1",
        "--dry-run",
    )  # fmt: skip
    assert rc == 0 and "Write /config.json" in out, err
    # what the user gave is still checked with the firmware's rules
    with pytest.raises(DeviceError, match="mqtt.user: .*--mqtt-user"):
        panelconfig.check_given(panelconfig.overrides_from(mqtt_user=""))
    # the real run checks the panel's file with the options laid on: no password anywhere is refused
    panel_file = {"site": "s1", "device": "p1", "wifi": {"ssid": "W"}, "mqtt": {"host": "h"}}
    with pytest.raises(DeviceError, match=r"mqtt\.password: missing: a user needs its password.*--mqtt-password"):
        panelconfig.validate(panelconfig.merge(panel_file, panelconfig.overrides_from(mqtt_user="u1")))


@pytest.mark.parametrize(
    "option,value,named",
    [
        ("--site", "bad site/+", "--site"),
        ("--device", "", "--device"),
        ("--broker", "http://gw", "--broker"),
        ("--broker", "mqtt://gw:99999", "--broker"),
        ("--wifi-ssid", "", "--wifi-ssid"),
    ],
)
def test_device_deploy_dry_run_checks_each_setting_given(capsys, tmp_path, option, value, named):
    """A dry-run does not know the panel's file, so only what was given is checked, with the
    firmware's own rules; the rest of the plan needs nothing more."""
    rc, out, err = run_cli(
        capsys, "deploy", "--port", "/dev/ttyUSB3", "--bundle", small_bundle(tmp_path), option, value, "--dry-run"
    )
    assert rc == 2 and named in err and out == "", err


def test_device_deploy_dry_run_of_a_partial_change_plans_it(capsys, tmp_path):
    rc, out, _ = run_cli(
        capsys, "deploy", "--port", "/dev/ttyUSB3", "--bundle", small_bundle(tmp_path), "--device", "p2", "--dry-run"
    )
    assert rc == 0 and "3. Write /config.json" in out and "4. Restart the panel" in out and "5. Wait up to 60 s" in out


def test_device_deploy_without_bundle_says_make_firmware(capsys, tmp_path):
    rc, _, err = run_cli(capsys, "deploy", "--port", "/dev/ttyUSB3", "--bundle", str(tmp_path), "--dry-run")
    assert rc == 2 and "make firmware" in err


# ---- self-test and console parsing ---------------------------------------------------------
SCRIPT = """SELFTEST START fw=0.1.0
SELFTEST LED rate ok
SELFTEST LED thanks ok
SELFTEST LED status ok
SELFTEST LED seller fail pwm_error
SELFTEST WIFI ok rssi=-61
SELFTEST MQTT fail ECONNREFUSED
SELFTEST NTP ok 1764000000000
SELFTEST PRESS 60
SELFTEST BUTTON yes down
SELFTEST BUTTON yes up
SELFTEST BUTTON no down
SELFTEST BUTTON no up
SELFTEST BUTTON unsure down
SELFTEST BUTTON seller down
SELFTEST BUTTON seller up
SELFTEST END"""


def test_device_selftest_report_from_scripted_lines(capsys):
    r = selftest.SelfTestReport()
    for line in SCRIPT.splitlines():
        r.feed(line)
    r.feed("link: something else")
    rows = {c: (ok, d) for c, ok, d in r.rows()}
    assert r.fw == "0.1.0" and r.press_s == 60 and r.ended
    assert rows["LED seller"] == (False, "pwm_error") and rows["LED rate"][0]
    assert rows["button YES"][0] and rows["button SELLER"][0]
    assert rows["button UNSURE"] == (False, "pressed but never released (stuck?)")
    assert rows["Wi-Fi"] == (True, "rssi=-61") and rows["broker"] == (False, "ECONNREFUSED")
    assert rows["clock sync"][0] and not r.passed()
    selftest.format_report(r)
    out = capsys.readouterr().out
    assert "FAIL broker" in out.replace("  ", " ") or "FAIL" in out
    assert "Overall: FAIL" in out


def test_device_console_reading_spots_birth_and_config_error():
    c = birth.ConsoleReading()
    c.feed("panel: office-1/panel-1 fw 0.1.0 boot 4 seq 12 pending 0")
    assert not c.online and c.fw == "0.1.0"
    c.feed("link: mqtt up 10.0.0.2:1883")
    assert c.online and c.host == "10.0.0.2:1883"
    bad = birth.ConsoleReading()
    bad.feed("CONFIG ERROR /config.json: mqtt.port: must be an integer 1..65535, got 0 -- fix the file")
    assert bad.error.startswith("CONFIG ERROR") and not bad.online


# ---- errors on real ports ------------------------------------------------------------------
@pytest.mark.parametrize("action", ["deploy", "test", "logs"])
def test_device_missing_port_is_explained(capsys, action):
    argv = [action, "--port", "/dev/ttyUSB_rating_missing"]
    if action == "deploy":
        argv += ["--site", "s1", "--device", "p1", "--wifi-ssid", "W", "--broker", "mqtt://127.0.0.1:1"]
    if action == "test":
        argv += ["--non-interactive"]
    rc, _, err = run_cli(capsys, *argv)
    assert rc == 2
    assert "serial port /dev/ttyUSB_rating_missing does not exist" in err and "rating device list" in err


@pytest.mark.e2e
def test_device_busy_port_is_explained(capsys, line):
    pty = line()
    # another program holding the port with the exclusive lock pyserial/mpremote take
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, sys, time\nf = open(sys.argv[1], 'rb')\n"
            "fcntl.flock(f.fileno(), fcntl.LOCK_EX)\nprint('held', flush=True)\ntime.sleep(60)\n",
            pty.port,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        rc, _, err = run_cli(capsys, "test", "--port", pty.port, "--non-interactive")
        assert rc == 2 and "is in use by python" in err and "pid %d" % holder.pid in err
        rc, _, err = run_cli(capsys, "logs", "--port", pty.port, "--seconds", "0.2")
        assert rc == 2 and "is in use" in err
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.e2e
def test_device_board_without_micropython_is_explained(capsys, line, monkeypatch):
    from technician.console import Console

    monkeypatch.setattr(Console, "ANSWER_S", 0.5)
    pty = line(reply=b"\x00\xfe?garbage at the wrong baud\r\n")
    rc, _, err = run_cli(capsys, "test", "--port", pty.port, "--non-interactive")
    assert rc == 2
    assert "does not answer like MicroPython" in err and "garbage" in err and "rating device flash" in err
    silent = line()
    with pytest.raises(DeviceError, match="nothing came back"):
        from technician.console import check_board

        check_board(silent.port, timeout=0.3)


@pytest.mark.e2e
def test_device_logs_follows_the_console(capsys, line):
    pty = line(greeting=b"panel: s1/p1 fw 0.1.0 boot 2 seq 5 pending 0\r\nlink: mqtt up 10.0.0.2:1883\r\n")
    rc, out, _ = run_cli(capsys, "logs", "--port", pty.port, "--seconds", "0.8", "--no-time")
    assert rc == 0
    assert "panel: s1/p1 fw 0.1.0 boot 2 seq 5 pending 0" in out.splitlines()
    assert "link: mqtt up 10.0.0.2:1883" in out.splitlines()


def test_a_failed_step_never_shows_the_probes_answer():
    from technician import steps

    step = steps.Step("Read what is on the panel", ["mpremote"])
    text = 'RATING-PROBE {"config": "{\\"wifi\\": {\\"password\\": \\"s3cret\\"}}"}\nTraceback: it broke\n'
    message = steps.explain_failure(step, text)
    assert "it broke" in message and "s3cret" not in message and "RATING-PROBE" not in message
