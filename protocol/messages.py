"""Payloads of protocol v1: encoders (-> compact JSON bytes) and validating decoders.

Every decoder takes bytes or str, checks size, JSON, `"v": 1` and every known field, and raises
ProtocolError naming the field ("payload" for the raw message, "v" for the version). Unknown
extra keys are ignored (dropped from the result) so a newer sender can add fields without
breaking older receivers. Integers must be JSON integers: 1.0, true and "1" are rejected
(in CPython bool is an int; MicroPython's is not - `type(x) is int` is the check both agree on).

This is the whole API (the gateway, simulator and tests import it). The field checks live in
protocol.checks, the config payload in protocol.config (loaded by the panel only at boot and
per config message); both are re-exported here. The firmware keeps only protocol.panel, whose
lean encoders build the same bytes as the validating ones below without re-checking; so the
gateway-side code never takes up the panel's heap. Runs on MicroPython and CPython: only `json` and builtins. See README.md for
the field tables.
"""

from protocol import VERSION, ProtocolError, panel
from protocol.checks import (  # noqa: F401 - re-exported too
    EVENTS,
    MAX_BYTES,
    MAX_EVENT_BYTES,
    MAX_FAULTS,
    MAX_INT,
    MAX_SHORT,
    MAX_TEXT,
    RESETS,
    SELLER_EVENTS,
    T_MAX,
    T_MIN,
    _check_event,
    _check_state,
    _dumps,
    _get,
    _given,
    _int,
    _load,
    _show,
    _text,
    _wall,
)
from protocol.config import (  # noqa: F401 - re-exported: protocol.messages is the public API
    CONFIG_KINDS,
    CONFIG_KNOBS,
    CONFIG_RANGES,
    MAX_QUESTION,
    decode_config,
    encode_config,
)
from protocol.panel import OFFLINE_WILL  # noqa: F401

STATE_FIELDS = (
    "v",
    "online",
    "boot",
    "up",
    "t",
    "fw",
    "seq",
    "pending",
    "dropped",
    "heap",
    "rssi",
    "faults",
    "cfg",
    "cfg_err",
)
STATE_OPTIONAL = ("conn", "reset", "oversize", "ack_refused")  # in decode_state's result when given
CONFIG_FIELDS = ("v", "ver", "question", "kind") + CONFIG_KNOBS


# ---- event: panel -> gateway, not retained --------------------------------------------------


def encode_event(seq, boot, up, t, ev, hold=None):
    """One button event as compact JSON bytes, keys in fixed order v,seq,boot,up,t,ev[,hold]
    (the panel's bytes: protocol.panel.encode_event), after the same checks as decode_event."""
    _check_event(seq, boot, up, t, ev, hold)
    return panel.encode_event(seq, boot, up, t, ev, hold)


def decode_event(data):
    """-> {"v","seq","boot","up","t","ev","hold"}; t and hold may be None."""
    obj = _load(data, MAX_EVENT_BYTES)
    for key in ("seq", "boot", "up", "t", "ev"):
        if key not in obj:
            raise ProtocolError(key, "missing")
    seq, boot, up, t, ev, hold = obj["seq"], obj["boot"], obj["up"], obj["t"], obj["ev"], obj.get("hold")
    _check_event(seq, boot, up, t, ev, hold)
    return {"v": VERSION, "seq": seq, "boot": boot, "up": up, "t": t, "ev": ev, "hold": hold}


# ---- state: panel -> gateway, retained; OFFLINE_WILL is its last-will form ------------------


def encode_state(state):
    """A state dict (keys as STATE_FIELDS, optional "conn"; "v" optional) -> compact JSON bytes,
    checked like decode_state. {"online": False} gives the offline form, same bytes as
    OFFLINE_WILL; with "boot" and "conn" the same bytes as will_payload."""
    out = _check_state(_given(state))
    if not out["online"]:
        if "boot" in out and "conn" in out:
            return panel.will_payload(out["boot"], out["conn"])
        if "boot" in out or "conn" in out:
            return _dumps(out)
        return OFFLINE_WILL
    return _dumps(out)


def will_payload(boot, conn):
    """The last will for connection number `conn` of boot `boot` (checked)."""
    _int("boot", boot, 0)
    _int("conn", conn, 0)
    return panel.will_payload(boot, conn)


def decode_state(data):
    """-> the online form with every STATE_FIELDS key (plus STATE_OPTIONAL ones when given), or
    {"v": 1, "online": False} (plus "boot" and/or "conn" when given)."""
    return _check_state(_load(data, MAX_BYTES))


# ---- ack: gateway -> panel, retained, cumulative --------------------------------------------


def decode_ack(data):
    """-> N, the highest seq covered by the ack (0: nothing stored yet)."""
    return _int("seq", _get(_load(data, MAX_BYTES), "seq"), 0)


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
    return {
        "v": VERSION,
        "from": start,
        "to": end,
        "transactions": transactions,
        "visitors": visitors,
        "device": _id(obj, "device"),
    }


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


# ---- transaction: POS -> gateway, one sale a message, not retained ---------------------------

MAX_TX_ID = 64  # a receipt number as the POS writes it
MAX_LOYALTY = 64


def _printable(key, x, hi, null=False, spaces=False):
    x = _text(key, x, 1, hi, null=null)
    if x is not None:
        for ch in x:
            if (ch < " " or ch == "\x7f") or (ch == " " and not spaces):
                what = "control characters" if spaces else "spaces or control characters"
                raise ProtocolError(key, "must have no %s, got %s" % (what, _show(x)))
    return x


def _check_transaction(obj):
    return {
        "v": VERSION,
        "id": _printable("id", _get(obj, "id"), MAX_TX_ID),
        "till": _id(obj, "till") or _missing("till"),
        "t": _wall("t", _get(obj, "t"), null=False),
        "loyalty": _printable("loyalty", _get(obj, "loyalty", False), MAX_LOYALTY, null=True, spaces=True),
    }


def _missing(key):
    raise ProtocolError(key, "missing")


def encode_transaction(tx):
    """A sale {"id", "till", "t", "loyalty"?} -> compact JSON bytes; a None loyalty is left out."""
    out = _check_transaction(_given(tx))
    if out["loyalty"] is None:
        del out["loyalty"]
    return _dumps(out)


def decode_transaction(data):
    """-> {"v","id","till","t","loyalty"}: the POS's sale id (receipt number, printable, no
    spaces), the till (or panel) id, its time (Unix ms) and the pseudonymous loyalty-card
    reference (None when absent). The site is the topic's."""
    return _check_transaction(_load(data, MAX_BYTES))
