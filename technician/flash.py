"""`rating device flash`: erase and write a MicroPython image with esptool, then verify.

The image is a file the technician brings (from micropython.org: ESP32_GENERIC-*.bin for a
plain ESP32, ESP32_GENERIC_S3-*.bin for an ESP32-S3). Its header names the chip it was built
for, so a wrong image is refused before anything is erased.
"""

import os
import struct
import sys

from technician import extra
from technician.errors import DeviceError, WrongChip
from technician.i18n import _
from technician.steps import Step

CHIPS = {
    # chip: (flash offset of a MicroPython .bin, image header chip id, human name)
    "esp32": (0x1000, 0x0000, "ESP32"),
    "esp32s3": (0x0, 0x0009, "ESP32-S3"),
}
CHIP_NAMES = {v[1]: k for k, v in CHIPS.items()}
IMAGE_MAGIC = 0xE9
BAUD = 460800


def image_chip(header):
    """Chip key ('esp32', 'esp32s3') from the first 16 bytes of an ESP image, or None."""
    if len(header) < 16 or header[0] != IMAGE_MAGIC:
        return None
    (chip_id,) = struct.unpack_from("<H", header, 12)
    return CHIP_NAMES.get(chip_id, "chip-id-%d" % chip_id)


def check_image(path, chip):
    if not os.path.isfile(path):
        raise DeviceError(
            _(
                "image file %(path)s not found. Download the MicroPython firmware (.bin) for "
                "%(chip)s from micropython.org onto this computer and pass its path with --image."
            )
            % {"path": path, "chip": CHIPS[chip][2]}
        )
    with open(path, "rb") as f:
        header = f.read(16)
    found = image_chip(header)
    if found is None:
        raise DeviceError(
            _(
                "%s is not an ESP32 firmware image (it does not start with the 0xE9 image "
                "header). Use the .bin file from micropython.org, not a .zip, .hex or .uf2."
            )
            % path
        )
    if found != chip:
        raise WrongChip(
            _(
                "%(path)s is built for %(found)s but --chip is %(chip)s. Use the image for your board's chip "
                "(`rating device list` guesses it) or fix --chip."
            )
            % {"path": path, "found": CHIPS.get(found, (0, 0, found))[2], "chip": CHIPS[chip][2]}
        )


def esptool_argv(port, chip, baud, *command):
    return [sys.executable, "-m", "esptool", "--chip", chip, "--port", port, "--baud", str(baud)] + list(command)


def _cmd(name):
    """esptool 5 spells commands with '-', older releases with '_'."""
    try:
        import esptool

        major = int(str(getattr(esptool, "__version__", "5")).split(".")[0])
    except Exception:
        major = 5
    return name if major >= 5 else name.replace("-", "_")


def plan(port, image, chip="esp32", baud=BAUD):
    offset = "0x%x" % CHIPS[chip][0]
    return [
        Step(
            _("Erase the whole flash (removes any old firmware and files)"),
            esptool_argv(port, chip, baud, _cmd("erase-flash")),
            tool="esptool",
        ),
        Step(
            _("Write %(image)s at %(offset)s") % {"image": os.path.basename(image), "offset": offset},
            esptool_argv(port, chip, baud, _cmd("write-flash"), "-z", offset, image),
            tool="esptool",
        ),
        Step(
            _("Verify: read the flash back and compare with the image"),
            esptool_argv(port, chip, baud, _cmd("verify-flash"), offset, image),
            tool="esptool",
        ),
    ]


def explain(text, chip, port):
    """esptool's output -> a sentence for the technician (None when nothing specific)."""
    low = text.lower()
    if "wrong --chip" in low or "wrong chip" in low or "this chip is" in low:
        import re

        m = re.search(r"this chip is (esp32[-a-z0-9]*)", low)
        found = m.group(1) if m else None
        for key, (_o, _i, name) in CHIPS.items():
            if found == name.lower():
                return WrongChip(
                    _(
                        "the board on %(port)s is an %(found)s, not an %(chip)s. Run again with --chip %(key)s and "
                        "the %(found)s image."
                    )
                    % {"port": port, "found": name, "chip": CHIPS[chip][2], "key": key}
                )
        return WrongChip(
            _("the board on %(port)s is not an %(chip)s (esptool: wrong chip). Check --chip.")
            % {"port": port, "chip": CHIPS[chip][2]}
        )
    if "failed to connect" in low or "no serial data received" in low or "timed out waiting for packet" in low:
        return DeviceError(
            _(
                "the board on %s did not enter download mode. Hold its BOOT button, press and "
                "release RESET/EN, release BOOT, then run flash again (try --baud 115200 "
                "with a long cable)."
            )
            % port
        )
    if "could not exclusively lock" in low or "resource busy" in low or "port is busy" in low:
        from technician.ports import busy_error

        return busy_error(port)
    return None


def run(steps_, chip, port, out=print):
    """Run esptool steps with its progress output shown live."""
    import subprocess

    for step in steps_:
        out("- %s" % step.why)
        proc = subprocess.Popen(
            step.argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )
        seen = []
        assert proc.stdout is not None  # stdout=PIPE
        for line in proc.stdout:
            seen.append(line)
            out("    " + line.rstrip())
        proc.wait()
        if proc.returncode != 0:
            gone = extra.missing_in_output("".join(seen))
            if gone:  # never "failed to erase": the tool itself is not there
                raise DeviceError(extra.message([gone]))
            err = explain("".join(seen), chip, port)
            raise err or DeviceError(
                _("esptool failed at step %(step)s (exit %(code)d); see its output above.")
                % {"step": step.why, "code": proc.returncode}
            )
