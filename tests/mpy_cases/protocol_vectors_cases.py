"""The protocol vectors (tests/vectors/*.json), checked by the same code under MicroPython
(via mpytest) and CPython (tests/protocol/test_vectors.py imports this module).

A vector is {"name", "ok", ...}:
  decode:  "payload" (text, sent as UTF-8) or "payload_hex" -> "expect" (decoded) | "field"
  encode:  "encode" (kwargs for events/ack, the dict otherwise) -> "payload" (exact bytes)
           and/or "expect" (what decoding the result gives) | "field"
  topics:  "call" + "args" -> "expect" | "field"
"field" may be a list when the platforms' json modules legitimately differ (NaN).
"""

import json

from protocol import ProtocolError, messages, topics

_here = __file__.replace("\\", "/")
VECTORS = _here[: _here.rfind("/")] + "/../vectors/"

DECODERS = {
    "events": (messages.decode_event, messages.encode_event, True),
    "state": (messages.decode_state, messages.encode_state, False),
    "ack": (messages.decode_ack, messages.encode_ack, True),
    "config": (messages.decode_config, messages.encode_config, False),
    "counts": (messages.decode_counts, messages.encode_counts, False),
}
FILES = ("events", "state", "ack", "config", "counts", "topics")


def load(name):
    """The vectors of one file, one at a time: the files hold one vector a line inside the
    list's brackets, so the VM never needs the whole file (or its decoded list) in RAM."""
    with open(VECTORS + name + ".json") as f:
        for line in f:
            line = line.strip()
            if line in ("[", "]", ""):
                continue
            yield json.loads(line[:-1] if line.endswith(",") else line)


def _unhex(text):
    return bytes(int(text[i : i + 2], 16) for i in range(0, len(text), 2))


def _tuple_to_list(value):
    return list(value) if isinstance(value, tuple) else value


def _expect_failure(vector, fn):
    """None if fn() raised ProtocolError naming the expected field, else a complaint."""
    want = vector["field"]
    fields = want if isinstance(want, list) else [want]
    try:
        got = fn()
    except ProtocolError as e:
        if e.field not in fields:
            return "wrong field %r (%s), want %r" % (e.field, e, want)
        if not str(e).startswith(e.field + ": ") or len(e.problem) < 5:
            return "badly worded error %r" % str(e)
        return None
    except Exception as e:  # anything else is a decoder bug
        return "raised %s: %s instead of ProtocolError(%r)" % (type(e).__name__, e, want)
    return "accepted, gave %r; want ProtocolError(%r)" % (got, want)


def check_vector(name, vector):
    """None if the vector holds, else a one-line complaint."""
    if name == "topics":
        fn = getattr(topics, vector["call"])
        args = vector["args"]
        if not vector["ok"]:
            return _expect_failure(vector, lambda: fn(*args))
        got = _tuple_to_list(fn(*args))
        return None if got == vector["expect"] else "got %r, want %r" % (got, vector["expect"])
    decode, encode, kwargs = DECODERS[name]
    if "encode" in vector:
        enc = vector["encode"]
        call = (lambda: encode(**enc)) if kwargs else (lambda: encode(enc))
        if not vector["ok"]:
            return _expect_failure(vector, call)
        data = call()
        if type(data) is not bytes:
            return "encoder gave %s, want bytes" % type(data).__name__
        if "payload" in vector and data != vector["payload"].encode():
            return "encoded %r, want %r" % (data, vector["payload"])
        if "expect" in vector and decode(data) != vector["expect"]:
            return "encoded %r decodes to %r, want %r" % (data, decode(data), vector["expect"])
        return None
    data = _unhex(vector["payload_hex"]) if "payload_hex" in vector else vector["payload"].encode()
    if not vector["ok"]:
        return _expect_failure(vector, lambda: decode(data))
    got = decode(data)
    if got != vector["expect"]:
        return "decoded %r, want %r" % (got, vector["expect"])
    # str input must behave as bytes input
    again = decode(data.decode())
    return None if again == got else "str input decoded %r, bytes gave %r" % (again, got)


def check_file(name):
    """[(vector name, complaint)] for the vectors of one file that do not hold."""
    bad = []
    n = 0
    for vector in load(name):
        n += 1
        problem = check_vector(name, vector)
        if problem:
            bad.append((vector["name"], problem))
    assert n >= 10, "%s.json has only %d vectors" % (name, n)
    return bad


def _run(name):
    bad = check_file(name)
    for vector_name, problem in bad:
        print("  %s.json %r: %s" % (name, vector_name, problem))
    assert not bad, "%d vector(s) of %s.json failed" % (len(bad), name)


def test_events():
    _run("events")


def test_state():
    _run("state")


def test_ack():
    _run("ack")


def test_config():
    _run("config")


def test_counts():
    _run("counts")


def test_topics():
    _run("topics")
