"""The Wi-Fi and MQTT passwords: from a prompt or a file, never on a command line the tools
build, never in a temporary file, never in the output (technician/secrets.py)."""

import io
import json
import os
import random
import subprocess
import sys
import threading
import time

import pytest
from device_standin.standin import Standin, StandinUnavailable, ensure_vm

from rating.cli import main
from technician import secrets
from technician.errors import DeviceError

RATING = os.path.join(os.path.dirname(sys.executable), "rating")


class ArgvWatch:
    """Polls every process's command line on this machine while a run goes on; `hits` holds
    those that carry one of the secrets."""

    def __init__(self, *secrets_):
        self.secrets = [s.encode() for s in secrets_]
        self.hits = []
        self.polls = 0
        self.stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop:
            for pid in os.listdir("/proc"):
                if not pid.isdigit():
                    continue
                try:
                    with open("/proc/%s/cmdline" % pid, "rb") as f:
                        argv = f.read()
                except OSError:
                    continue
                if any(s in argv for s in self.secrets):
                    self.hits.append(argv.replace(b"\0", b" ").decode(errors="replace"))
            self.polls += 1
            time.sleep(0.01)

    def close(self):
        self.stop = True
        self.thread.join(5)


def files_holding(folder, *secrets_):
    found = []
    for root, _dirs, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            try:
                data = open(path, "rb").read()
            except OSError:
                continue
            if any(s.encode() in data for s in secrets_):
                found.append(path)
    return found


@pytest.fixture(scope="module")
def vm():
    try:
        return ensure_vm()
    except StandinUnavailable as exc:
        pytest.skip(str(exc))


@pytest.mark.e2e
@pytest.mark.timeout(180)
def test_passwords_travel_in_no_command_line_and_no_temporary_file(vm, tmp_path, fw_bundle):
    wifi = "Wifi-s3cret-%d" % random.randrange(10**9)
    mqtt = "Mqtt-s3cret-%d" % random.randrange(10**9)
    panel = Standin(tmp_path / "panel")
    panel.app_watchdog(1500)
    panel.start()
    keep = tmp_path / "keep"  # the technician's own password file: not a temporary file of ours
    keep.mkdir()
    (keep / "mqtt.txt").write_text(mqtt + "\n")
    tmp = tmp_path / "tmp"  # TMPDIR of the run and of everything it starts
    tmp.mkdir()
    env = dict(os.environ, TMPDIR=str(tmp), PYTHONUNBUFFERED="1")
    argv = [RATING, "device", "deploy", "--port", panel.port, "--bundle", fw_bundle, "--wait", "0"]
    argv += ["--site", "office-1", "--device", "panel-9", "--wifi-ssid", "Shop", "--broker", "mqtt://127.0.0.1:9"]
    argv += ["--mqtt-user", "panel-9", "--mqtt-password-file", str(keep / "mqtt.txt")]
    watch = ArgvWatch(wifi, mqtt)
    subprocess.run(["sh", "-c", "sleep 0.2", "argv-with", wifi], check=True)  # the watch does see one
    assert watch.hits and wifi in watch.hits[0]
    watch.hits.clear()
    master, slave = os.openpty()  # a terminal on standard input: deploy asks for the Wi-Fi password
    try:
        dry = subprocess.run(argv + ["--dry-run"], env=env, capture_output=True, text=True, timeout=60, stdin=slave)
        assert dry.returncode == 0, dry.stdout + dry.stderr
        assert "password" not in dry.stderr and mqtt not in dry.stdout  # a dry-run asks nothing
        proc = subprocess.Popen(
            argv,
            env=env,
            stdin=slave,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # no controlling terminal: getpass reads the pty on stdin
        )
        assert proc.stdout is not None
        seen = b""
        while b"Wi-Fi password" not in seen:
            chunk = proc.stdout.read1(4096)
            assert chunk, seen.decode(errors="replace")
            seen += chunk
        os.write(master, (wifi + "\n").encode())
        rest, _ = proc.communicate(timeout=120)
        out = (seen + rest).decode(errors="replace")
        assert proc.returncode == 0, out
    finally:
        watch.close()
        os.close(master)
        os.close(slave)
        panel.stop()
    assert "Deployed." in out and wifi not in out and mqtt not in out
    cfg = (tmp_path / "panel" / "flash" / "config.json").read_text()
    assert wifi in cfg and mqtt in cfg  # they did reach the panel
    assert watch.polls > 50 and watch.hits == []
    assert os.listdir(tmp) == []  # nothing left in the temporary folder, let alone a password
    # anywhere under this test's folder (the stand-in's flash, its logs, ...): only the panel's
    # file and the technician's own password file
    holding = sorted(files_holding(tmp_path, wifi, mqtt))
    assert holding == [str(tmp_path / "keep" / "mqtt.txt"), str(tmp_path / "panel" / "flash" / "config.json")]


