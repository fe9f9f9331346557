"""`rating device ...` on a laptop without the technician extra (pyserial, mpremote, esptool):
one line that says how to install it, no traceback; a missing esptool is never "failed to erase"."""

import struct
import sys

import pytest

from rating.cli import main
from technician import flash
from technician.errors import DeviceError
from technician.steps import Step

INSTALL = "pip install 'rating-terminals[device]'"


def image(tmp_path):
    path = tmp_path / "fw.bin"
    path.write_bytes(bytes([0xE9, 3, 2, 0x20]) + b"\0" * 8 + struct.pack("<H", 0) + b"\0" * 2 + b"\xff" * 64)
    return str(path)


def commands(tmp_path):
    img = image(tmp_path)
    return {
        "list": ["list"],
        "flash": ["flash", "--port", "/dev/ttyUSB0", "--image", img, "--dry-run"],
        "deploy": ["deploy", "--port", "/dev/ttyUSB0", "--dry-run", "--site", "s1"],
        "test": ["test", "--port", "/dev/ttyUSB0", "--non-interactive"],
        "check": ["check", "--port", "/dev/ttyUSB0"],
        "logs": ["logs", "--port", "/dev/ttyUSB0"],
    }


@pytest.mark.parametrize("action", ["list", "flash", "deploy", "test", "check", "logs"])
def test_without_the_extra_every_command_says_in_one_line_how_to_install_it(capsys, monkeypatch, tmp_path, action):
    for name in ("serial", "mpremote", "esptool"):
        monkeypatch.setitem(sys.modules, name, None)  # `import serial` now fails as if not installed
    rc = main(["device"] + commands(tmp_path)[action])
    cap = capsys.readouterr()
    assert rc == 2 and cap.out == ""
    assert cap.err.startswith("error: rating device needs the technician tools, and pyserial")
    assert cap.err.rstrip().endswith(INSTALL) and cap.err.count("\n") == 1 and "Traceback" not in cap.err


def test_a_missing_esptool_alone_is_named(capsys, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "esptool", None)
    rc = main(["device"] + commands(tmp_path)["flash"])
    err = capsys.readouterr().err
    assert rc == 2 and "esptool is not installed here" in err and INSTALL in err
    assert "erase" not in err


@pytest.mark.e2e
def test_an_esptool_that_cannot_start_is_not_a_failed_erase(tmp_path):
    # a Python that does not see the installed packages (-S): the real "No module named esptool"
    step = Step("Erase the whole flash", [sys.executable, "-S", "-m", "esptool", "erase-flash"], tool="esptool")
    with pytest.raises(DeviceError) as info:
        flash.run([step], "esp32", "/dev/ttyUSB0", out=lambda line: None)
    assert "esptool is not installed here" in str(info.value) and INSTALL in str(info.value)
    assert "failed to" not in str(info.value)
