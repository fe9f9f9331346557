"""`rating device flash` end to end: esptool's real erase, write and verify against a stand-in
for the ESP32's ROM boot loader behind a pseudo-terminal (PyPI esp32-mock-bootloader: it answers
the SLIP boot-loader protocol, keeps the flash in memory and returns its MD5; it runs no code)."""

import os
import signal
import struct
import subprocess
import sys
import time

import pytest

from rating.cli import main

MOCK = os.path.join(os.path.dirname(sys.executable), "esp32-mock-bootloader")
CHIP_ID = {"esp32": 0, "esp32s3": 9}

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]


@pytest.fixture
def rom_loader(tmp_path):
    """start(chip) -> the device path of a board of that chip waiting in download mode."""
    procs = []

    def start(chip):
        port_file = tmp_path / ("port-%s-%d" % (chip, len(procs)))
        env = dict(os.environ, ESP32_MOCK_BOOTLOADER_STATE_DIR=str(tmp_path / "mock-state"))
        log = open(tmp_path / ("mock-%d.log" % len(procs)), "wb")
        proc = subprocess.Popen(
            [MOCK, "run", "--pty", "--port-file", str(port_file), "--chip", chip, "--timeout", "170"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        procs.append((proc, log))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if port_file.exists() and port_file.read_text().strip():
                return port_file.read_text().strip()
            assert proc.poll() is None, "the mock boot loader stopped: %s" % open(log.name).read()
            time.sleep(0.05)
        pytest.fail("the mock boot loader did not start")

    yield start
    for proc, log in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(10)
        log.close()


def image(tmp_path, chip, size=150000):
    """A firmware image with the header esptool and `rating device flash` read (magic, chip id)."""
    header = bytes([0xE9, 3, 2, 0x20]) + b"\0" * 8 + struct.pack("<H", CHIP_ID[chip]) + b"\0" * 2
    path = tmp_path / ("%s.bin" % chip)
    path.write_bytes(header + os.urandom(size))
    return str(path)


@pytest.mark.parametrize("chip,offset", [("esp32", "0x00001000"), ("esp32s3", "0x00000000")])
def test_flash_erases_writes_and_verifies_through_esptool(capsys, tmp_path, rom_loader, chip, offset):
    port = rom_loader(chip)
    img = image(tmp_path, chip)
    rc = main(["device", "flash", "--port", port, "--image", img, "--chip", chip])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "Flash memory erased successfully" in out
    assert "Wrote %d bytes at %s" % (os.path.getsize(img), offset) in out and "Hash of data verified." in out
    assert "Verification successful (digest matched)." in out
    assert "Flashed and verified. Next: rating device deploy --port %s" % port in out


def test_flash_on_a_board_of_another_chip_names_the_chip(capsys, tmp_path, rom_loader):
    port = rom_loader("esp32s3")
    rc = main(["device", "flash", "--port", port, "--image", image(tmp_path, "esp32"), "--chip", "esp32"])
    cap = capsys.readouterr()
    assert rc == 2
    assert "the board on %s is an ESP32-S3, not an ESP32. Run again with --chip esp32s3" % port in cap.err
    assert "Erase the whole flash" in cap.out and "Write " not in cap.out  # stopped at the first step
