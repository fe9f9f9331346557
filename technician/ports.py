"""Finding and opening the panel's USB serial port.

`classify(vid, pid)` is pure (USB ids -> bridge chip and ESP32 guess); `list_ports()` asks
pyserial; `open_port()` opens with an exclusive lock and turns the OS's answers into
DeviceErrors a technician understands (missing, busy, no permission).
"""

import errno
import glob
import os

from technician.errors import DeviceError, PortBusy, PortMissing
from technician.i18n import _

# USB VID:PID of the USB-serial bridges found on ESP32 boards -> (bridge, likely chip).
KNOWN_USB = {
    (0x10C4, 0xEA60): ("CP210x", "ESP32"),
    (0x1A86, 0x7523): ("CH340", "ESP32"),
    (0x1A86, 0x55D4): ("CH9102", "ESP32"),
    (0x0403, 0x6001): ("FTDI FT232R", "ESP32"),
    (0x0403, 0x6015): ("FTDI FT231X", "ESP32"),
    (0x303A, 0x1001): ("Espressif USB-Serial/JTAG", "ESP32-S3 (or -C3/-C6)"),
    (0x303A, 0x4001): ("Espressif native USB (TinyUSB)", "ESP32-S3 (or -S2)"),
}

URL_SCHEMES = ("socket://", "rfc2217://", "loop://", "spy://")


def classify(vid, pid):
    """-> (bridge, chip_guess, likely_esp32) for a USB id pair (None for non-USB ports)."""
    if vid is None or pid is None:
        return (None, None, False)
    known = KNOWN_USB.get((vid, pid))
    if known:
        return (known[0], known[1], True)
    return ("USB %04x:%04x" % (vid, pid), None, False)


def list_ports(extra_globs=()):
    """All serial ports as dicts, likely ESP32 boards first."""
    from serial.tools import list_ports as lp

    rows = []
    seen = set()
    for p in lp.comports():
        bridge, chip, likely = classify(p.vid, p.pid)
        seen.add(p.device)
        rows.append(
            {
                "port": p.device,
                "likely_esp32": likely,
                "chip_guess": chip,
                "bridge": bridge,
                "vid": "%04x" % p.vid if p.vid is not None else None,
                "pid": "%04x" % p.pid if p.pid is not None else None,
                "serial": p.serial_number,
                "description": p.description,
            }
        )
    for pattern in extra_globs:
        for path in sorted(glob.glob(pattern)):
            real = os.path.realpath(path)
            if path in seen or real in seen:
                continue
            seen.add(path)
            rows.append(
                {
                    "port": path,
                    "likely_esp32": False,
                    "chip_guess": None,
                    "bridge": None,
                    "vid": None,
                    "pid": None,
                    "serial": None,
                    "description": "not USB (%s)" % real,
                }
            )
    rows.sort(key=lambda r: (not r["likely_esp32"], r["port"]))
    return rows


def _ports_hint():
    try:
        rows = list_ports()
    except Exception:
        rows = []
    likely = [r["port"] for r in rows if r["likely_esp32"]]
    if likely:
        return _("Ports that look like an ESP32 board: %s.") % ", ".join(likely)
    if rows:
        return _("No port looks like an ESP32 board (seen: %s).") % ", ".join(r["port"] for r in rows)
    return _("No serial ports at all: the cable may be charge-only, or the USB driver is missing.")


def check_exists(port):
    if port.startswith(URL_SCHEMES):
        return
    if not os.path.exists(port):
        raise PortMissing(
            _(
                "serial port %(port)s does not exist. Plug the panel in with a data USB cable, then run "
                "`rating device list` to see its port name. %(hint)s"
            )
            % {"port": port, "hint": _ports_hint()}
        )


def holders(port):
    """Names of processes that have `port` open (best effort: only those /proc lets us see)."""
    try:
        target = os.path.realpath(port)
        st = os.stat(target)
    except OSError:
        return []
    names = []
    for fd_dir in glob.glob("/proc/[0-9]*/fd"):
        pid = fd_dir.split("/")[2]
        if pid == str(os.getpid()):
            continue
        try:
            for fd in os.listdir(fd_dir):
                try:
                    s = os.stat(os.path.join(fd_dir, fd))
                except OSError:
                    continue
                if s.st_rdev == st.st_rdev and s.st_ino == st.st_ino:
                    with open("/proc/%s/comm" % pid) as f:
                        names.append("%s (pid %s)" % (f.read().strip(), pid))
                    break
        except OSError:
            continue
    return names


def busy_error(port, detail=""):
    who = holders(port)
    by = ", ".join(who) if who else _("another program")
    return PortBusy(
        _(
            "serial port %(port)s is in use by %(by)s%(detail)s. Close the other program (a serial monitor, Thonny, "
            "Arduino IDE, another `rating device` command) and try again."
        )
        % {"port": port, "by": by, "detail": " (%s)" % detail if detail else ""}
    )


def open_port(port, baudrate=115200, timeout=0.1):
    """Open `port` exclusively; raise PortMissing / PortBusy / DeviceError in plain words."""
    import serial

    check_exists(port)
    try:
        return serial.serial_for_url(port, baudrate=baudrate, timeout=timeout, exclusive=True)
    except serial.SerialException as exc:
        text = str(exc)
        code = getattr(exc, "errno", None)
        if code in (errno.EBUSY, errno.EAGAIN) or "exclusively lock" in text or "busy" in text.lower():
            raise busy_error(port, text) from None
        if code == errno.EACCES or "Permission denied" in text:
            raise DeviceError(
                _(
                    "no permission to open %s. On Linux add yourself to the dialout group "
                    "(`sudo usermod -aG dialout $USER`, then log out and back in)."
                )
                % port
            ) from None
        if code == errno.ENOENT or "No such file" in text:
            check_exists(port)
        raise DeviceError(_("cannot open serial port %(port)s: %(error)s") % {"port": port, "error": text}) from None


def check_free(port):
    """Raise PortBusy unless we can take the port exclusively right now (then let it go)."""
    s = open_port(port)
    s.close()
