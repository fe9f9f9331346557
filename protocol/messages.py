"""Payloads of protocol v1: encoders (-> compact JSON bytes) and validating decoders.

Every decoder takes bytes or str, checks size, JSON, `"v": 1` and every known field, and raises
ProtocolError naming the field ("payload" for the raw message, "v" for the version). Unknown
extra keys are ignored (dropped from the result) so a newer sender can add fields without
breaking older receivers. Integers must be JSON integers: 1.0, true and "1" are rejected
(in CPython bool is an int; MicroPython's is not - `type(x) is int` is the check both agree on).

Runs on MicroPython and CPython: only `json` and builtins. See README.md for the field tables.
"""
import json

from protocol import VERSION, ProtocolError

EVENTS = ("yes", "no", "unsure", "seller_short", "seller_long")
SELLER_EVENTS = ("seller_short", "seller_long")
CONFIG_KINDS = ("staff", "office", "loyalty")

MAX_EVENT_BYTES = 256
MAX_BYTES = 1024  # every other payload
MAX_INT = 9007199254740991  # 2**53 - 1: exact in every JSON reader (JS doubles included)
T_MIN = 1577836800000  # 2020-01-01T00:00:00Z in ms: a smaller wall clock means "never synced"
T_MAX = 4102444800000  # 2100-01-01T00:00:00Z in ms (exclusive)
MAX_QUESTION = 200  # characters, not bytes (Russian text is 2 bytes a char in UTF-8)
MAX_FAULTS = 16
MAX_TEXT = 200  # cfg_err and similar free text
MAX_SHORT = 32  # fw version, one fault string

# Remote config knobs: name -> (low, high), both inclusive.
CONFIG_RANGES = {
    "window_s": (5, 600),
    "rearm_s": (0, 60),
    "fm_minutes": (1, 240),
    "long_ms": (500, 10000),
    "debounce_ms": (5, 200),
    "heartbeat_s": (10, 3600),
    "brightness": (0, 100),
}

# Checked in this order (a dict's order differs on MicroPython, and with several bad knobs the
# first one named must be the same on both VMs).
CONFIG_KNOBS = ("window_s", "rearm_s", "fm_minutes", "long_ms", "debounce_ms", "heartbeat_s", "brightness")

OFFLINE_WILL = b'{"v":1,"online":false}'

_COMPACT = (",", ":")

# CPython's json escapes non-ASCII as \uXXXX (6 bytes a char, and characters beyond the BMP as
# surrogate pairs that MicroPython's json does NOT join back): send raw UTF-8 instead.
# MicroPython's json.dumps has no ensure_ascii keyword (TypeError) and never escapes.
try:
    json.dumps("", ensure_ascii=False)  # pyright: ignore[reportCallIssue] - CPython-only keyword
    _RAW_UTF8 = True
except TypeError:
    _RAW_UTF8 = False


# ---- shared checks -------------------------------------------------------------------------

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
    v = obj["v"]
    if type(v) is not int or v != VERSION:
        raise ProtocolError("v", "unsupported protocol version %s, this side speaks %d" % (_show(v), VERSION))
    return obj


def _range_text(lo, hi):
    if hi >= MAX_INT:
        return ">= %d" % lo
    return "%d..%d" % (lo, hi)


def _get(obj, key, required):
    """(present, value). Optional fields: absent and null mean the same thing."""
    if key in obj:
        value = obj[key]
        if value is not None or required:
            return True, value
    elif required:
        raise ProtocolError(key, "missing")
    return False, None


def _int_value(key, x, lo, hi=MAX_INT, null=False):
    if x is None and null:
        return None
    if type(x) is not int or x < lo or x > hi:
        raise ProtocolError(key, "must be an integer %s%s, got %s"
                            % (_range_text(lo, hi), " or null" if null else "", _show(x)))
    return x


def _int(obj, key, lo, hi=MAX_INT, null=False, required=True):
    present, x = _get(obj, key, required)
    return _int_value(key, x, lo, hi, null) if present else None


def _epoch(key, x, also=""):
    """Unix epoch ms, plausible: 2020 <= x < 2100 (smaller means the clock was never synced)."""
    if type(x) is not int or x < T_MIN or x >= T_MAX:
        raise ProtocolError(key, "must be Unix time in ms from 2020 to 2100%s, got %s" % (also, _show(x)))
    return x


def _wall_value(key, x):
    """_epoch, or None: null when the panel's clock was never synced."""
    return None if x is None else _epoch(key, x, " or null")


def _wall_ms(obj, key):
    return _wall_value(key, _get(obj, key, True)[1])


def _bool(obj, key):
    x = _get(obj, key, True)[1]
    if x is not True and x is not False:
        raise ProtocolError(key, "must be true or false, got %s" % _show(x))
    return x


