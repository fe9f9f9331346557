"""The field checks every payload shares, and the checks of the panel's own payloads.

Used by protocol.messages (the gateway's validating encoders and decoders) and protocol.config
(the config payload, which the panel loads only at boot and per config message, and unloads
after). The panel keeps only protocol.panel resident: its lean encoders do not re-check what
its own code built; the gateway checks every field on arrival (README.md, "Heap on the panel").

Integers must be JSON integers: 1.0, true and "1" are rejected (in CPython bool is an int,
MicroPython's is not - `type(x) is int` is the check both agree on). Runs on MicroPython and
CPython: only `json` and builtins.
"""

import json

from protocol import VERSION, ProtocolError

EVENTS = ("yes", "no", "unsure", "seller_short", "seller_long")
SELLER_EVENTS = ("seller_short", "seller_long")
# state "reset": why the panel's current run started (machine.reset_cause() on the ESP32)
RESETS = ("power_on", "hard", "watchdog", "deep_sleep", "soft", "unknown")

MAX_EVENT_BYTES = 256
MAX_BYTES = 1024  # every other payload
MAX_INT = 9007199254740991  # 2**53 - 1: exact in every JSON reader (JS doubles included)
T_MIN = 1577836800000  # 2020-01-01T00:00:00Z in ms: a smaller wall clock means "never synced"
T_MAX = 4102444800000  # 2100-01-01T00:00:00Z in ms (exclusive)
MAX_FAULTS = 16
MAX_TEXT = 200  # cfg_err and similar free text
MAX_SHORT = 32  # fw version, one fault string

# CPython's json escapes non-ASCII as \uXXXX (6 bytes a char, and characters beyond the BMP as
# surrogate pairs that MicroPython's json does NOT join back): send raw UTF-8 instead.
# MicroPython's json.dumps has no ensure_ascii keyword (TypeError) and never escapes.
try:
    json.dumps("", ensure_ascii=False)  # pyright: ignore[reportCallIssue] - CPython-only keyword
    _RAW_UTF8 = True
except TypeError:
    _RAW_UTF8 = False


# ---- field checks --------------------------------------------------------------------------
# Few, straight-line functions that take the value and the field name, not one helper per type.


def _show(value):
    """A value as it would look in JSON, short, for error messages."""
    try:
        text = json.dumps(value)
    except Exception:  # not JSON-able (an encoder got a wrong type), or CPython's int digit limit
        try:
            text = repr(value)
        except Exception:
            text = "<%s>" % type(value).__name__
    return text if len(text) <= 40 else text[:37] + "..."


def _load(data, limit):
    """bytes/str -> dict with v == 1, or ProtocolError("payload" | "v")."""
    if isinstance(data, (bytes, bytearray)):
        size = len(data)
        if size > limit:
            raise ProtocolError("payload", "%d bytes, limit is %d" % (size, limit))
        try:
            data = (data if type(data) is bytes else bytes(data)).decode()
        except Exception:  # UnicodeError on MicroPython, UnicodeDecodeError on CPython
            raise ProtocolError("payload", "not valid UTF-8")
    elif isinstance(data, str):
        try:
            size = len(data.encode())  # count bytes the way the wire does
        except Exception:  # CPython: lone surrogates cannot be encoded
            raise ProtocolError("payload", "not valid UTF-8")
        if size > limit:
            raise ProtocolError("payload", "%d bytes, limit is %d" % (size, limit))
    else:
        raise ProtocolError("payload", "must be bytes or str, got %s" % type(data).__name__)
    try:
        obj = json.loads(data)
    except (ValueError, RuntimeError, MemoryError):  # RuntimeError: CPython recursion on deep nesting
        raise ProtocolError("payload", "not valid JSON")
    if type(obj) is not dict:
        raise ProtocolError("payload", "must be a JSON object, got %s" % _show(obj))
    if "v" not in obj:
        raise ProtocolError("v", "missing (protocol version, must be %d)" % VERSION)
    _version(obj["v"])
    return obj


def _version(v):
    if type(v) is not int or v != VERSION:
        raise ProtocolError("v", "unsupported protocol version %s, this side speaks %d" % (_show(v), VERSION))


def _get(obj, key, required=True):
    """The field's value; None when absent (optional fields only) or null. For an optional
    field absent and null mean the same: "not given"."""
    if required and key not in obj:
        raise ProtocolError(key, "missing")
    return obj.get(key)


def _int(key, x, lo, hi=MAX_INT, null=False):
    """x if it is an integer lo..hi (or None with null=True), else ProtocolError(key)."""
    if x is None and null:
        return None
    if type(x) is not int or x < lo or x > hi:
        rng = (">= %d" % lo) if hi >= MAX_INT else ("%d..%d" % (lo, hi))
        raise ProtocolError(key, "must be an integer %s%s, got %s" % (rng, " or null" if null else "", _show(x)))
    return x


