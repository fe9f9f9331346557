"""The panel's resident part of the protocol: its own payloads, built cheaply.

    encode_event(seq, boot, up, t, ev, hold=None) -> bytes     {"v":1,"seq":..,...}
    encode_state(state) -> bytes                               the online state dict as JSON
    will_payload(boot, conn) -> bytes                          the last will (offline form)
    decode_ack(data) -> seq                                    ProtocolError("payload"|"v"|"seq")
    OFFLINE_WILL

Lean on purpose: the firmware builds these payloads from its own values, and every byte of
code here stays in the panel's heap (README.md, "Heap on the panel"). So they do not re-check
their input; protocol.messages' encoders of the same names do (the gateway, the simulator and
the tests use those), and the gateway checks every field of what arrives and dead-letters a
bad payload (tests/protocol/test_panel_encoders.py: the firmware's payloads pass those checks, and
decode_ack agrees with messages.decode_ack on every ack vector). Runs on MicroPython and
CPython: only `json` and builtins.
"""

import json

from protocol import VERSION, ProtocolError

OFFLINE_WILL = b'{"v":1,"online":false}'  # the bare offline form (kept for old callers)
_MAX_SEQ = 9007199254740991  # protocol.checks.MAX_INT: 2**53 - 1


def encode_event(seq, boot, up, t, ev, hold=None):
    """One button event as compact JSON bytes, keys in fixed order v,seq,boot,up,t,ev[,hold].
    One %-format: no dict, no json.dumps (cheap on the heap)."""
    t = "null" if t is None else str(t)
    if hold is None:
        return ('{"v":1,"seq":%d,"boot":%d,"up":%d,"t":%s,"ev":"%s"}' % (seq, boot, up, t, ev)).encode()
    return ('{"v":1,"seq":%d,"boot":%d,"up":%d,"t":%s,"ev":"%s","hold":%d}' % (seq, boot, up, t, ev, hold)).encode()


def encode_state(state):
    """The app's state dict (Panel.state() plus the link's "conn") as compact JSON bytes."""
    state["v"] = VERSION
    return json.dumps(state, separators=(",", ":")).encode()


def will_payload(boot, conn):
    """The last will for connection number `conn` of boot `boot`: the offline form with both,
    so the gateway can ignore it when it arrives after a newer connection's state."""
    return ('{"v":1,"online":false,"boot":%d,"conn":%d}' % (boot, conn)).encode()


def decode_ack(data):
    """-> N, the highest seq covered by the ack (0: nothing stored yet). Checks what guards the
    journal: a JSON object, v 1, seq an integer 0..2**53-1."""
    try:
        obj = json.loads(data)
    except Exception:  # ValueError, UnicodeError: not JSON
        obj = None
    if type(obj) is not dict:
        raise ProtocolError("payload", "must be a JSON object")
    v = obj.get("v")
    if type(v) is not int or v != VERSION:
        raise ProtocolError("v", "unsupported protocol version %r, this side speaks %d" % (v, VERSION))
    seq = obj.get("seq")
    if type(seq) is not int or not 0 <= seq <= _MAX_SEQ:
        raise ProtocolError("seq", "must be an integer >= 0, got %r" % (seq,))
    return seq
