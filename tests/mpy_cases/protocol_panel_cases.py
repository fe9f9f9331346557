"""protocol.panel (the panel's lean, non-checking payload code) against protocol.messages (the
checking one), on MicroPython (via mpytest) and CPython (tests/protocol/test_panel_encoders.py imports
this module): decode_ack agrees on every ack vector (ok, value, field), and the encoders build
exactly the bytes of messages' encoders for every valid encode vector.
"""

from protocol_vectors_cases import load

from protocol import ProtocolError, messages, panel


def _outcome(fn, payload):
    try:
        return ("ok", fn(payload))
    except ProtocolError as e:
        return ("error", e.field)


def test_decode_ack_agrees_with_messages_on_every_vector():
    n = 0
    for v in load("ack"):
        if "encode" in v:
            continue
        data = v["payload"].encode()
        lean, full = _outcome(panel.decode_ack, data), _outcome(messages.decode_ack, data)
        assert lean == full, "%s: panel %r, messages %r" % (v["name"], lean, full)
        n += 1
    assert n >= 10
    for data in (b"\xff\xfe", b"", b"[1]", b'{"v":true,"seq":1}', b'{"v":1,"seq":9007199254740992}'):
        assert _outcome(panel.decode_ack, data)[0] == "error", data


def test_encode_event_same_bytes_as_messages():
    n = 0
    for v in load("events"):
        if "encode" in v and v["ok"]:
            args = v["encode"]
            got = panel.encode_event(args["seq"], args["boot"], args["up"], args.get("t"), args["ev"], args.get("hold"))
            assert got == messages.encode_event(**args), v["name"]
            messages.decode_event(got)
            n += 1
    assert n >= 3


def test_encode_state_and_will_decode_as_sent():
    state = {
        "online": True,
        "boot": 7,
        "up": 3600000,
        "t": 1763812345123,
        "fw": "0.1.0",
        "seq": 42,
        "pending": 2,
        "dropped": 0,
        "heap": 61234,
        "rssi": -55,
        "faults": ["stuck:yes"],
        "cfg": 3,
        "cfg_err": None,
        "conn": 2,
    }
    got = messages.decode_state(panel.encode_state(dict(state)))
    state["v"] = 1
    assert got == state
    assert panel.will_payload(7, 3) == messages.will_payload(7, 3)
    assert messages.decode_state(panel.will_payload(7, 3)) == {"v": 1, "online": False, "boot": 7, "conn": 3}
