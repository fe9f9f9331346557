"""The Wi-Fi and MQTT passwords deploy writes into the panel's /config.json.

They come from a prompt (getpass, when a terminal is attached) or from a file
(`--wifi-password-file`, `--mqtt-password-file`; `-` reads standard input), never from a
command line the tools build. The old `--wifi-password`/`--mqtt-password` flags still work, with
a warning: anything on a command line is visible to every user of the computer (`ps`) and stays
in the shell history.
"""

import getpass
import sys

from technician.errors import DeviceError
from technician.i18n import _


def read_file(path, flag, stdin=None):
    """A password file's first line (a trailing newline is not part of the password)."""
    try:
        if path == "-":
            text = (stdin or sys.stdin).readline()
        else:
            with open(path, encoding="utf-8") as f:
                text = f.readline()
    except OSError as exc:
        raise DeviceError(
            _("%(flag)s %(path)s: cannot read it (%(error)s).") % {"flag": flag, "path": path, "error": _why(exc)}
        ) from None
    except UnicodeDecodeError:
        raise DeviceError(_("%(flag)s %(path)s: not a UTF-8 text file.") % {"flag": flag, "path": path}) from None
    return text.rstrip("\r\n")


def _why(exc):
    """The common reasons in the user's language (the OS's own text is English)."""
    if isinstance(exc, FileNotFoundError):
        return _("there is no such file")
    if isinstance(exc, PermissionError):
        return _("no permission to read it")
    if isinstance(exc, IsADirectoryError):
        return _("it is a folder")
    return exc.strerror or exc


def obtain(
    what,
    flag,
    value=None,
    path=None,
    ask=False,
    empty=None,
    warn=None,
    prompt=getpass.getpass,
    interactive=None,
    stdin=None,
):
    """The password for `what` ("Wi-Fi", "MQTT"), or None when none was given (the panel's
    current one is kept). `ask`: prompt for it when nothing was given and a terminal is there;
    an empty answer gives `empty`."""
    if value is not None and path is not None:
        raise DeviceError(_("give %(flag)s or %(flag)s-file, not both.") % {"flag": flag})
    if value is not None:
        (warn or _stderr)(
            _(
                "warning: %(flag)s on the command line shows the %(what)s password to every user of this computer "
                "(ps) and leaves it in the shell history; use %(flag)s-file FILE, or leave it out to be asked."
            )
            % {"flag": flag, "what": what}
        )
        return value
    if path is not None:
        return read_file(path, flag + "-file", stdin)
    if interactive is None:
        interactive = sys.stdin.isatty()
    if ask and interactive:
        answer = prompt(_("%s password (not shown; empty for none): ") % what)
        return answer if answer else empty
    return None


def _stderr(line):
    print(line, file=sys.stderr)


def read_credentials(path, flag="--credentials"):
    """(user, password, site, device) from the file `rating panel credentials` wrote:
    {"mqtt": {"user": "panel.<site>.<device>", "password": ...}}. The password is never echoed
    in an error."""
    import json

    from protocol import ProtocolError, topics

    try:
        with open(path, encoding="utf-8") as f:
            data = json.loads(f.read(4096))
    except OSError as exc:
        raise DeviceError("%s %s: cannot read it (%s)." % (flag, path, exc.strerror or exc)) from None
    except ValueError:
        raise DeviceError("%s %s: not the JSON file `rating panel credentials` writes." % (flag, path)) from None
    m = data.get("mqtt") if isinstance(data, dict) else None
    user = m.get("user") if isinstance(m, dict) else None
    password = m.get("password") if isinstance(m, dict) else None
    parts = user.split(".") if isinstance(user, str) else []
    if len(parts) != 3 or parts[0] != "panel" or not isinstance(password, str) or not password:
        raise DeviceError(
            '%s %s: expected {"mqtt": {"user": "panel.SITE.DEVICE", "password": ...}} as '
            "`rating panel credentials` writes it." % (flag, path)
        )
    try:
        site = topics.check_id(parts[1], "site")
        device = topics.check_id(parts[2], "device")
    except ProtocolError as exc:
        raise DeviceError("%s %s: user %s: %s" % (flag, path, user, exc)) from None
    return user, password, site, device