def test_the_old_password_flags_still_work_with_a_warning(capsys, tmp_path):
    b = tmp_path / "fw"
    (b / "lib").mkdir(parents=True)
    (b / "main.py").write_text("x")
    (b / "manifest.json").write_text('{"fw": "9", "files": {"main.py": "1"}}')
    rc = main(
        ["device", "deploy", "--port", "/dev/ttyUSB3", "--bundle", str(b), "--dry-run", "--site", "s1"]
        + ["--device", "p1", "--wifi-ssid", "W", "--wifi-password", "pw1", "--broker", "mqtt://10.0.0.1"]
    )
    cap = capsys.readouterr()
    assert rc == 0 and "pw1" not in cap.out
    assert "warning: --wifi-password on the command line shows the Wi-Fi password" in cap.err
    assert "--wifi-password-file" in cap.err


def test_a_password_comes_from_a_file_a_prompt_or_nowhere(tmp_path):
    f = tmp_path / "pw"
    f.write_text("line one\nline two\n")
    assert secrets.obtain("Wi-Fi", "--wifi-password", path=str(f)) == "line one"
    assert secrets.obtain("Wi-Fi", "--wifi-password", path="-", stdin=io.StringIO("from stdin\n")) == "from stdin"
    asked = []

    def prompt(text):
        asked.append(text)
        return "typed"

    assert secrets.obtain("MQTT", "--mqtt-password", ask=True, prompt=prompt, interactive=True) == "typed"
    assert asked == ["MQTT password (not shown; empty for none): "]
    # no terminal (a script): nothing asked, the panel keeps its password
    assert secrets.obtain("MQTT", "--mqtt-password", ask=True, prompt=prompt, interactive=False) is None
    assert secrets.obtain("Wi-Fi", "--wifi-password", ask=True, empty="", prompt=lambda t: "", interactive=True) == ""
    with pytest.raises(DeviceError, match="not both"):
        secrets.obtain("Wi-Fi", "--wifi-password", value="a", path=str(f))
    with pytest.raises(DeviceError, match="--wifi-password-file .*missing: cannot read it"):
        secrets.obtain("Wi-Fi", "--wifi-password", path=str(tmp_path / "missing"))


@pytest.mark.e2e
@pytest.mark.timeout(300)
def test_deploy_writes_the_panels_credentials_file_into_the_panel_and_deletes_it(vm, tmp_path, fw_bundle):
    """`rating panel credentials` -> `rating device deploy --credentials FILE`: the login goes into
    the panel's /config.json over USB (no argv, no temporary file, not in the output), a password
    rotated over the air before (pw.json, pw.new) no longer overrides it, FILE is deleted. A
    later deploy that does not change the password keeps a rotated one."""
    db = "sqlite:///%s" % (tmp_path / "rating.db")
    creds = tmp_path / "keep" / "office-1-panel-9.json"
    creds.parent.mkdir()
    made = subprocess.run(
        [RATING, "panel", "credentials", "office-1/panel-9", "--out", str(creds), "--db", db],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert made.returncode == 0, made.stderr
    login = json.loads(creds.read_text())["mqtt"]
    assert login["user"] == "panel.office-1.panel-9" and login["password"] not in made.stdout
    wifi_file = tmp_path / "keep" / "wifi.txt"
    wifi_file.write_text("Wifi-s3cret\n")
    panel = Standin(tmp_path / "panel")
    flash = tmp_path / "panel" / "flash"
    rotated = json.dumps({"pwv": 7, "pw": "R" * 32})
    (flash / "pw.json").write_text(rotated)
    (flash / "pw.new").write_text(rotated)
    panel.app_watchdog(1500)
    panel.start()
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = dict(os.environ, TMPDIR=str(tmp))
    base = [RATING, "device", "deploy", "--port", panel.port, "--bundle", fw_bundle, "--wait", "0"]
    base += ["--wifi-password-file", str(wifi_file), "--broker", "mqtt://127.0.0.1:9"]
    argv = base + ["--wifi-ssid", "Shop"]
    watch = ArgvWatch(login["password"])
    try:
        wrong = subprocess.run(
            argv + ["--credentials", str(creds), "--device", "panel-1"], env=env, capture_output=True, text=True
        )
        assert wrong.returncode == 2 and "are for office-1/panel-9" in wrong.stderr and creds.exists()
        run = subprocess.run(argv + ["--credentials", str(creds)], env=env, capture_output=True, text=True, timeout=150)
        assert run.returncode == 0, run.stdout + run.stderr
        cfg = json.loads((flash / "config.json").read_text())
        assert (cfg["site"], cfg["device"]) == ("office-1", "panel-9")
        assert cfg["mqtt"]["user"] == login["user"] and cfg["mqtt"]["password"] == login["password"]
        assert not (flash / "pw.json").exists() and not (flash / "pw.new").exists()
        assert not creds.exists() and "deleted" in run.stdout
        assert login["password"] not in run.stdout + run.stderr
        # a rotation over the air later; a deploy that changes only the Wi-Fi keeps its password
        panel.stop()
        (flash / "pw.json").write_text(rotated)
        panel.start()
        base[base.index("--port") + 1] = panel.port
        again = subprocess.run(
            base + ["--wifi-ssid", "Shop-2"],
            env=env,
            capture_output=True,
            text=True,
            timeout=150,
        )
        assert again.returncode == 0, again.stdout + again.stderr
        assert json.loads((flash / "config.json").read_text())["wifi"]["ssid"] == "Shop-2"
        assert (flash / "pw.json").read_text() == rotated
    finally:
        watch.close()
        panel.stop()
    assert watch.polls > 50 and watch.hits == []
    assert os.listdir(tmp) == []