def _wall(key, x, null=True):
    """Unix epoch ms, plausible: 2020 <= x < 2100 (smaller means the clock was never synced);
    None allowed with null=True (a panel whose clock was never synced)."""
    if x is None and null:
        return None
    if type(x) is not int or x < T_MIN or x >= T_MAX:
        raise ProtocolError(
            key, "must be Unix time in ms from 2020 to 2100%s, got %s" % (" or null" if null else "", _show(x))
        )
    return x


def _text(key, x, lo, hi, null=False, what="a string"):
    """x if it is a string of lo..hi characters without surrogates (or None with null=True)."""
    if x is None and null:
        return None
    if not isinstance(x, str):
        raise ProtocolError(key, "must be %s%s, got %s" % (what, " or null" if null else "", _show(x)))
    if not lo <= len(x) <= hi:
        raise ProtocolError(key, "must be %d..%d characters long, got %d" % (lo, hi, len(x)))
    for ch in x:
        # lone UTF-16 surrogates (from "\ud800" escapes) are not text; MicroPython keeps even
        # escaped pairs unjoined, so senders must write characters beyond the BMP as raw UTF-8
        if "\ud800" <= ch <= "\udfff":
            raise ProtocolError(key, "contains a UTF-16 surrogate escape; send the text as plain UTF-8")
    return x


def _choice(key, x, choices):
    if type(x) is not str or x not in choices:
        raise ProtocolError(key, "must be one of %s, got %s" % (", ".join(choices), _show(x)))
    return x


def _given(obj):
    """An encoder's input dict: a dict, and if it carries "v" it must be ours."""
    if type(obj) is not dict:
        raise ProtocolError("payload", "must be a dict, got %s" % type(obj).__name__)
    if "v" in obj:
        _version(obj["v"])
    return obj


def _dumps(obj):
    if _RAW_UTF8:
        data = json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()  # pyright: ignore[reportCallIssue]
    else:
        data = json.dumps(obj, separators=(",", ":")).encode()  # MicroPython writes UTF-8 raw anyway
    if len(data) > MAX_BYTES:  # the receiver would refuse it
        raise ProtocolError("payload", "%d bytes, limit is %d" % (len(data), MAX_BYTES))
    return data


# ---- event: panel -> gateway, not retained --------------------------------------------------


def _check_event(seq, boot, up, t, ev, hold):
    _int("seq", seq, 1)
    _int("boot", boot, 0)
    _int("up", up, 0)
    _wall("t", t)
    _choice("ev", ev, EVENTS)
    if hold is not None:
        _int("hold", hold, 0)
        if ev not in SELLER_EVENTS:
            raise ProtocolError("hold", "only allowed on seller events, got it on %s" % _show(ev))


# ---- state: panel -> gateway, retained ------------------------------------------------------


def _check_state(obj):
    online = _get(obj, "online")
    if online is not True and online is not False:
        raise ProtocolError("online", "must be true or false, got %s" % _show(online))
    # conn: the connection number since boot (optional): lets the gateway tell a replaced
    # connection's late will from the live connection's state (README.md, "state")
    conn = _int("conn", _get(obj, "conn", False), 0, null=True)
    if not online:
        out = {"v": VERSION, "online": False}
        boot = _int("boot", _get(obj, "boot", False), 0, null=True)
        if boot is not None:
            out["boot"] = boot
        if conn is not None:
            out["conn"] = conn
        return out
    out = {"v": VERSION, "online": True}
    if conn is not None:
        out["conn"] = conn
    for key in ("boot", "up"):
        out[key] = _int(key, _get(obj, key), 0)
    out["t"] = _wall("t", _get(obj, "t"))
    out["fw"] = _text("fw", _get(obj, "fw"), 1, MAX_SHORT)
    for key in ("seq", "pending", "dropped", "heap"):
        out[key] = _int(key, _get(obj, key), 0)
    out["rssi"] = _int("rssi", _get(obj, "rssi"), -127, 0, null=True)
    faults = _get(obj, "faults")
    if type(faults) is not list or len(faults) > MAX_FAULTS:
        raise ProtocolError("faults", "must be a list of at most %d strings, got %s" % (MAX_FAULTS, _show(faults)))
    for f in faults:
        _text("faults", f, 1, MAX_SHORT, what='a string like "stuck:yes"')
    out["faults"] = list(faults)
    out["cfg"] = _int("cfg", _get(obj, "cfg"), 1, null=True)
    out["cfg_err"] = _text("cfg_err", _get(obj, "cfg_err"), 1, MAX_TEXT, null=True)
    # optional (firmware 0.2.0 on): in the result only when given and not null
    reset = _get(obj, "reset", False)
    if reset is not None:
        out["reset"] = _choice("reset", reset, RESETS)
    # pwv/pwn (firmware 0.3.0 on): versions of the MQTT password rotated over the air in use /
    # held for the next login (README.md, "Password over the air")
    for key, lo in (("oversize", 0), ("ack_refused", 1), ("pwv", 1), ("pwn", 1)):
        x = _int(key, _get(obj, key, False), lo, null=True)
        if x is not None:
            out[key] = x
    return out