def _str(obj, key, lo, hi, null=False, required=True):
    present, x = _get(obj, key, required)
    if not present or (x is None and null):
        return None
    if not isinstance(x, str):
        raise ProtocolError(key, "must be a string%s, got %s" % (" or null" if null else "", _show(x)))
    return _text(key, x, lo, hi)


def _text(key, x, lo, hi):
    if not lo <= len(x) <= hi:
        raise ProtocolError(key, "must be %d..%d characters long, got %d" % (lo, hi, len(x)))
    for ch in x:
        # lone UTF-16 surrogates (from "\ud800" escapes) are not text; MicroPython keeps even
        # escaped pairs unjoined, so senders must write characters beyond the BMP as raw UTF-8
        if "\ud800" <= ch <= "\udfff":
            raise ProtocolError(key, "contains a UTF-16 surrogate escape; send the text as plain UTF-8")
    return x


def _choice_value(key, x, choices):
    if type(x) is not str or x not in choices:
        raise ProtocolError(key, "must be one of %s, got %s" % (", ".join(choices), _show(x)))
    return x


def _choice(obj, key, choices, required=True):
    present, x = _get(obj, key, required)
    return _choice_value(key, x, choices) if present else None


def _id(obj, key):
    # same rule as topic ids; kept here so messages does not import topics (smaller on device)
    present, x = _get(obj, key, False)
    if not present:
        return None
    ok = isinstance(x, str) and 1 <= len(x) <= 32
    if isinstance(x, str) and ok:
        for ch in x:
            if not ("a" <= ch <= "z" or "0" <= ch <= "9" or ch == "-"):
                ok = False
                break
    if not ok:
        raise ProtocolError(key, "must be an id of 1..32 characters a-z, 0-9, '-', got %s" % _show(x))
    return x


def _given(obj):
    """An encoder's input dict: a dict, and if it carries "v" it must be ours."""
    if type(obj) is not dict:
        raise ProtocolError("payload", "must be a dict, got %s" % type(obj).__name__)
    if "v" in obj and (type(obj["v"]) is not int or obj["v"] != VERSION):
        raise ProtocolError("v", "unsupported protocol version %s, this side speaks %d" % (_show(obj["v"]), VERSION))
    return obj


def _dumps(obj):
    if _RAW_UTF8:
        data = json.dumps(obj, separators=_COMPACT, ensure_ascii=False).encode()  # pyright: ignore[reportCallIssue]
    else:
        data = json.dumps(obj, separators=_COMPACT).encode()  # MicroPython writes UTF-8 raw anyway
    if len(data) > MAX_BYTES:  # the receiver would refuse it
        raise ProtocolError("payload", "%d bytes, limit is %d" % (len(data), MAX_BYTES))
    return data


# ---- event: panel -> gateway, QoS 1, not retained ------------------------------------------

_EVENT = '{"v":1,"seq":%d,"boot":%d,"up":%d,"t":%s,"ev":"%s"}'
_EVENT_HOLD = '{"v":1,"seq":%d,"boot":%d,"up":%d,"t":%s,"ev":"%s","hold":%d}'


def _check_event(seq, boot, up, t, ev, hold):
    _int_value("seq", seq, 1)
    _int_value("boot", boot, 0)
    _int_value("up", up, 0)
    _wall_value("t", t)
    _choice_value("ev", ev, EVENTS)
    if hold is not None:
        _int_value("hold", hold, 0)
        if ev not in SELLER_EVENTS:
            raise ProtocolError("hold", "only allowed on seller events, got it on %s" % _show(ev))


def encode_event(seq, boot, up, t, ev, hold=None):
    """One button event as compact JSON bytes, keys in fixed order v,seq,boot,up,t,ev[,hold].

    Built with one %-format (no dict, no json.dumps) so it is cheap on the panel's heap.
    Validates like decode_event: a firmware bug fails here, not at the gateway.
    """
    _check_event(seq, boot, up, t, ev, hold)
    t = "null" if t is None else str(t)
    if hold is None:
        return (_EVENT % (seq, boot, up, t, ev)).encode()
    return (_EVENT_HOLD % (seq, boot, up, t, ev, hold)).encode()


def decode_event(data):
    """-> {"v","seq","boot","up","t","ev","hold"}; t and hold may be None."""
    obj = _load(data, MAX_EVENT_BYTES)
    for key in ("seq", "boot", "up", "t", "ev"):
        if key not in obj:
            raise ProtocolError(key, "missing")
    seq, boot, up, t, ev, hold = obj["seq"], obj["boot"], obj["up"], obj["t"], obj["ev"], obj.get("hold")
    _check_event(seq, boot, up, t, ev, hold)
    return {"v": VERSION, "seq": seq, "boot": boot, "up": up, "t": t, "ev": ev, "hold": hold}


# ---- state: panel -> gateway, QoS 1, retained; OFFLINE_WILL is its last-will form ----------

