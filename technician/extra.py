"""The technician extra (`pip install 'rating-terminals[device]'`): pyserial, mpremote, esptool.

`rating device ...` checks for what a command needs before it does anything, so a laptop
without the extra gets one line saying how to install it, never a traceback, and a missing
esptool is reported as such rather than as a failed erase.
"""

import importlib.util
import re

INSTALL = "pip install 'rating-terminals[device]'"
# import name -> the PyPI package that brings it
PACKAGES = {"serial": "pyserial", "mpremote": "mpremote", "esptool": "esptool"}


def missing(*modules):
    """The PyPI names of the modules that cannot be imported here."""
    out = []
    for name in modules:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            out.append(PACKAGES.get(name, name))
    return out


def message(packages):
    from technician.i18n import ngettext

    return ngettext(
        "rating device needs the technician tools, and %(packages)s is not installed here. "
        "Install them with: %(install)s",
        "rating device needs the technician tools, and %(packages)s are not installed here. "
        "Install them with: %(install)s",
        len(packages),
    ) % {"packages": ", ".join(packages), "install": INSTALL}


def require(*modules):
    from technician.errors import DeviceError

    gone = missing(*modules)
    if gone:
        raise DeviceError(message(gone))


def missing_in_output(text):
    """A subprocess that died on `No module named esptool` (or mpremote...): that package."""
    m = re.search(r"No module named '?([A-Za-z0-9_]+)", text)
    if m and m.group(1) in PACKAGES:
        return PACKAGES[m.group(1)]
    return None
