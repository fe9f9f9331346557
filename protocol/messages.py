"""Payloads of protocol v1: encoders (-> compact JSON bytes) and validating decoders.

Every decoder takes bytes or str, checks size, JSON, `"v": 1` and every known field, and raises
ProtocolError naming the field ("payload" for the raw message, "v" for the version). Unknown
extra keys are ignored (dropped from the result) so a newer sender can add fields without
breaking older receivers. Integers must be JSON integers: 1.0, true and "1" are rejected
(in CPython bool is an int; MicroPython's is not - `type(x) is int` is the check both agree on).

This is the whole API (the gateway, simulator and tests import it). The panel's part - and the
field checks shared by both sides - lives in protocol.panel, the config payload in
protocol.config (loaded by the panel only per config message); both are re-exported here;
the firmware imports only protocol.panel, so the gateway-side decoders below never take up
the panel's heap. Runs on MicroPython and CPython: only `json` and builtins. See README.md for
the field tables.
"""
from protocol import VERSION, ProtocolError
from protocol.config import (  # noqa: F401 - re-exported: protocol.messages is the public API
    CONFIG_KINDS, CONFIG_KNOBS, CONFIG_RANGES, MAX_QUESTION, decode_config, encode_config)
from protocol.panel import (  # noqa: F401 - re-exported too
    EVENTS, MAX_BYTES, MAX_EVENT_BYTES, MAX_FAULTS, MAX_INT, MAX_SHORT, MAX_TEXT, OFFLINE_WILL,
    SELLER_EVENTS, T_MAX, T_MIN, _check_event, _check_state, _dumps, _get, _given, _int, _load,
    _show, _wall, decode_ack, encode_event, encode_state, will_payload)

STATE_FIELDS = ("v", "online", "boot", "up", "t", "fw", "seq", "pending", "dropped", "heap",
                "rssi", "faults", "cfg", "cfg_err")
CONFIG_FIELDS = ("v", "ver", "question", "kind") + CONFIG_KNOBS


# ---- event: panel -> gateway, not retained --------------------------------------------------

def decode_event(data):
    """-> {"v","seq","boot","up","t","ev","hold"}; t and hold may be None."""
    obj = _load(data, MAX_EVENT_BYTES)
    for key in ("seq", "boot", "up", "t", "ev"):
        if key not in obj:
            raise ProtocolError(key, "missing")
    seq, boot, up, t, ev, hold = obj["seq"], obj["boot"], obj["up"], obj["t"], obj["ev"], obj.get("hold")
    _check_event(seq, boot, up, t, ev, hold)
    return {"v": VERSION, "seq": seq, "boot": boot, "up": up, "t": t, "ev": ev, "hold": hold}


# ---- state: panel -> gateway, retained ------------------------------------------------------

def decode_state(data):
    """-> the online form with every STATE_FIELDS key (plus "conn" when given), or
    {"v": 1, "online": False} (plus "boot" and/or "conn" when given)."""
    return _check_state(_load(data, MAX_BYTES))


# ---- ack: gateway -> panel, retained, cumulative --------------------------------------------

def encode_ack(seq):
    """Every event of this device with seq <= `seq` is durably stored by the gateway."""
    _int("seq", seq, 0)
    return ('{"v":1,"seq":%d}' % seq).encode()


# ---- counts: POS / people counter -> gateway, not retained ----------------------------------

def _id(obj, key):
    # same rule as topic ids; kept here so messages does not import topics
    x = _get(obj, key, False)
    if x is None:
        return None
    ok = isinstance(x, str) and 1 <= len(x) <= 32
    if ok:
        for ch in x:
            if not ("a" <= ch <= "z" or "0" <= ch <= "9" or ch == "-"):
                ok = False
                break
    if not ok:
        raise ProtocolError(key, "must be an id of 1..32 characters a-z, 0-9, '-', got %s" % _show(x))
    return x


def _check_counts(obj):
    start = _get(obj, "from")
    end = _get(obj, "to")
    _wall("from", start, null=False)
    _wall("to", end, null=False)
    if end <= start:
        raise ProtocolError("to", "must be after from (%d), got %d" % (start, end))
    transactions = _int("transactions", _get(obj, "transactions", False), 0, null=True)
    visitors = _int("visitors", _get(obj, "visitors", False), 0, null=True)
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