STATE_FIELDS = ("v", "online", "boot", "up", "t", "fw", "seq", "pending", "dropped", "heap",
                "rssi", "faults", "cfg", "cfg_err")


def _check_state(obj):
    online = _bool(obj, "online")
    if not online:
        return {"v": VERSION, "online": False}
    out = {"v": VERSION, "online": True}
    out["boot"] = _int(obj, "boot", 0)
    out["up"] = _int(obj, "up", 0)
    out["t"] = _wall_ms(obj, "t")
    out["fw"] = _str(obj, "fw", 1, MAX_SHORT)
    out["seq"] = _int(obj, "seq", 0)
    out["pending"] = _int(obj, "pending", 0)
    out["dropped"] = _int(obj, "dropped", 0)
    out["heap"] = _int(obj, "heap", 0)
    out["rssi"] = _int(obj, "rssi", -127, 0, null=True)
    if "faults" not in obj:
        raise ProtocolError("faults", "missing")
    faults = obj["faults"]
    if type(faults) is not list or len(faults) > MAX_FAULTS:
        raise ProtocolError("faults", "must be a list of at most %d strings, got %s" % (MAX_FAULTS, _show(faults)))
    for f in faults:
        if not isinstance(f, str):
            raise ProtocolError("faults", "each fault must be a string like \"stuck:yes\", got %s" % _show(f))
        _text("faults", f, 1, MAX_SHORT)
    out["faults"] = list(faults)
    out["cfg"] = _int(obj, "cfg", 1, null=True)
    out["cfg_err"] = _str(obj, "cfg_err", 1, MAX_TEXT, null=True)
    return out


def encode_state(state):
    """A state dict (keys as STATE_FIELDS; "v" optional) -> compact JSON bytes.
    {"online": False} gives the offline form, same bytes as OFFLINE_WILL."""
    out = _check_state(_given(state))
    if not out["online"]:
        return OFFLINE_WILL
    return _dumps(out)


def decode_state(data):
    """-> the online form with every STATE_FIELDS key, or {"v": 1, "online": False}."""
    return _check_state(_load(data, MAX_BYTES))


# ---- ack: gateway -> panel, QoS 1, retained, cumulative ------------------------------------

def encode_ack(seq):
    """Every event of this device with seq <= `seq` is durably stored by the gateway."""
    _int({"seq": seq}, "seq", 0)
    return ('{"v":1,"seq":%d}' % seq).encode()


def decode_ack(data):
    """-> N, the highest seq covered by the ack (0: nothing stored yet)."""
    return _int(_load(data, MAX_BYTES), "seq", 0)


# ---- config: gateway -> panel, QoS 1, retained ---------------------------------------------

CONFIG_FIELDS = ("v", "ver", "question", "kind") + CONFIG_KNOBS


def _check_config(obj):
    out = {"v": VERSION, "ver": _int(obj, "ver", 1)}
    question = _str(obj, "question", 1, MAX_QUESTION, required=False)
    if question is not None:
        out["question"] = question
    kind = _choice(obj, "kind", CONFIG_KINDS, required=False)
    if kind is not None:
        out["kind"] = kind
    for key in CONFIG_KNOBS:
        lo, hi = CONFIG_RANGES[key]
        value = _int(obj, key, lo, hi, required=False)
        if value is not None:
            out[key] = value
    return out


def encode_config(config):
    """A config dict ("ver" required, knobs optional) -> compact JSON bytes (UTF-8 text kept)."""
    return _dumps(_check_config(_given(config)))


def decode_config(data):
    """-> {"v", "ver", and only the knobs present}; an absent knob means "keep the panel's own"."""
    return _check_config(_load(data, MAX_BYTES))


# ---- counts: POS / people counter -> gateway, QoS 1, not retained --------------------------

def _check_counts(obj):
    start = _epoch("from", _get(obj, "from", True)[1])
    end = _epoch("to", _get(obj, "to", True)[1])
    if end <= start:
        raise ProtocolError("to", "must be after from (%d), got %d" % (start, end))
    transactions = _int(obj, "transactions", 0, null=True, required=False)
    visitors = _int(obj, "visitors", 0, null=True, required=False)
    if transactions is None and visitors is None:
        raise ProtocolError("transactions", "missing: give transactions, visitors or both")
    return {"v": VERSION, "from": start, "to": end, "transactions": transactions,
            "visitors": visitors, "device": _id(obj, "device")}


def encode_counts(counts):
    """A counts dict -> compact JSON bytes; None values are left out."""
    out = _check_counts(_given(counts))
    for key in ("transactions", "visitors", "device"):
        if out[key] is None:
            del out[key]
    return _dumps(out)


def decode_counts(data):
    """-> {"v","from","to","transactions","visitors","device"}; absent ones are None."""
    return _check_counts(_load(data, MAX_BYTES))
